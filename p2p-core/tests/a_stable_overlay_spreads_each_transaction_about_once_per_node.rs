//! The overlay broadcast's promise (issue 12), measured as iroh-gossip's simulator measures it: in a
//! stable overlay of 100 nodes, transactions from random senders, one at a time, reach
//! every node with a relative message redundancy (copies delivered per node reached,
//! minus one) of at most 0.2, in at most 15 hops; and each node holds at most
//! `Overlay::active` links.
//!
//! Each case: the nodes start within 1 s, the overlay gets 20 s to settle (its first
//! shuffles, which trade links, come every 2 s: six are over by then), then 50
//! transactions enter at random nodes over 5 s (only these are measured); the run ends
//! once every node holds every one and the overlay is connected, plus 5 s for copies on
//! their way. `PROPTEST_CASES` sets the number of seeds (default 8).

mod common;

use common::{cases, ended_whole};
use std::time::Duration;

use p2p_core::sim::{Scenario, Summary};
use p2p_core::Overlay;
use proptest::prelude::*;

const NODES: usize = 100;
const MAX_RMR: f64 = 0.2;
const MAX_LDH: u32 = 15;

fn run(seed: u64) -> Result<Summary, TestCaseError> {
    let mut scenario = Scenario::new(NODES, 50, seed);
    scenario.overlay = Some(Overlay::default());
    scenario.settle = Duration::from_secs(20);
    let (sim, summary) = scenario
        .run()
        .map_err(|e| TestCaseError::fail(format!("seed {seed}: {e}")))?;
    ended_whole(&sim, &summary, &format!("seed {seed}")).map_err(TestCaseError::fail)?;
    Ok(summary)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(8)))]

    #[test]
    fn a_stable_overlay_of_a_hundred_nodes_spreads_with_little_redundancy(seed in any::<u64>()) {
        let summary = run(seed)?;
        let line = summary.to_json();
        prop_assert!(
            (1..=Overlay::default().active).contains(&summary.active_view_max),
            "active views not within 1 to {}: {}", Overlay::default().active, line
        );
        prop_assert!(summary.rmr <= MAX_RMR, "rmr over {}: {}", MAX_RMR, line);
        prop_assert!(summary.ldh_max <= MAX_LDH, "ldh_max over {}: {}", MAX_LDH, line);
    }
}
