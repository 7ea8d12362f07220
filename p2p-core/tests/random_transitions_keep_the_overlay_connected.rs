//! Property tests of the overlay mode (issue 12), state-machine style: random sequences of
//! joins, crashes, restarts, partitions, heals, new transactions and ticks of time, with
//! every node in overlay mode, and every invariant of the protocol checked after every
//! event (`Sim::check`, which in overlay mode also bounds each active view by
//! `Overlay::active` and holds it to peers the node has an open connection to). Then the
//! churn stops: the partition heals, the known peer runs again, and once the overlay has
//! had time to settle, the running nodes' active-view links form one connected graph,
//! each node holds a few connections, not one per node, and every transaction is in
//! every running pool.
//!
//! A failing case prints its seed, its transitions and the network's story, node by node.
//! `PROPTEST_CASES` sets the number of cases (default 64).

mod common;

use common::cases;
use std::time::Duration;

use p2p_core::sim::{Latency, NodeId, NodeState, Sim, SimConfig};
use p2p_core::Overlay;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Nodes in a case: more than an active view holds, few enough to read a story.
const NODES: std::ops::RangeInclusive<usize> = 2..=16;
/// Transitions in a case at most.
const MAX_TRANSITIONS: usize = 40;
/// Story lines a failure report shows (the newest).
const STORY_LINES: usize = 400;
/// Virtual time the overlay gets, once the churn stops, to join up and deliver.
const SETTLE: Duration = Duration::from_secs(60);
/// Connections a node may hold in a settled overlay: its links and a few on their way
/// (the bound for real processes).
const MAX_CONNECTIONS: usize = 8;
/// Events at one instant of virtual time past which a case fails as a livelock (nodes
/// that answer each other, or redial, at once, so that time never moves on).
const MAX_EVENTS_AT_ONE_INSTANT: u64 = 20_000;

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
    Partition(u16),
    /// End the partition.
    Heal,
    /// A new transaction at node `i % nodes`, if it runs.
    AddTransaction(usize),
    /// Let this many milliseconds of virtual time pass.
    Tick(u64),
}

fn transition() -> impl Strategy<Value = Transition> {
    prop_oneof![
        4 => Just(Transition::Join),
        1 => (0..*NODES.end()).prop_map(Transition::Crash),
        2 => (0..*NODES.end()).prop_map(Transition::Restart),
        1 => any::<u16>().prop_map(Transition::Partition),
        1 => Just(Transition::Heal),
        3 => (0..*NODES.end()).prop_map(Transition::AddTransaction),
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
        NODES,
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

/// The running nodes' active views, as `node-i: [peers]`, for a failure report.
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
fn failure(case: &Case, sim: &Sim, what: &str) -> TestCaseError {
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

/// One event, then the invariants; fails a case whose virtual time stands still.
fn step_checked(
    case: &Case,
    sim: &mut Sim,
    stuck: &mut (p2p_core::Time, u64),
    what: &str,
) -> Result<(), TestCaseError> {
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
        *stuck = (sim.now(), 0);
    }
    check(case, sim, what)
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

/// Runs until `until`, checking after every event.
fn run_checked(
    case: &Case,
    sim: &mut Sim,
    until: p2p_core::Time,
    what: &str,
) -> Result<(), TestCaseError> {
    let mut stuck = (sim.now(), 0);
    while sim.next_event_time().is_some_and(|at| at <= until) {
        step_checked(case, sim, &mut stuck, what)?;
    }
    sim.run_until(until);
    Ok(())
}

/// Runs the case's transitions with every node in overlay mode, checking after each and
/// after every event in between.
fn play(case: &Case) -> Result<Sim, TestCaseError> {
    let mut config = SimConfig::new(case.seed);
    config.latency = Latency::from_millis(case.latency_ms.0, case.latency_ms.1);
    config.log_capacity = 20_000;
    config.overlay = Some(Overlay::default());
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
                run_checked(
                    case,
                    &mut sim,
                    until,
                    &format!("an event in step {step}, {transition:?}"),
                )?;
            }
        }
        check(case, &sim, &format!("step {step}, {transition:?}"))?;
    }
    Ok(sim)
}

/// The churn stops: the partition heals and node-1 (port 4001, the known peer every node
/// starts from and falls back to) runs if it ever ran; without it, a node that joined
/// while every known peer was away has no way to find the others. With `restart_all`,
/// every crashed node comes back too (so that every transaction is held by a running
/// node). Then the overlay gets [`SETTLE`] to join up, checked after every event; the
/// run stops early once a sample finds it connected and every running node holds every
/// transaction.
fn settle(case: &Case, sim: &mut Sim, restart_all: bool) -> Result<(), TestCaseError> {
    sim.heal();
    let down: Vec<NodeId> = sim
        .nodes()
        .filter(|&id| sim.state(id) == Some(NodeState::Down))
        .filter(|&id| restart_all || id == NodeId(0))
        .collect();
    for id in down {
        let _ = sim.restart(id);
    }
    let until = sim.now() + SETTLE;
    let mut stuck = (sim.now(), 0);
    while sim.next_event_time().is_some_and(|at| at <= until) {
        if sim.is_overlay_converged() {
            break;
        }
        step_checked(case, sim, &mut stuck, "an event after the heal")?;
    }
    check(case, sim, "the heal")
}

/// The settled overlay's shape: connected, every active view within its bound and not
/// empty (with another node running), and a few connections per node.
fn check_shape(case: &Case, sim: &Sim) -> Result<(), TestCaseError> {
    let live: Vec<NodeId> = sim.live_nodes().collect();
    if !sim.is_overlay_connected() {
        return Err(failure(
            case,
            sim,
            &format!(
                "the running nodes' overlay is not connected {SETTLE:?} after the churn stopped"
            ),
        ));
    }
    let bound = Overlay::default().active;
    for &id in &live {
        let view = sim.active_view(id).len();
        if view > bound || (view == 0 && live.len() > 1) {
            return Err(failure(
                case,
                sim,
                &format!("{id} holds an active view of {view} (want 1 to {bound})"),
            ));
        }
        let connections = sim.open_connections(id);
        if connections > MAX_CONNECTIONS {
            return Err(failure(
                case,
                sim,
                &format!(
                    "{id} holds {connections} connections in a settled overlay (at most {MAX_CONNECTIONS})"
                ),
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    /// After every step the protocol's invariants hold, active views within their bound.
    /// After the churn stops: the running nodes' overlay is connected, every node has
    /// at least one link and at most `Overlay::active`, and a few connections.
    #[test]
    fn the_overlay_of_the_running_nodes_is_connected_after_the_churn(case in case()) {
        let mut sim = play(&case)?;
        settle(&case, &mut sim, false)?;
        check_shape(&case, &sim)?;
    }

    /// After the churn stops and every crashed node is back: every transaction made
    /// anywhere is in every pool, carried over the overlay's links (pushes, grafts, or
    /// catch-up of what a crash or a partition kept from a node), and the overlay is
    /// connected with bounded views.
    #[test]
    fn every_transaction_reaches_every_running_node_after_the_heals(case in case()) {
        let mut sim = play(&case)?;
        settle(&case, &mut sim, true)?;
        let live: Vec<NodeId> = sim.live_nodes().collect();
        for tx in sim.transactions() {
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
        check_shape(&case, &sim)?;
    }
}
