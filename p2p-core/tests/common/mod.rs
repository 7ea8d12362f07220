//! What several of p2p-core's integration tests share. Each test file is its own crate
//! and uses a part of this, hence `dead_code` allowed.
#![allow(dead_code)]

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

/// Fails unless the run ended whole: no broken invariant, converged, and every running
/// node holding every transaction. `what` names the run in the failure.
pub(crate) fn assert_whole(sim: &Sim, summary: &Summary, what: &str) {
    let line = summary.to_json();
    let violations = sim.check();
    assert!(
        violations.is_empty(),
        "{what}: {} broken invariants, the first: {}",
        violations.len(),
        violations[0]
    );
    assert!(summary.converged, "{what}: not converged: {line}");
    assert_eq!(summary.delivered, 1.0, "{what}: {line}");
}
