//! What several of p2p-core's integration tests share. Each test file is its own crate
//! and uses a part of this, hence `dead_code` allowed.
#![allow(dead_code)]

pub(crate) mod transitions;

use std::time::Duration;

use p2p_core::sim::{Sim, SimConfig, Summary};
use p2p_core::Overlay;

/// The number of cases a property test runs: `var` from the environment, else `default`.
pub(crate) fn cases_from(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `PROPTEST_CASES`, else `default`.
pub(crate) fn cases(default: u32) -> u32 {
    cases_from("PROPTEST_CASES", default)
}

/// Fails at once, not after a long run of a full mesh, if overlay mode is not built:
/// twenty overlay nodes, five seconds, and some active view must hold a peer.
pub(crate) fn overlay_mode_is_built() {
    let mut config = SimConfig::new(1);
    config.overlay = Some(Overlay::default());
    config.log_capacity = 0;
    let mut sim = Sim::new(config);
    sim.add_nodes(20).unwrap();
    for id in sim.nodes().collect::<Vec<_>>() {
        sim.start(id).unwrap();
    }
    sim.run_for(Duration::from_secs(5));
    assert!(
        sim.active_view_max() > 0,
        "overlay mode is not built: after 5 s, every active view of 20 overlay nodes is empty"
    );
}

/// Whether the run ended whole: no broken invariant, converged, and every running node
/// holding every transaction; else why not. `what` names the run in the answer.
pub(crate) fn ended_whole(sim: &Sim, summary: &Summary, what: &str) -> Result<(), String> {
    let line = summary.to_json();
    let violations = sim.check();
    if let Some(first) = violations.first() {
        return Err(format!(
            "{what}: {} broken invariants, the first: {first}",
            violations.len()
        ));
    }
    if !summary.converged {
        return Err(format!("{what}: not converged: {line}"));
    }
    if summary.delivered != 1.0 {
        return Err(format!(
            "{what}: delivered {} of 1.0: {line}",
            summary.delivered
        ));
    }
    Ok(())
}

/// Fails unless the run [`ended_whole`].
pub(crate) fn assert_whole(sim: &Sim, summary: &Summary, what: &str) {
    if let Err(why) = ended_whole(sim, summary, what) {
        panic!("{why}");
    }
}
