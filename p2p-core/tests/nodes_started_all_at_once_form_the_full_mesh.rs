//! Ten nodes started at the same instant, which the curriculum's nodes cannot do.

use std::time::Duration;

use p2p_core::sim::{Sim, SimConfig};
use p2p_core::Time;

#[test]
fn nodes_started_all_at_once_form_the_full_mesh() {
    for seed in 0..5 {
        let mut sim = Sim::new(SimConfig::new(seed));
        for id in sim.add_nodes(10).unwrap() {
            sim.start(id).unwrap();
        }
        assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
        assert!(sim.is_full_mesh(), "seed {seed}\n{}", sim.story());
        let mesh = sim.first_full_mesh().expect("a full mesh");
        // DESIGN.md: 10 nodes started at once form the mesh in under 1.5 s.
        assert!(
            mesh < Time::from_millis(1500),
            "seed {seed}: mesh at {mesh}"
        );
        assert_eq!(sim.counters().connections, 90, "seed {seed}");
        assert!(sim.check().is_empty(), "seed {seed}\n{}", sim.story());
    }
}
