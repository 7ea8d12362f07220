//! Property tests, state-machine style: random sequences of joins, crashes, restarts,
//! partitions, heals, new transactions and ticks of time, driven through the simulator,
//! with every invariant of the protocol checked after every step.
//!
//! A failing case prints its seed, its transitions and the network's story, node by node.
//! `PROPTEST_CASES` sets the number of cases (default 256 for the invariants).

mod common;

use common::cases;
use std::time::Duration;

use p2p_core::sim::{NodeId, NodeState, Sim, SimConfig};
use p2p_core::Time;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Nodes in a case at most: small enough to read a failing story.
const MAX_NODES: usize = 8;
/// Transitions in a case at most.
const MAX_TRANSITIONS: usize = 40;
/// Story lines a failure report shows (the newest).
const STORY_LINES: usize = 400;

/// One change to the network.
#[derive(Clone, Debug)]
enum Transition {
    /// Start the next node that has never run.
    Join,
    /// Crash node `i % nodes` if it runs.
    Crash(usize),
    /// Restart node `i % nodes` if it is down.
    Restart(usize),
    /// Split the network: bit `i` of the mask puts node `i` in the second group.
    Partition(u8),
    /// End the partition.
    Heal,
    /// A new transaction at node `i % nodes`, if it runs.
    AddTransaction(usize),
    /// Let this many milliseconds of virtual time pass.
    Tick(u64),
}

fn transition() -> impl Strategy<Value = Transition> {
    prop_oneof![
        3 => Just(Transition::Join),
        1 => (0..MAX_NODES).prop_map(Transition::Crash),
        2 => (0..MAX_NODES).prop_map(Transition::Restart),
        1 => any::<u8>().prop_map(Transition::Partition),
        1 => Just(Transition::Heal),
        3 => (0..MAX_NODES).prop_map(Transition::AddTransaction),
        4 => (0..3000u64).prop_map(Transition::Tick),
    ]
}

/// One random case.
#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    nodes: usize,
    latency_ms: (u64, u64),
    transitions: Vec<Transition>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        2..=MAX_NODES,
        (0..30u64, 0..120u64),
        prop::collection::vec(transition(), 1..=MAX_TRANSITIONS),
    )
        .prop_map(|(seed, nodes, (min, spread), transitions)| Case {
            seed,
            nodes,
            latency_ms: (min, min + spread),
            transitions,
        })
}

/// A failed check, with everything needed to replay and read it.
fn failure(case: &Case, sim: &Sim, what: &str) -> TestCaseError {
    let lines: Vec<&str> = sim.log().collect();
    let shown = &lines[lines.len().saturating_sub(STORY_LINES)..];
    let violations: Vec<String> = sim.check().iter().map(ToString::to_string).collect();
    TestCaseError::fail(format!(
        "{what}\nseed {} with {} nodes, latency {:?} ms\ntransitions {:?}\n\
         --- story (last {} of {} lines) ---\n{}\n--- violations ---\n{}",
        case.seed,
        case.nodes,
        case.latency_ms,
        case.transitions,
        shown.len(),
        lines.len(),
        shown.join("\n"),
        violations.join("\n"),
    ))
}

fn check(case: &Case, sim: &Sim, after: &str) -> Result<(), TestCaseError> {
    if sim.check().is_empty() {
        Ok(())
    } else {
        Err(failure(
            case,
            sim,
            &format!("invariant broken after {after}"),
        ))
    }
}

/// Runs the case's transitions, checking after each and after every event in between.
fn play(case: &Case) -> Result<Sim, TestCaseError> {
    let mut config = SimConfig::new(case.seed);
    config.latency = p2p_core::sim::Latency::from_millis(case.latency_ms.0, case.latency_ms.1);
    config.log_capacity = 20_000;
    let mut sim = Sim::new(config);
    sim.add_nodes(case.nodes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let node = |i: usize| NodeId(i % case.nodes);
    for (step, transition) in case.transitions.iter().enumerate() {
        match *transition {
            Transition::Join => {
                let next = sim
                    .nodes()
                    .find(|&id| sim.state(id) == Some(NodeState::NotStarted));
                if let Some(id) = next {
                    let _ = sim.start(id);
                }
            }
            Transition::Crash(i) => {
                let _ = sim.crash(node(i));
            }
            Transition::Restart(i) => {
                let _ = sim.restart(node(i));
            }
            Transition::Partition(mask) => {
                let (a, b): (Vec<NodeId>, Vec<NodeId>) =
                    sim.nodes().partition(|id| mask & (1 << id.0) == 0);
                let _ = sim.partition(&[a, b]);
            }
            Transition::Heal => sim.heal(),
            Transition::AddTransaction(i) => {
                if sim.is_live(node(i)) {
                    let _ = sim.add_new_transaction(node(i));
                }
            }
            Transition::Tick(ms) => {
                let until = sim.now() + Duration::from_millis(ms);
                while sim.next_event_time().is_some_and(|at| at <= until) {
                    sim.step();
                    check(
                        case,
                        &sim,
                        &format!("an event in step {step}, {transition:?}"),
                    )?;
                }
                sim.run_until(until);
            }
        }
        check(case, &sim, &format!("step {step}, {transition:?}"))?;
    }
    Ok(sim)
}

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
    while !sim.is_quiet() && sim.next_event_time().is_some_and(|at| at <= until) {
        sim.step();
        check(case, sim, "an event after the heal")?;
    }
    check(case, sim, "the heal")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// After every step: no node dials itself; never two dials or two connections to one
    /// server; `connectedAddresses` is exactly the open dialled connections; every
    /// HANDSHAKE lists its sender first and then only open connections; no pool holds a
    /// transaction twice. After the heal and quiet: one full mesh of the running nodes.
    #[test]
    fn random_transitions_keep_the_protocol_invariants(case in case()) {
        let mut sim = play(&case)?;
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
    fn every_transaction_reaches_every_running_pool_after_the_heal(case in case()) {
        let mut sim = play(&case)?;
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
    let first = play(&case).unwrap();
    let second = play(&case).unwrap();
    assert!(first.log().eq(second.log()));
    assert_eq!(first.now(), Time::from_millis(5000));
}
