//! Every node of a stable overlay of 100 nodes makes a transaction at the same instant
//! (issue 12's "all-send bursts"): each still reaches every node, with a relative message
//! redundancy of at most 1 (iroh-gossip's simulator allows 3 there, where the trees of
//! 100 origins are pruned while they are used; ours is one tree whatever the origins).
//!
//! The nodes start within 1 s and the overlay gets 20 s to settle before the burst (its
//! link-trading first shuffles are over by then).
//! `PROPTEST_CASES` sets the number of seeds (default 4).

mod common;

use common::{cases, ended_whole};
use std::time::Duration;

use p2p_core::sim::Scenario;
use p2p_core::Overlay;
use proptest::prelude::*;

const NODES: usize = 100;
const MAX_RMR: f64 = 1.0;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(4)))]

    #[test]
    fn an_all_send_burst_reaches_every_node_with_at_most_one_extra_copy(seed in any::<u64>()) {
        let mut scenario = Scenario::new(NODES, 0, seed);
        scenario.overlay = Some(Overlay::default());
        scenario.settle = Duration::from_secs(20);
        scenario.all_send = true;
        let (sim, summary) = scenario.run().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let line = summary.to_json();
        ended_whole(&sim, &summary, &format!("seed {seed}")).map_err(TestCaseError::fail)?;
        prop_assert_eq!(sim.transactions().len(), NODES);
        prop_assert!(
            (1..=Overlay::default().active).contains(&summary.active_view_max),
            "active views not within 1 to {}: {}", Overlay::default().active, line
        );
        prop_assert!(summary.rmr <= MAX_RMR, "rmr over {}: {}", MAX_RMR, line);
    }
}
