//! The simulator itself: the hosts of the nodes (process, disk and sockets of each), the
//! commands that start, crash and restart them, carrying out the actions they ask for,
//! and the loop that steps the virtual clock from one event to the next.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::links::{End, Latency, Link};
use super::overlay::OverlayWatch;
use super::queue::{Pending, Queue};
use super::record::{Log, LogEntry, Spread};
use super::{Command, Counters, FrameCounts, FrameKind, NodeId, Violation, FIRST_PORT};
use crate::address::Address;
use crate::config::{Config, Overlay};
use crate::node::{Action, DialId, Level, Node};
use crate::rng::Rng;
use crate::time::Time;
use crate::transaction::Transaction;

/// `timeStamp` of transactions made at virtual time zero (ms since the Unix epoch), so
/// they look like the curriculum's.
const EPOCH_MS: u64 = 1_700_000_000_000;

/// How the simulated network behaves and what it records.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The one seed of every random choice: node seeds, latencies, new transactions.
    pub seed: u64,
    /// One-way latency of dials, frames and closes.
    pub latency: Latency,
    /// The `known-peers.json` of every node added with [`Sim::add_node`].
    pub known_peers: Vec<Address>,
    /// Story lines kept (the newest); 0 records none and costs nothing.
    pub log_capacity: usize,
    /// Notices of this level or more important are written to the log.
    pub log_level: Level,
    /// Decode every HANDSHAKE sent to check what it lists (costs as much again as the
    /// receiving node's work; turn off for large runs).
    pub check_frames: bool,
    /// Decode every frame that carries transactions to record how each transaction
    /// spreads ([`Sim::spread`]: hops and copies); off by default, as it costs a decode per
    /// frame delivered.
    pub measure_spread: bool,
    /// [`Sim::run_until_quiet`] stops when nothing is in flight and no node needs waking
    /// within this long.
    pub quiet_horizon: Duration,
    /// [`Sim::run_until_quiet`] stops after this many events in one call, whatever the
    /// clock says, in case a protocol loop keeps virtual time from moving.
    pub max_events_per_run: u64,
    /// The `Config::overlay` of every node added with [`Sim::add_node`]: `None` (the
    /// default) is the full mesh.
    pub overlay: Option<Overlay>,
    /// While any node runs in overlay mode, whether its graph of active-view links is
    /// connected is sampled at the first event this long after the last sample
    /// ([`Sim::overlay_changes`]): a pass over every node, so not after every event.
    pub overlay_sample_every: Duration,
}

impl SimConfig {
    /// The defaults with `seed`: 1–20 ms latency, the curriculum's known peers, a log of
    /// the last 10 000 lines at [`Level::Debug`], frame checks on.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            latency: Latency::default(),
            known_peers: vec![Address::localhost(4001), Address::localhost(4003)],
            log_capacity: 10_000,
            log_level: Level::Debug,
            check_frames: true,
            measure_spread: false,
            quiet_horizon: Duration::from_secs(30),
            max_events_per_run: 1_000_000_000,
            overlay: None,
            overlay_sample_every: Duration::from_millis(100),
        }
    }
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig::new(0)
    }
}

/// Why the simulator could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Every port from 4001 up is taken.
    #[error("no port is left for another node")]
    NoPortLeft,
    /// The node was never added.
    #[error("there is no {0}")]
    UnknownNode(NodeId),
    /// It was started before (restart it after a crash instead).
    #[error("{0} has started before")]
    AlreadyStarted(NodeId),
    /// It has never been started.
    #[error("{0} has not started")]
    NotStarted(NodeId),
    /// It is crashed.
    #[error("{0} is down")]
    Down(NodeId),
    /// It is running, so it cannot be restarted.
    #[error("{0} is running")]
    Running(NodeId),
    /// No node is running to take a transaction.
    #[error("no node is running")]
    NoLiveNode,
}

/// Where a node is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Added, never started.
    NotStarted,
    /// Running.
    Up,
    /// Crashed; its stored pool waits for a restart.
    Down,
}

