//! The `simulate` run in small: late starts, transactions, crashes and restarts and a
//! partition, then quiet: one full mesh and no broken invariant.

use p2p_core::sim::{Latency, Scenario};

#[test]
fn a_scenario_with_churn_and_a_partition_converges() {
    for seed in 1..=3 {
        let mut scenario = Scenario::new(20, 30, seed);
        scenario.latency = Latency::from_millis(1, 80);
        scenario.churn = 4;
        scenario.partition = true;
        scenario.check_frames = true;
        scenario.log_capacity = 20_000;
        let (sim, summary) = scenario.run().unwrap();
        assert!(
            summary.converged,
            "seed {seed}: {}\n{}",
            summary.to_json(),
            sim.story()
        );
        assert!(summary.mesh_ms.is_some());
        assert!(sim.check().is_empty(), "seed {seed}\n{}", sim.story());
        let json = summary.to_json_with_wall_ms(7);
        assert!(json.starts_with(r#"{"nodes":20,"seed":"#), "{json}");
        assert!(json.ends_with(r#","wall_ms":7}"#), "{json}");
    }
}
