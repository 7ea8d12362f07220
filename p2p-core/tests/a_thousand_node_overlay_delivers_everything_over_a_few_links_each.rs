//! The overlay at scale (issue 12), in CI: 1,000 nodes in overlay mode start within 1 s,
//! settle for 20 s (the first shuffles, every 2 s, trade links), and 100 transactions
//! enter at random nodes over the next 5 s. Every node gets every one, over at most 5
//! links per node (a few connections each, where the full mesh holds 1,998), with a
//! relative message redundancy of at most 0.1, through a tree at most 8 deep (30 deep
//! before links were traded in the first shuffles), in at most twice its depth in hops
//! (every copy goes along the tree, from the origin too); the overlay is connected and
//! no invariant breaks. (Issue 12's ldh_max <= 12 at 10,000 nodes is not met by one tree
//! of 5 links a node: BENCHMARKS.md says why.)
//!
//! Under a minute in the workspace's test profile on two cores; `simulate --overlay`
//! runs the same at any size.

mod common;

use common::{assert_whole, overlay_mode_is_built};
use std::time::Duration;

use p2p_core::sim::Scenario;
use p2p_core::Overlay;

#[test]
fn a_thousand_node_overlay_delivers_everything_over_a_few_links_each() {
    overlay_mode_is_built();
    let mut scenario = Scenario::new(1000, 100, 1);
    scenario.overlay = Some(Overlay::default());
    scenario.settle = Duration::from_secs(20);
    let (sim, summary) = scenario.run().unwrap();
    let line = summary.to_json();
    assert_whole(&sim, &summary, "1,000 nodes");
    assert!(
        (1..=Overlay::default().active).contains(&summary.active_view_max),
        "{line}"
    );
    assert!(summary.connections_per_node <= 8.0, "{line}");
    let depth = sim
        .live_nodes()
        .filter_map(|id| sim.node(id)?.status().overlay)
        .map(|overlay| u32::from(overlay.dist))
        .max()
        .unwrap_or(0);
    assert!(
        (1..=8).contains(&depth),
        "a tree of depth {depth} over 1,000 nodes of 5 links: {line}"
    );
    assert!(summary.rmr <= 0.1, "{line}");
    assert!(summary.ldh_max <= 2 * depth, "{line}");
}
