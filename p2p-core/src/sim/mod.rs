//! A deterministic simulator of whole networks of [`Node`]s.
//!
//! [`Sim`] is the host of many nodes at once: it carries out every [`Action`] they ask
//! for on a virtual network with TCP-like links and a virtual clock. Nothing in it reads
//! a real clock or draws an unseeded random number: every latency, node seed and choice
//! comes from the one seed in [`SimConfig`], so one seed is one run, byte for byte. The
//! property tests, the `simulate` example and the browser demo all drive this one copy.
//!
//! # The network
//!
//! - Node *i* ([`NodeId`]`(i)`) serves `ws://localhost:<4001 + i>` and, unless told
//!   otherwise, knows the curriculum's peers `ws://localhost:4001` and `ws://localhost:4003`.
//! - A dial takes a latency drawn from [`SimConfig::latency`]; then it opens (the server
//!   accepts and the dialler is told, at the same instant) or, if nobody listens there or a
//!   partition is in the way, fails.
//! - Each frame takes its own latency, but a connection never reorders: a frame arrives at
//!   `max(now + latency, arrival of the frame before it)`. A close travels the same way,
//!   behind the frames sent before it, so it is like a TCP FIN.
//! - A node that closes a connection is told it closed at once; its peer after a latency.
//!   A crash closes every connection of the node on both sides, drops the frames on their
//!   way to it and forgets its dials; the pool it persisted survives, as a file would, and
//!   is handed to the new [`Node`] on restart.
//! - A partition splits the nodes into groups: connections across are closed at once on
//!   both sides, and dials across fail, until [`Sim::heal`].
//!
//! # Driving it
//!
//! Like quinn-proto's test `Pair` and str0m's `progress`, the simulator keeps one queue
//! of everything that will happen (frame arrivals, dial outcomes, closes, node timeouts,
//! scheduled [`Command`]s) ordered by virtual time, and jumps the clock to the next one.
//! [`Sim::step`] processes one, [`Sim::run_until`] every one up to a time, and
//! [`Sim::run_until_quiet`] runs until nothing is left but far-future timers, or a time
//! limit passes. Faults and transactions are applied now ([`Sim::crash`],
//! [`Sim::partition`], [`Sim::add_transaction`], …) or scheduled ([`Sim::schedule`]);
//! [`Scenario`] schedules a whole run at once.
//!
//! # Watching it
//!
//! [`Sim::counters`] counts frames by type, [`Sim::link_frames`] by link;
//! [`Sim::connected_to`] and [`Sim::pool`] say who is connected to whom and what each pool
//! holds ([`Sim::connections`] for all at once). Every notice a node logs is written as
//! `"<virtual time> node-<i>: <notice>"` in a bounded log ([`SimConfig::log_capacity`]),
//! so a failing seed reads like a story ([`Sim::story`]). [`Sim::check`] lists every
//! broken invariant of the protocol seen so far or true now (a node dialling itself, two
//! connections to one server, a HANDSHAKE listing a connection that is not open, a
//! transaction pooled twice, …; in overlay mode, an active view over its bound, naming
//! a peer it holds no connection to, or a connection between overlay nodes left open
//! that is no link).
//!
//! With nodes in overlay mode ([`SimConfig::overlay`]), [`Sim::active_view`] and
//! [`Sim::is_overlay_connected`] show the graph of active-view links; whether it is
//! connected is sampled as the run goes ([`Sim::overlay_changes`],
//! [`Sim::overlay_reconnected_after`]), and [`Sim::run_until_overlay_converged`] ends a
//! run that, with its periodic shuffles, never goes quiet.
//!
//! # Where things are
//!
//! - `driver.rs`: [`Sim`] itself: the host of each node (its process, disk and sockets),
//!   commands carried out (start, crash, restart, transactions), the actions nodes ask
//!   for carried out, and the stepping of the virtual clock; its [`SimConfig`] and errors.
//! - `queue.rs`: the queue of everything that will happen, earliest first, node timers
//!   kept apart so that a superseded one is dropped cheaply.
//! - `links.rs`: the network between the nodes: [`Latency`], connections that carry frames
//!   and closes in order, dials, partitions, and frames lost on a closed end.
//! - `checks.rs`: the protocol's invariants ([`Sim::check`], HANDSHAKE and dial checks),
//!   when the nodes first formed one full mesh, and the share of transactions delivered.
//! - `overlay.rs`: the overlay mode's graph, noted view by view after each input and
//!   sampled for connectedness; when a run of it has converged.
//! - `record.rs`: what is counted ([`Counters`], [`FrameCounts`]) and written down (the
//!   story, [`Violation`]s).
//! - `scenario.rs`: the vocabulary of runs: [`Command`], and [`Scenario`], a whole run
//!   planned from a seed, with its [`Summary`].
//! - `tests.rs`: unit tests of the simulated network.
//!
//! [`Node`]: crate::Node
//! [`Action`]: crate::Action

use std::fmt;

use crate::address::Address;

mod checks;
mod driver;
mod links;
mod overlay;
mod queue;
mod record;
mod scenario;
#[cfg(test)]
mod tests;

pub use driver::{Event, NodeState, Outcome, RunReport, Sim, SimConfig, SimError};
pub use links::{InFlight, Latency};
pub use record::{Counters, FrameCounts, FrameKind, LogEntry, Spread, Violation};
pub use scenario::{Command, Scenario, Summary};

/// The port of node 0; node *i* serves on `FIRST_PORT + i`.
pub const FIRST_PORT: u16 = 4001;

/// A simulated node, by the order it was added.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

impl NodeId {
    /// The port it serves on, if `4001 + index` is a port.
    pub fn port(self) -> Option<u16> {
        u16::try_from(self.0)
            .ok()
            .and_then(|i| FIRST_PORT.checked_add(i))
    }

    /// Its address, `ws://localhost:<port>`.
    pub fn address(self) -> Option<Address> {
        self.port().map(Address::localhost)
    }
}

/// Named as the curriculum names node folders: `NodeId(0)` serves port 4001, `node-1`.
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0 + 1)
    }
}