/// What one [`Sim::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A command was carried out, or refused with `error`.
    Command {
        /// The command.
        command: Command,
        /// Why it was refused, if it was.
        error: Option<SimError>,
    },
    /// A dial opened: `to` accepted a connection and `from` was told.
    DialOpened {
        /// The dialler.
        from: NodeId,
        /// The server.
        to: NodeId,
    },
    /// A dial failed and the dialler was told.
    DialFailed {
        /// The dialler.
        from: NodeId,
        /// What it dialled.
        address: Address,
    },
    /// A frame reached a node.
    Delivered {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// Its type.
        kind: FrameKind,
    },
    /// A frame arrived at a connection end that had closed, and was lost.
    Dropped {
        /// The sender.
        from: NodeId,
        /// The would-be receiver.
        to: NodeId,
        /// Its type.
        kind: FrameKind,
    },
    /// A node was told one of its connections closed.
    Closed {
        /// The node told.
        node: NodeId,
        /// The other end.
        peer: NodeId,
    },
    /// A node's timer fired.
    Timeout {
        /// The node.
        node: NodeId,
    },
    /// Something that no longer mattered: news for a node that crashed since, or a close
    /// of a connection already closed.
    Moot,
}

/// How a run of [`Sim::run_until_quiet`] ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing in flight and no timer due within the quiet horizon.
    Quiet,
    /// The time limit came first.
    TimeLimit,
    /// The event budget ([`SimConfig::max_events_per_run`]) ran out.
    EventLimit,
    /// What the run waited for came ([`Sim::run_until_overlay_converged`]).
    Converged,
}

/// What a drive loop did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// Events processed.
    pub events: u64,
    /// Why it stopped.
    pub outcome: Outcome,
}

impl RunReport {
    /// Whether the network went quiet.
    pub fn is_quiet(&self) -> bool {
        self.outcome == Outcome::Quiet
    }
}

enum HostState {
    NotStarted,
    Up(Box<Node>),
    Down,
}

/// The simulator's side of one node: its process, its disk and its sockets.
pub(super) struct Host {
    pub(super) address: Address,
    /// What the node is made with at every start, less the seed.
    pub(super) config: Config,
    state: HostState,
    /// The persisted pool, in order: what `transactions.json` would hold.
    pub(super) store: Vec<Transaction>,
    stored: BTreeSet<String>,
    /// Bumped at every crash, so news for the crashed process is dropped.
    pub(super) epoch: u32,
    /// The wake-up in the queue, if any.
    timer: Option<Time>,
    pub(super) listening: bool,
    pub(super) group: usize,
    /// Links where this node's end is not closed.
    pub(super) ends: BTreeSet<u64>,
    /// Dials asked for and not answered.
    pub(super) dialling: BTreeMap<DialId, Address>,
    /// The node's view of its dialled connections (ends not yet told closed), per server.
    pub(super) out: BTreeMap<NodeId, u32>,
    /// Nodes whose view holds a dialled connection to this one.
    pub(super) dialled_by: BTreeSet<NodeId>,
    /// Frames sent, per receiver that got any: a map, as an overlay node talks to a few
    /// nodes among thousands.
    pub(super) sent_to: BTreeMap<NodeId, FrameCounts>,
}

impl Host {
    pub(super) fn is_up(&self) -> bool {
        matches!(self.state, HostState::Up(_))
    }

    pub(super) fn node(&self) -> Option<&Node> {
        match &self.state {
            HostState::Up(node) => Some(node),
            _ => None,
        }
    }
}

/// Many [`Node`]s on a virtual network. See the [module docs](crate::sim).
pub struct Sim {
    pub(super) config: SimConfig,
    pub(super) rng: Rng,
    pub(super) now: Time,
    pub(super) queue: Queue,
    pub(super) hosts: Vec<Host>,
    /// Every connection ever opened, by id; `None` once both ends closed.
    pub(super) links: Vec<Option<Link>>,
    /// Running nodes.
    pub(super) live: usize,
    /// Ordered pairs of running nodes (a, b) where a's view holds a dialled connection to b.
    pub(super) mesh_pairs: usize,
    pub(super) first_full_mesh: Option<Time>,
    pub(super) counters: Counters,
    pub(super) log: Log,
    pub(super) violations: Vec<Violation>,
    pub(super) violation_count: u64,
    /// Every distinct transaction added at any node, in order.
    pub(super) transactions: Vec<Transaction>,
    added: BTreeSet<String>,
    pub(super) spread: Spread,
    /// Transactions stored by running nodes, summed: every running node holds every
    /// transaction when this is `live` times the transactions added.
    pub(super) live_stored: usize,
    pub(super) overlay: OverlayWatch,
    last_time_stamp: u64,
    scratch: Vec<Action>,
}

