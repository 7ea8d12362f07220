//! HyParView's promise (issue 12): half of a settled overlay of 1,000 nodes crashes at
//! once, for good (`simulate --overlay --crash-fraction 0.5`). The survivors' active-view
//! links form one connected graph again within 30 s of virtual time, and the 100
//! transactions that enter at random survivors right after the crash reach every one of
//! them.

use std::time::Duration;

use p2p_core::sim::{Scenario, Sim, SimConfig};
use p2p_core::Overlay;

/// Fails at once, not after a long run of a full mesh, if overlay mode is not built:
/// twenty overlay nodes, five seconds, and some active view must hold a peer.
fn overlay_mode_is_built() {
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

#[test]
fn half_of_a_thousand_node_overlay_crashing_at_once_leaves_it_whole() {
    overlay_mode_is_built();
    let mut scenario = Scenario::new(1000, 100, 2);
    scenario.overlay = Some(Overlay::default());
    scenario.settle = Duration::from_secs(10);
    scenario.crash_at_once = 500;
    let (sim, summary) = scenario.run().unwrap();
    let line = summary.to_json();
    assert_eq!(sim.live_nodes().count(), 500);
    let violations = sim.check();
    assert!(
        violations.is_empty(),
        "{} broken invariants, the first: {}",
        violations.len(),
        violations[0]
    );
    assert!(summary.converged, "not converged: {line}");
    assert_eq!(summary.delivered, 1.0, "{line}");
    assert!(
        summary
            .reconnect_ms
            .flatten()
            .is_some_and(|ms| ms <= 30_000),
        "the survivors' overlay not connected again within 30 s: {line}"
    );
    assert!(
        (1..=Overlay::default().active).contains(&summary.active_view_max),
        "{line}"
    );
}
