//! A node crashes: the others drop it and keep their mesh; it restarts with its pool and
//! the full mesh comes back.

use std::time::Duration;

use p2p_core::sim::{NodeId, Sim, SimConfig};

#[test]
fn crash_and_restart_heals_the_mesh() {
    let mut sim = Sim::new(SimConfig::new(21));
    for id in sim.add_nodes(6).unwrap() {
        sim.start(id).unwrap();
    }
    sim.run_until_quiet(Duration::from_secs(60));
    let tx = sim.add_new_transaction(NodeId(1)).unwrap();
    sim.run_until_quiet(Duration::from_secs(60));

    // node-2 is 4003, a known peer of everyone: they keep redialling it while it is down.
    let down = NodeId(2);
    sim.crash(down).unwrap();
    sim.run_for(Duration::from_secs(3));
    assert!(
        sim.is_full_mesh(),
        "the others stay meshed\n{}",
        sim.story()
    );
    for id in sim.live_nodes() {
        assert!(
            !sim.connected_to(id).contains(&down),
            "{id}\n{}",
            sim.story()
        );
    }

    sim.restart(down).unwrap();
    assert!(sim.node(down).unwrap().has_transaction(tx.hash()));
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    assert!(sim.is_full_mesh(), "{}", sim.story());
    assert_eq!(sim.connected_to(down).len(), 5);
    assert!(sim.check().is_empty(), "{}", sim.story());
}
