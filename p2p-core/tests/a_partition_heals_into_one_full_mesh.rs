//! Split in two, each half keeps its own mesh; healed, they become one again.

use std::time::Duration;

use p2p_core::sim::{NodeId, Sim, SimConfig};

#[test]
fn a_partition_heals_into_one_full_mesh() {
    let mut sim = Sim::new(SimConfig::new(31));
    for id in sim.add_nodes(6).unwrap() {
        sim.start(id).unwrap();
    }
    sim.run_until_quiet(Duration::from_secs(60));
    let (left, right) = (
        vec![NodeId(0), NodeId(1), NodeId(4)],
        vec![NodeId(2), NodeId(3), NodeId(5)],
    );
    sim.partition(&[left.clone(), right.clone()]).unwrap();
    sim.run_for(Duration::from_secs(10));
    for group in [&left, &right] {
        for &id in group {
            let mut peers = sim.connected_to(id);
            peers.sort();
            let expected: Vec<_> = group.iter().copied().filter(|&p| p != id).collect();
            assert_eq!(peers, expected, "{id}\n{}", sim.story());
        }
    }
    sim.heal();
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    assert!(sim.is_full_mesh(), "{}", sim.story());
    assert!(sim.check().is_empty(), "{}", sim.story());
}
