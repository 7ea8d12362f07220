//! HyParView's promise (issue 12): half of a settled overlay of 1,000 nodes crashes at
//! once, for good (`simulate --overlay --crash-fraction 0.5`). The survivors' active-view
//! links form one connected graph again within 30 s of virtual time, and the 100
//! transactions that enter at random survivors right after the crash reach every one of
//! them.

mod common;

use common::{assert_whole, overlay_mode_is_built};
use std::time::Duration;

use p2p_core::sim::Scenario;
use p2p_core::Overlay;

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
    assert_whole(&sim, &summary, "half crashed");
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
