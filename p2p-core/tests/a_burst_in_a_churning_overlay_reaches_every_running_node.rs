//! A burst in the overlay (issue 10's shape in issue 12's mode): 200 overlay nodes settle
//! for 20 s, then 3,000 transactions enter at random nodes within 200 ms while 20 nodes
//! crash and restart. A gathering of more than 1,024 announcements is not sent (it would
//! cost as much as the burst), so what the pushes miss through the crashes is brought by
//! catch-up alone: every running node ends with every transaction, and no invariant
//! breaks.

mod common;

use common::{assert_whole, overlay_mode_is_built};
use std::time::Duration;

use p2p_core::sim::Scenario;
use p2p_core::Overlay;

#[test]
fn a_burst_in_a_churning_overlay_reaches_every_running_node() {
    overlay_mode_is_built();
    for seed in [1, 2] {
        let mut scenario = Scenario::new(200, 3000, seed);
        scenario.overlay = Some(Overlay::default());
        scenario.settle = Duration::from_secs(20);
        scenario.traffic_window = Duration::from_millis(200);
        scenario.churn = 20;
        let (sim, summary) = scenario.run().unwrap();
        assert_whole(&sim, &summary, &format!("seed {seed}"));
    }
}
