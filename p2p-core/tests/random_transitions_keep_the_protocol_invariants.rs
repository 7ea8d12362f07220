//! Property tests, state-machine style: random sequences of joins, crashes, restarts,
//! partitions, heals, new transactions and ticks of time, driven through the simulator,
//! with every invariant of the protocol checked after every step.
//!
//! A failing case prints its seed, its transitions and the network's story, node by node.
//! `PROPTEST_CASES` sets the number of cases (default 256 for the invariants).

mod common;

use common::cases;
use common::transitions::{case, check, failure, play, run_checked, Case, Transition};
use std::time::Duration;

use p2p_core::sim::{NodeId, NodeState, Sim};
use p2p_core::Time;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Nodes in a case: small enough to read a failing story.
const NODES: std::ops::RangeInclusive<usize> = 2..=8;

/// Heals the partition and makes sure node-0, the known peer every node keeps dialling,
/// runs (if it ever ran): without a known peer up, a node that joined while every known
/// peer was away has no way to find the others, as in the curriculum. Then runs until
/// quiet, checking after every event, for at most two minutes of virtual time (a known
/// peer that stays down keeps the others redialling, so "quiet" may not come).
fn settle(case: &Case, sim: &mut Sim) -> Result<(), TestCaseError> {
    sim.heal();
    if sim.state(NodeId(0)) == Some(NodeState::Down) {
        let _ = sim.restart(NodeId(0));
    }
    let until = sim.now() + Duration::from_secs(120);
    run_checked(case, sim, until, "an event after the heal", |sim| {
        !sim.is_quiet()
    })?;
    check(case, sim, "the heal")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// After every step: no node dials itself; never two dials or two connections to one
    /// server; `connectedAddresses` is exactly the open dialled connections; every
    /// HANDSHAKE lists its sender first and then only open connections; no pool holds a
    /// transaction twice. After the heal and quiet: one full mesh of the running nodes.
    #[test]
    fn random_transitions_keep_the_protocol_invariants(case in case(NODES, 3)) {
        let mut sim = play(&case, None)?;
        settle(&case, &mut sim)?;
        if !sim.is_full_mesh() {
            return Err(failure(&case, &sim, "no full mesh of the running nodes after the heal"));
        }
    }

    /// After the heal and quiet, every transaction that any running node holds is in every
    /// running node's pool: a node that was down, partitioned away or not yet started when
    /// a transaction spread gets it by catch-up. (A transaction only ever held by nodes
    /// that are down at the end cannot be anywhere else.)
    #[test]
    fn every_transaction_reaches_every_running_pool_after_the_heal(case in case(NODES, 3)) {
        let mut sim = play(&case, None)?;
        settle(&case, &mut sim)?;
        let live: Vec<NodeId> = sim.live_nodes().collect();
        for tx in sim.transactions() {
            if !live.iter().any(|&id| sim.has_transaction(id, tx.hash())) {
                continue;
            }
            for &id in &live {
                if !sim.has_transaction(id, tx.hash()) {
                    return Err(failure(
                        &case,
                        &sim,
                        &format!("{id} lacks transaction {} at {}", tx.short_hash(), sim.now()),
                    ));
                }
            }
        }
    }
}

#[test]
fn the_transitions_replay_the_same_way() {
    let case = Case {
        seed: 5,
        nodes: 5,
        latency_ms: (1, 40),
        transitions: vec![
            Transition::Join,
            Transition::Join,
            Transition::Join,
            Transition::Tick(500),
            Transition::AddTransaction(1),
            Transition::Partition(0b00110),
            Transition::Join,
            Transition::Crash(0),
            Transition::Tick(2000),
            Transition::Restart(0),
            Transition::Join,
            Transition::AddTransaction(3),
            Transition::Heal,
            Transition::Tick(2500),
        ],
    };
    let first = play(&case, None).unwrap();
    let second = play(&case, None).unwrap();
    assert!(first.log().eq(second.log()));
    assert_eq!(first.now(), Time::from_millis(5000));
}
