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
use common::transitions::{case, check, failure, play, run_checked, Case};
use std::time::Duration;

use p2p_core::sim::{NodeId, NodeState, Sim};
use p2p_core::Overlay;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Nodes in a case: more than an active view holds, few enough to read a story.
const NODES: std::ops::RangeInclusive<usize> = 2..=16;
/// Virtual time the overlay gets, once the churn stops, to join up and deliver.
const SETTLE: Duration = Duration::from_secs(60);
/// Connections a node may hold in a settled overlay: its links and a few on their way
/// (the bound for real processes).
const MAX_CONNECTIONS: usize = 8;

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
    run_checked(case, sim, until, "an event after the heal", |sim| {
        !sim.is_overlay_converged()
    })?;
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
    fn the_overlay_of_the_running_nodes_is_connected_after_the_churn(case in case(NODES, 4)) {
        let mut sim = play(&case, Some(Overlay::default()))?;
        settle(&case, &mut sim, false)?;
        check_shape(&case, &sim)?;
    }

    /// After the churn stops and every crashed node is back: every transaction made
    /// anywhere is in every pool, carried over the overlay's links (pushes, grafts, or
    /// catch-up of what a crash or a partition kept from a node), and the overlay is
    /// connected with bounded views.
    #[test]
    fn every_transaction_reaches_every_running_node_after_the_heals(case in case(NODES, 4)) {
        let mut sim = play(&case, Some(Overlay::default()))?;
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