impl Sim {
    /// An empty network at virtual time zero.
    pub fn new(config: SimConfig) -> Sim {
        Sim {
            rng: Rng::new(config.seed),
            log: Log::new(config.log_capacity),
            config,
            now: Time::ZERO,
            queue: Queue::default(),
            hosts: Vec::new(),
            links: Vec::new(),
            live: 0,
            mesh_pairs: 0,
            first_full_mesh: None,
            counters: Counters::default(),
            violations: Vec::new(),
            violation_count: 0,
            transactions: Vec::new(),
            added: BTreeSet::new(),
            spread: Spread::default(),
            live_stored: 0,
            overlay: OverlayWatch::default(),
            last_time_stamp: 0,
            scratch: Vec::new(),
        }
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Adds a node with the default known peers; it does nothing until started.
    pub fn add_node(&mut self) -> Result<NodeId, SimError> {
        self.add_node_with(|_| {})
    }

    /// Adds `count` nodes with [`Sim::add_node`].
    pub fn add_nodes(&mut self, count: usize) -> Result<Vec<NodeId>, SimError> {
        (0..count).map(|_| self.add_node()).collect()
    }

    /// Adds a node whose [`Config`] `customise` may change (known peers, limits, backoff,
    /// aliases). Its address stays `ws://localhost:<4001 + index>`, since that is how the
    /// network finds it, and its seed is drawn from the simulation's at every start.
    pub fn add_node_with(
        &mut self,
        customise: impl FnOnce(&mut Config),
    ) -> Result<NodeId, SimError> {
        let id = NodeId(self.hosts.len());
        let address = id.address().ok_or(SimError::NoPortLeft)?;
        let mut config = Config::new(address.clone());
        config.known_peers = self.config.known_peers.clone();
        config.overlay = self.config.overlay.clone();
        customise(&mut config);
        config.address = address.clone();
        if config.overlay.is_some() {
            self.overlay.nodes += 1;
        }
        self.hosts.push(Host {
            address,
            config,
            state: HostState::NotStarted,
            store: Vec::new(),
            stored: BTreeSet::new(),
            epoch: 0,
            timer: None,
            listening: false,
            group: 0,
            ends: BTreeSet::new(),
            dialling: BTreeMap::new(),
            out: BTreeMap::new(),
            dialled_by: BTreeSet::new(),
            sent_to: BTreeMap::new(),
        });
        Ok(id)
    }

    // ----- faults and inputs -----------------------------------------------------------

    /// Carries out `command` now.
    pub fn apply(&mut self, command: Command) -> Result<(), SimError> {
        let result = match &command {
            Command::Start(id) => self.start(*id),
            Command::Crash(id) => self.crash(*id),
            Command::Restart(id) => self.restart(*id),
            Command::Partition(groups) => self.partition(groups),
            Command::Heal => {
                self.heal();
                Ok(())
            }
            Command::AddTransaction(id) => self.add_new_transaction_near(*id).map(|_| ()),
        };
        if let Err(error) = &result {
            self.log
                .write(self.now, None, format_args!("cannot {command}: {error}"));
        }
        result
    }

    /// Carries out `command` at `at` (or now, if `at` has passed). Commands scheduled for
    /// one instant run in the order scheduled; one that cannot be carried out then is
    /// logged and skipped.
    pub fn schedule(&mut self, at: Time, command: Command) {
        self.queue.push(at.max(self.now), Pending::Command(command));
    }

    /// Starts a node that never ran.
    pub fn start(&mut self, id: NodeId) -> Result<(), SimError> {
        match self.host(id)?.state {
            HostState::NotStarted => {}
            HostState::Up(_) | HostState::Down => return Err(SimError::AlreadyStarted(id)),
        }
        self.log.write(self.now, None, format_args!("{id} starts"));
        self.boot(id);
        Ok(())
    }

    /// Crashes a running node: every connection of it closes on both sides, frames on their
    /// way to it are lost, and its dials are forgotten. Its stored pool is kept.
    pub fn crash(&mut self, id: NodeId) -> Result<(), SimError> {
        match self.host(id)?.state {
            HostState::Up(_) => {}
            HostState::NotStarted => return Err(SimError::NotStarted(id)),
            HostState::Down => return Err(SimError::Down(id)),
        }
        self.log.write(self.now, None, format_args!("{id} crashes"));
        self.go_down(id);
        let host = &mut self.hosts[id.0];
        host.state = HostState::Down;
        host.epoch = host.epoch.wrapping_add(1);
        host.timer = None;
        host.listening = false;
        host.dialling.clear();
        self.overlay.started_or_stopped(id, false);
        let ends = std::mem::take(&mut host.ends);
        self.cut_links(id, ends);
        self.after_change();
        Ok(())
    }

    /// Starts a crashed node again, with the pool it had stored.
    pub fn restart(&mut self, id: NodeId) -> Result<(), SimError> {
        match self.host(id)?.state {
            HostState::Down => {}
            HostState::NotStarted => return Err(SimError::NotStarted(id)),
            HostState::Up(_) => return Err(SimError::Running(id)),
        }
        let stored = self.hosts[id.0].store.len();
        self.log.write(
            self.now,
            None,
            format_args!("{id} restarts with {stored} stored transactions"),
        );
        self.boot(id);
        Ok(())
    }

    /// Gives `tx` to a running node as if its user made it. Says whether it was new there.
    pub fn add_transaction(&mut self, id: NodeId, tx: Transaction) -> Result<bool, SimError> {
        match self.host(id)?.state {
            HostState::Up(_) => {}
            HostState::NotStarted => return Err(SimError::NotStarted(id)),
            HostState::Down => return Err(SimError::Down(id)),
        }
        self.log.write(
            self.now,
            None,
            format_args!("transaction {} enters at {id}", tx.short_hash()),
        );
        if self.added.insert(tx.hash().to_owned()) {
            self.transactions.push(tx.clone());
            if self.config.measure_spread {
                self.spread.originated(tx.hash(), id);
            }
        }
        let mut new = false;
        self.input(id, false, |node, now| new = node.add_transaction(tx, now));
        self.after_change();
        Ok(new)
    }

    /// Makes a new transaction (a fresh hash) and gives it to a running node.
    pub fn add_new_transaction(&mut self, id: NodeId) -> Result<Transaction, SimError> {
        self.host(id)?;
        let tx = self.new_transaction();
        self.add_transaction(id, tx.clone())?;
        Ok(tx)
    }

    /// A transaction no one has seen, as `add-transaction` makes it in a cloned node:
    /// `toAddress` null, a random amount, and a `timeStamp` that is the virtual time
    /// (moved on a millisecond if needed so that no two share one).
    pub fn new_transaction(&mut self) -> Transaction {
        let amount = self.rng.range(1, 100);
        let stamp = (EPOCH_MS + self.now.as_millis()).max(self.last_time_stamp + 1);
        self.last_time_stamp = stamp;
        Transaction::create(None, amount, stamp)
    }

    fn add_new_transaction_near(&mut self, id: NodeId) -> Result<Transaction, SimError> {
        self.host(id)?;
        let count = self.hosts.len();
        let target = (0..count)
            .map(|k| NodeId((id.0 + k) % count))
            .find(|&n| self.hosts[n.0].is_up())
            .ok_or(SimError::NoLiveNode)?;
        self.add_new_transaction(target)
    }

    // ----- driving ---------------------------------------------------------------------

    /// The virtual time now.
    pub fn now(&self) -> Time {
        self.now
    }

    /// When the next event happens, if anything is left to happen.
    ///
    /// Takes `&mut self` because it drops node timers that were superseded.
    pub fn next_event_time(&mut self) -> Option<Time> {
        loop {
            let (at, timer) = self.queue.peek()?;
            if let Some((node, epoch)) = timer {
                if !self.timer_is_current(node, epoch, at) {
                    self.queue.pop();
                    continue;
                }
            }
            return Some(at);
        }
    }

    /// Processes the next event, moving the clock to it; `None` if nothing is left.
    pub fn step(&mut self) -> Option<Event> {
        let (at, what) = loop {
            let (at, what) = self.queue.pop()?;
            if let Pending::Timer { node, epoch } = what {
                if !self.timer_is_current(node, epoch, at) {
                    continue;
                }
            }
            break (at, what);
        };
        self.now = self.now.max(at);
        self.counters.events += 1;
        let event = self.process(what);
        self.after_change();
        Some(event)
    }

    /// Processes every event up to and including `until`, then sets the clock to it (if
    /// it is later). Returns how many events there were. Stops early, the clock where it
    /// got to, after [`SimConfig::max_events_per_run`] events.
    pub fn run_until(&mut self, until: Time) -> u64 {
        let mut events = 0;
        while self.next_event_time().is_some_and(|at| at <= until) {
            if events >= self.config.max_events_per_run {
                return events;
            }
            self.step();
            events += 1;
        }
        self.now = self.now.max(until);
        events
    }

    /// [`Sim::run_until`] `now + duration`.
    pub fn run_for(&mut self, duration: Duration) -> u64 {
        self.run_until(self.now + duration)
    }

    /// Whether the network is quiet: nothing in flight, no command scheduled, and no node
    /// timer due within [`SimConfig::quiet_horizon`].
    ///
    /// Takes `&mut self` because it drops node timers that were superseded.
    pub fn is_quiet(&mut self) -> bool {
        match self.next_event_time() {
            None => true,
            Some(next) => self.queue.network == 0 && next > self.now + self.config.quiet_horizon,
        }
    }

    /// Runs until the network is quiet (nothing in flight, no command scheduled, and no
    /// node timer due within [`SimConfig::quiet_horizon`]), for at most `limit` of virtual
    /// time and [`SimConfig::max_events_per_run`] events. A node that keeps redialling a
    /// peer that is down keeps the network from going quiet, so then the limit ends it.
    pub fn run_until_quiet(&mut self, limit: Duration) -> RunReport {
        self.run_until_done(limit, |sim| sim.is_quiet().then_some(Outcome::Quiet))
    }

    /// Steps until `done` names an outcome, nothing is left to happen, `limit` of virtual
    /// time passes or [`SimConfig::max_events_per_run`] events have run.
    pub(super) fn run_until_done(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Sim) -> Option<Outcome>,
    ) -> RunReport {
        let deadline = self.now + limit;
        let mut events = 0;
        let outcome = loop {
            if let Some(outcome) = done(self) {
                break outcome;
            }
            let Some(next) = self.next_event_time() else {
                break Outcome::Quiet;
            };
            if next > deadline {
                self.now = self.now.max(deadline);
                break Outcome::TimeLimit;
            }
            if events >= self.config.max_events_per_run {
                break Outcome::EventLimit;
            }
            self.step();
            events += 1;
        };
        RunReport { events, outcome }
    }

