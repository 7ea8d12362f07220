//! One transaction made at one node of a full mesh ends up in every pool, once.

use std::time::Duration;

use p2p_core::sim::{NodeId, Sim, SimConfig};

#[test]
fn a_transaction_reaches_every_pool_exactly_once() {
    let mut sim = Sim::new(SimConfig::new(11));
    for id in sim.add_nodes(8).unwrap() {
        sim.start(id).unwrap();
    }
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    let tx = sim.add_new_transaction(NodeId(5)).unwrap();
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    for id in sim.nodes() {
        let held = |pool: &[p2p_core::Transaction]| pool.iter().filter(|t| **t == tx).count();
        assert_eq!(held(sim.pool(id)), 1, "{id}\n{}", sim.story());
        assert_eq!(held(sim.stored_pool(id)), 1, "{id} persisted it once");
    }
    assert_eq!(sim.delivered(), 1.0);
    assert!(sim.check().is_empty(), "{}", sim.story());
}
