//! A node added and started long after the others were meshed joins their mesh.

use std::time::Duration;

use p2p_core::sim::{Sim, SimConfig};

#[test]
fn a_node_joining_late_joins_the_mesh() {
    let mut sim = Sim::new(SimConfig::new(41));
    for id in sim.add_nodes(5).unwrap() {
        sim.start(id).unwrap();
    }
    sim.run_until_quiet(Duration::from_secs(60));
    sim.run_for(Duration::from_secs(30));
    let late = sim.add_node().unwrap();
    sim.start(late).unwrap();
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    assert!(sim.is_full_mesh(), "{}", sim.story());
    assert_eq!(sim.connected_to(late).len(), 5);
    assert!(sim.check().is_empty(), "{}", sim.story());
}