    // ----- what it sees ----------------------------------------------------------------

    /// How many nodes were added.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every node added, in order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> {
        (0..self.hosts.len()).map(NodeId)
    }

    /// The running nodes, in order.
    pub fn live_nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes().filter(|id| self.hosts[id.0].is_up())
    }

    /// Where a node is in its life; `None` if it was never added.
    pub fn state(&self, id: NodeId) -> Option<NodeState> {
        Some(match self.hosts.get(id.0)?.state {
            HostState::NotStarted => NodeState::NotStarted,
            HostState::Up(_) => NodeState::Up,
            HostState::Down => NodeState::Down,
        })
    }

    /// Whether a node is running.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.hosts.get(id.0).is_some_and(Host::is_up)
    }

    /// The running node itself, to look at.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.hosts.get(id.0)?.node()
    }

    /// Which side of the partition a node is on: `Some(0)` when there is none, or for the
    /// nodes in no group; `Some(k)` for the `k`-th group given to [`Sim::partition`].
    pub fn partition_group(&self, id: NodeId) -> Option<usize> {
        self.hosts.get(id.0).map(|h| h.group)
    }

    /// The address a node serves on.
    pub fn address(&self, id: NodeId) -> Option<&Address> {
        self.hosts.get(id.0).map(|h| &h.address)
    }

    /// The node an address reaches, if any node was added there.
    pub fn node_at(&self, address: &Address) -> Option<NodeId> {
        node_among(address, self.hosts.len())
    }

    /// A running node's `connectedAddresses`; empty if it is not running.
    pub fn connected_addresses(&self, id: NodeId) -> &[Address] {
        self.node(id).map_or(&[], Node::connected_addresses)
    }

    /// The nodes a running node's `connectedAddresses` reach, in its order.
    pub fn connected_to(&self, id: NodeId) -> Vec<NodeId> {
        self.connected_addresses(id)
            .iter()
            .filter_map(|a| self.node_at(a))
            .collect()
    }

    /// Who is connected to whom: `(node, server)` for every entry of every running node's
    /// `connectedAddresses` that names a node.
    pub fn connections(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.live_nodes().flat_map(move |id| {
            self.connected_addresses(id)
                .iter()
                .filter_map(move |a| Some((id, self.node_at(a)?)))
        })
    }

    /// A node's pool: the running node's, or what it stored if it is down.
    pub fn pool(&self, id: NodeId) -> &[Transaction] {
        match self.hosts.get(id.0) {
            Some(host) => host.node().map_or(&host.store[..], Node::pool),
            None => &[],
        }
    }

    /// What a node persisted, in order: its `transactions.json`.
    pub fn stored_pool(&self, id: NodeId) -> &[Transaction] {
        self.hosts.get(id.0).map_or(&[], |h| &h.store[..])
    }

    /// Whether a node holds (running) or stored (down) a transaction.
    pub fn has_transaction(&self, id: NodeId, hash: &str) -> bool {
        match self.hosts.get(id.0) {
            Some(host) => match host.node() {
                Some(node) => node.has_transaction(hash),
                None => host.stored.contains(hash),
            },
            None => false,
        }
    }

    /// Every distinct transaction added at any node, in order.
    pub fn transactions(&self) -> &[Transaction] {
        &self.transactions
    }

    /// The totals so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How the transactions spread, if [`SimConfig::measure_spread`] is on (else empty).
    pub fn spread(&self) -> &Spread {
        &self.spread
    }

    /// Open connection ends per running node, on average (a full mesh of N: 2(N-1)).
    pub fn connections_per_node(&self) -> f64 {
        let live: Vec<NodeId> = self.live_nodes().collect();
        if live.is_empty() {
            return 0.0;
        }
        let ends: usize = live.iter().map(|id| self.hosts[id.0].ends.len()).sum();
        ends as f64 / live.len() as f64
    }

    /// How many connections a node holds open now, dialled and accepted (ends it has not
    /// been told are closed); 0 if it is not running.
    pub fn open_connections(&self, id: NodeId) -> usize {
        self.hosts
            .get(id.0)
            .filter(|h| h.is_up())
            .map_or(0, |h| h.ends.len())
    }

    /// The most peers any running node has in its `connectedAddresses`.
    pub fn connected_max(&self) -> usize {
        self.live_nodes()
            .map(|id| self.connected_addresses(id).len())
            .max()
            .unwrap_or(0)
    }

    /// The story lines kept, oldest first.
    pub fn log(&self) -> impl Iterator<Item = &str> {
        self.log.lines()
    }

    /// The story lines kept, oldest first, in parts (when, whose, whether a violation,
    /// the words).
    pub fn log_entries(&self) -> impl Iterator<Item = LogEntry<'_>> {
        self.log.entries()
    }

    /// The story lines of one node kept, oldest first.
    pub fn node_log(&self, id: NodeId) -> impl Iterator<Item = &str> {
        self.log.lines_of(id)
    }

    /// The whole story kept, one line each, then every violation seen.
    pub fn story(&self) -> String {
        let mut out = String::new();
        if self.log.dropped() > 0 {
            out.push_str(&format!("({} earlier lines dropped)\n", self.log.dropped()));
        }
        for line in self.log.lines() {
            out.push_str(line);
            out.push('\n');
        }
        for violation in self.check() {
            out.push_str(&violation.to_string());
            out.push('\n');
        }
        out
    }

    // ----- the host's work -------------------------------------------------------------

    pub(super) fn host(&self, id: NodeId) -> Result<&Host, SimError> {
        self.hosts.get(id.0).ok_or(SimError::UnknownNode(id))
    }

    fn timer_is_current(&self, node: NodeId, epoch: u32, at: Time) -> bool {
        self.hosts
            .get(node.0)
            .is_some_and(|h| h.epoch == epoch && h.timer == Some(at) && h.is_up())
    }

    fn boot(&mut self, id: NodeId) {
        let seed = self.rng.next_u64();
        let host = &mut self.hosts[id.0];
        let mut config = host.config.clone();
        config.seed = seed;
        let overlay = config.overlay.is_some();
        host.state = HostState::Up(Box::new(Node::new(config, host.store.clone())));
        self.overlay.started_or_stopped(id, overlay);
        self.go_live(id);
        self.input(id, false, |node, now| node.start(now));
        self.after_change();
    }

    /// Hands the node one input, then carries out everything it asks for and books its
    /// next wake-up. `woken` says the input was its timeout.
    pub(super) fn input(&mut self, id: NodeId, woken: bool, f: impl FnOnce(&mut Node, Time)) {
        self.input_with(id, woken, true, f);
    }

    /// [`Sim::input`] of `handle_written`: room in a send buffer does not change who a
    /// node is linked to, so its active view is not looked at again (the cost of that
    /// look is a few addresses, but this is half the inputs of a run).
    pub(super) fn input_written(&mut self, id: NodeId, f: impl FnOnce(&mut Node, Time)) {
        self.input_with(id, false, false, f);
    }

    fn input_with(
        &mut self,
        id: NodeId,
        woken: bool,
        note_view: bool,
        f: impl FnOnce(&mut Node, Time),
    ) {
        let now = self.now;
        let count = self.hosts.len();
        let Some(Host {
            state: HostState::Up(node),
            ..
        }) = self.hosts.get_mut(id.0)
        else {
            return;
        };
        f(node, now);
        if note_view && node.config().overlay.is_some() {
            self.overlay.note_view(id, node, count);
        }
        let mut actions = std::mem::take(&mut self.scratch);
        actions.extend(std::iter::from_fn(|| node.poll_action()));
        let timeout = node.poll_timeout();
        for action in actions.drain(..) {
            self.carry_out(id, action);
        }
        self.scratch = actions;
        self.set_timer(id, timeout, woken);
    }

    fn set_timer(&mut self, id: NodeId, timeout: Option<Time>, woken: bool) {
        let now = self.now;
        let host = &mut self.hosts[id.0];
        let Some(mut at) = timeout else {
            host.timer = None;
            return;
        };
        if at <= now {
            if woken {
                // Woken now and wanting to be woken now again: let time move on.
                self.counters.busy_timeouts += 1;
                at = now + Duration::from_millis(1);
            } else {
                at = now;
            }
        }
        if host.timer == Some(at) {
            return;
        }
        host.timer = Some(at);
        let epoch = host.epoch;
        self.queue.push(at, Pending::Timer { node: id, epoch });
    }

    pub(super) fn carry_out(&mut self, id: NodeId, action: Action) {
        match action {
            Action::Listen { address } => {
                if address != self.hosts[id.0].address {
                    self.violation(id, format!("listens on {address}, not its own address"));
                }
                self.hosts[id.0].listening = true;
            }
            Action::Dial { dial, address } => self.dial(id, dial, address),
            Action::AbandonDial { dial } => {
                // The node gave up on a dial the network has not answered (its dial
                // timeout): it is no longer in flight as far as the node knows.
                self.hosts[id.0].dialling.remove(&dial);
            }
            Action::Send { conn, frame } => self.send(id, conn, frame),
            Action::Close { conn } => self.close(id, conn),
            Action::Persist { transaction } => {
                let host = &mut self.hosts[id.0];
                if host.stored.insert(transaction.hash().to_owned()) {
                    host.store.push(transaction);
                    self.live_stored += 1;
                } else {
                    let short = transaction.short_hash().to_owned();
                    self.violation(id, format!("persists transaction {short} a second time"));
                }
            }
            Action::Watched { from, .. } => {
                if self.hosts[id.0].config.watch {
                    self.counters.watched += 1;
                } else {
                    self.violation(
                        id,
                        format!("handed an event from {from} it did not ask for"),
                    );
                }
            }
            Action::Log(notice) => {
                if self.log.enabled() && notice.level() <= self.config.log_level {
                    self.log.write(self.now, Some(id), format_args!("{notice}"));
                }
            }
        }
    }

    fn process(&mut self, what: Pending) -> Event {
        match what {
            Pending::Command(command) => {
                let error = self.apply(command.clone()).err();
                Event::Command { command, error }
            }
            Pending::DialArrives {
                from,
                epoch,
                dial,
                address,
            } => self.dial_arrives(from, epoch, dial, address),
            Pending::Deliver {
                link,
                to,
                frame,
                kind,
                ..
            } => self.deliver(link, to, &frame, kind),
            Pending::CloseArrives { link, side } => self.report_closed(link, side, End::Open),
            Pending::ClosedHere { link, side } => self.report_closed(link, side, End::Closing),
            Pending::Timer { node, .. } => {
                self.hosts[node.0].timer = None;
                self.input(node, true, |n, now| n.handle_timeout(now));
                Event::Timeout { node }
            }
        }
    }
}

/// The node of `count` an address reaches, if any (see [`Sim::node_at`]).
pub(super) fn node_among(address: &Address, count: usize) -> Option<NodeId> {
    if !address.is_loopback() {
        return None;
    }
    let index = usize::from(address.port().checked_sub(FIRST_PORT)?);
    (index < count).then_some(NodeId(index))
}
