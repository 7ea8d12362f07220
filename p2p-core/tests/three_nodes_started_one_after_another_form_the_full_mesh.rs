//! The curriculum's way: node-1, then node-2, then node-3, each a moment after the other.

use std::time::Duration;

use p2p_core::sim::{NodeId, Sim, SimConfig};

#[test]
fn three_nodes_started_one_after_another_form_the_full_mesh() {
    let mut sim = Sim::new(SimConfig::new(3));
    sim.add_nodes(3).unwrap();
    for i in 0..3 {
        sim.start(NodeId(i)).unwrap();
        sim.run_for(Duration::from_secs(2));
    }
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    assert!(sim.is_full_mesh(), "{}", sim.story());
    // node-1 (4001) learnt node-2 from its HANDSHAKE before node-3, its known peer, was up.
    assert_eq!(sim.connected_to(NodeId(0)), vec![NodeId(1), NodeId(2)]);
    for id in sim.nodes() {
        assert_eq!(sim.connected_to(id).len(), 2, "{}", sim.story());
    }
    // Each node dialled each other once and sent one HANDSHAKE on each dial.
    assert_eq!(sim.counters().connections, 6);
    assert_eq!(sim.counters().sent.handshake, 6);
    assert!(sim.check().is_empty(), "{}", sim.story());
}
