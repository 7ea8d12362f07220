//! One seed, one run: the summary (less the wall time) and the whole story repeat.

use p2p_core::sim::{Latency, Scenario};

#[test]
fn the_same_seed_gives_the_same_run() {
    let mut scenario = Scenario::new(12, 15, 99);
    scenario.latency = Latency::from_millis(1, 60);
    scenario.churn = 3;
    scenario.partition = true;
    scenario.log_capacity = 100_000;
    let (first, first_summary) = scenario.run().unwrap();
    let (second, second_summary) = scenario.run().unwrap();
    assert_eq!(first_summary.to_json(), second_summary.to_json());
    assert!(first.log().count() > 100);
    assert!(first.log().eq(second.log()), "the stories differ");
    assert_eq!(first.counters(), second.counters());

    let (_, other) = Scenario {
        seed: 100,
        ..scenario
    }
    .run()
    .unwrap();
    assert_ne!(first_summary.to_json(), other.to_json());
}
