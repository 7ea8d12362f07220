//! The state-machine property tests' harness: random sequences of joins, crashes,
//! restarts, partitions, heals, new transactions and ticks of time, played through the
//! simulator with every invariant of the protocol (`Sim::check`) checked after every
//! event, and a failure report that replays and reads a failing case.

use std::ops::RangeInclusive;
use std::time::Duration;

use p2p_core::sim::{Latency, NodeId, NodeState, Sim, SimConfig};
use p2p_core::{Overlay, Time};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Transitions in a case at most.
const MAX_TRANSITIONS: usize = 40;
/// Story lines a failure report shows (the newest).
const STORY_LINES: usize = 400;
/// Events at one instant of virtual time past which a case fails as a livelock (nodes
/// that answer each other, or redial, at once, so that time never moves on).
const MAX_EVENTS_AT_ONE_INSTANT: u64 = 20_000;

/// One change to the network.
#[derive(Clone, Debug)]
pub(crate) enum Transition {
    /// Start the next node that has never run.
    Join,
    /// Crash node `i % nodes` if it runs.
    Crash(usize),
    /// Restart node `i % nodes` if it is down.
    Restart(usize),
    /// Split the network: bit `i` of the mask puts node `i` in the second group.
    Partition(u16),
    /// End the partition.
    Heal,
    /// A new transaction at node `i % nodes`, if it runs.
    AddTransaction(usize),
    /// Let this many milliseconds of virtual time pass.
    Tick(u64),
}

/// A random transition among `max_nodes` nodes; `joins` weighs joins against the
/// others (crashes 1, restarts 2, partitions 1, heals 1, transactions 3, ticks 4).
fn transition(max_nodes: usize, joins: u32) -> impl Strategy<Value = Transition> {
    prop_oneof![
        joins => Just(Transition::Join),
        1 => (0..max_nodes).prop_map(Transition::Crash),
        2 => (0..max_nodes).prop_map(Transition::Restart),
        1 => any::<u16>().prop_map(Transition::Partition),
        1 => Just(Transition::Heal),
        3 => (0..max_nodes).prop_map(Transition::AddTransaction),
        4 => (0..3000u64).prop_map(Transition::Tick),
    ]
}

/// One random case.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) seed: u64,
    pub(crate) nodes: usize,
    pub(crate) latency_ms: (u64, u64),
    pub(crate) transitions: Vec<Transition>,
}

/// A random case of `nodes` nodes (see [`transition`] for `joins`).
pub(crate) fn case(nodes: RangeInclusive<usize>, joins: u32) -> impl Strategy<Value = Case> {
    let max_nodes = *nodes.end();
    (
        any::<u64>(),
        nodes,
        (0..30u64, 0..120u64),
        prop::collection::vec(transition(max_nodes, joins), 1..=MAX_TRANSITIONS),
    )
        .prop_map(|(seed, nodes, (min, spread), transitions)| Case {
            seed,
            nodes,
            latency_ms: (min, min + spread),
            transitions,
        })
}

/// The running nodes' active views (empty in a full mesh) and open connections.
fn views(sim: &Sim) -> String {
    sim.live_nodes()
        .map(|id| {
            let peers: Vec<String> = sim.active_view(id).iter().map(|p| p.to_string()).collect();
            format!(
                "{id}: [{}] ({} connections)",
                peers.join(" "),
                sim.open_connections(id)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A failed check, with everything needed to replay and read it.
pub(crate) fn failure(case: &Case, sim: &Sim, what: &str) -> TestCaseError {
    let lines: Vec<&str> = sim.log().collect();
    let shown = &lines[lines.len().saturating_sub(STORY_LINES)..];
    let violations: Vec<String> = sim.check().iter().map(ToString::to_string).collect();
    TestCaseError::fail(format!(
        "{what}\nseed {} with {} nodes, latency {:?} ms\ntransitions {:?}\n\
         --- story (last {} of {} lines) ---\n{}\n--- active views at {} ---\n{}\n\
         --- violations ---\n{}",
        case.seed,
        case.nodes,
        case.latency_ms,
        case.transitions,
        shown.len(),
        lines.len(),
        shown.join("\n"),
        sim.now(),
        views(sim),
        violations.join("\n"),
    ))
}

/// Fails the case if an invariant is broken.
pub(crate) fn check(case: &Case, sim: &Sim, after: &str) -> Result<(), TestCaseError> {
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

/// Runs one event at a time, checking after each, while `more` says so and events come
/// no later than `until`; fails a case whose virtual time stands still.
pub(crate) fn run_checked(
    case: &Case,
    sim: &mut Sim,
    until: Time,
    what: &str,
    mut more: impl FnMut(&mut Sim) -> bool,
) -> Result<(), TestCaseError> {
    let mut stuck = (sim.now(), 0);
    while more(sim) && sim.next_event_time().is_some_and(|at| at <= until) {
        sim.step();
        if sim.now() == stuck.0 {
            stuck.1 += 1;
            if stuck.1 > MAX_EVENTS_AT_ONE_INSTANT {
                return Err(failure(
                    case,
                    sim,
                    &format!(
                        "time stands still: over {MAX_EVENTS_AT_ONE_INSTANT} events at {} ({what})",
                        sim.now()
                    ),
                ));
            }
        } else {
            stuck = (sim.now(), 0);
        }
        check(case, sim, what)?;
    }
    Ok(())
}

/// Runs the case's transitions (every node in `overlay` mode if given), checking after
/// each and after every event in between.
pub(crate) fn play(case: &Case, overlay: Option<Overlay>) -> Result<Sim, TestCaseError> {
    let mut config = SimConfig::new(case.seed);
    config.latency = Latency::from_millis(case.latency_ms.0, case.latency_ms.1);
    config.log_capacity = 20_000;
    config.overlay = overlay;
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
                let what = format!("an event in step {step}, {transition:?}");
                run_checked(case, &mut sim, until, &what, |_| true)?;
                sim.run_until(until);
            }
        }
        check(case, &sim, &format!("step {step}, {transition:?}"))?;
    }
    Ok(sim)
}
