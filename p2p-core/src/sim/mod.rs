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
//! transaction pooled twice, …).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;
use std::time::Duration;

use crate::address::Address;
use crate::config::Config;
use crate::frame::{self, Frame};
use crate::node::{Action, ConnId, DialId, Level, Node, Payload};
use crate::rng::Rng;
use crate::time::Time;
use crate::transaction::Transaction;

mod record;
mod scenario;
#[cfg(test)]
mod tests;

use record::Log;
pub use record::{Counters, FrameCounts, FrameKind, Violation};
pub use scenario::{Scenario, Summary};

/// The port of node 0; node *i* serves on `FIRST_PORT + i`.
pub const FIRST_PORT: u16 = 4001;

/// `timeStamp` of transactions made at virtual time zero (ms since the Unix epoch), so
/// they look like the curriculum's.
const EPOCH_MS: u64 = 1_700_000_000_000;

/// Violations kept word for word; past this only their number grows.
const MAX_VIOLATIONS: usize = 1000;

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

/// The range one-way latencies are drawn from, uniformly, per dial and per frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Latency {
    min: Duration,
    max: Duration,
}

impl Latency {
    /// Latencies between `a` and `b`, in either order.
    pub fn new(a: Duration, b: Duration) -> Latency {
        Latency {
            min: a.min(b),
            max: a.max(b),
        }
    }

    /// Latencies between `min` and `max` milliseconds.
    pub fn from_millis(min: u64, max: u64) -> Latency {
        Latency::new(Duration::from_millis(min), Duration::from_millis(max))
    }

    /// The shortest.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The longest.
    pub fn max(&self) -> Duration {
        self.max
    }

    fn sample(&self, rng: &mut Rng) -> Duration {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.range(micros(self.min), micros(self.max)))
    }
}

impl Default for Latency {
    /// 1 to 20 ms.
    fn default() -> Latency {
        Latency::from_millis(1, 20)
    }
}

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
    /// [`Sim::run_until_quiet`] stops when nothing is in flight and no node needs waking
    /// within this long.
    pub quiet_horizon: Duration,
    /// [`Sim::run_until_quiet`] stops after this many events in one call, whatever the
    /// clock says, in case a protocol loop keeps virtual time from moving.
    pub max_events_per_run: u64,
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
            quiet_horizon: Duration::from_secs(30),
            max_events_per_run: 1_000_000_000,
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

/// A change to the network, applied now with [`Sim::apply`] or later with
/// [`Sim::schedule`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start a node for the first time.
    Start(NodeId),
    /// Crash a running node.
    Crash(NodeId),
    /// Start a crashed node again, with its stored pool.
    Restart(NodeId),
    /// Split the nodes into these groups; nodes in none form one more group.
    Partition(Vec<Vec<NodeId>>),
    /// Undo the partition.
    Heal,
    /// Make a new transaction at this node or, if it is not running, at the next running
    /// node after it.
    AddTransaction(NodeId),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Start(id) => write!(f, "start {id}"),
            Command::Crash(id) => write!(f, "crash {id}"),
            Command::Restart(id) => write!(f, "restart {id}"),
            Command::Partition(groups) => {
                f.write_str("partition into ")?;
                for (i, group) in groups.iter().enumerate() {
                    f.write_str(if i == 0 { "[" } else { " | [" })?;
                    for (j, id) in group.iter().enumerate() {
                        write!(f, "{}{}", if j == 0 { "" } else { " " }, id.0)?;
                    }
                    f.write_str("]")?;
                }
                Ok(())
            }
            Command::Heal => f.write_str("heal the partition"),
            Command::AddTransaction(id) => write!(f, "add a transaction at {id}"),
        }
    }
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

/// A frame on its way, for drawing the network.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// Its type.
    pub kind: FrameKind,
    /// When it was sent.
    pub sent: Time,
    /// When it arrives.
    pub arrives: Time,
}

/// One end of a connection, as the simulator sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum End {
    /// Its node holds it; frames to it are delivered.
    Open,
    /// Its node asked to close it (or a partition cut it) and will be told; frames to it
    /// are lost.
    Closing,
    /// Its node was told it closed, or crashed.
    Closed,
}

/// Side 0 of a link is the dialler's end, side 1 the server's.
const DIALLER: usize = 0;
const SERVER: usize = 1;

/// A connection. Its ends are `ConnId(2 * id)` (the dialler's) and `ConnId(2 * id + 1)`.
#[derive(Debug)]
struct Link {
    nodes: [NodeId; 2],
    ends: [End; 2],
    /// Arrival time of the last frame or close sent toward each side.
    last: [Time; 2],
    /// Whether the dialler counts it among its connections: not if it had given up on
    /// the dial before it opened (it then only closes it).
    wanted: bool,
}

fn conn_id(link: u64, side: usize) -> ConnId {
    ConnId(link * 2 + side as u64)
}

fn split(conn: ConnId) -> (u64, usize) {
    (conn.0 / 2, (conn.0 % 2) as usize)
}

enum HostState {
    NotStarted,
    Up(Box<Node>),
    Down,
}

/// The simulator's side of one node: its process, its disk and its sockets.
struct Host {
    address: Address,
    /// What the node is made with at every start, less the seed.
    config: Config,
    state: HostState,
    /// The persisted pool, in order: what `transactions.json` would hold.
    store: Vec<Transaction>,
    stored: BTreeSet<String>,
    /// Bumped at every crash, so news for the crashed process is dropped.
    epoch: u32,
    /// The wake-up in the queue, if any.
    timer: Option<Time>,
    listening: bool,
    group: usize,
    /// Links where this node's end is not closed.
    ends: BTreeSet<u64>,
    /// Dials asked for and not answered.
    dialling: BTreeMap<DialId, Address>,
    /// The node's view of its dialled connections (ends not yet told closed), per server.
    out: BTreeMap<NodeId, u32>,
    /// Nodes whose view holds a dialled connection to this one.
    dialled_by: BTreeSet<NodeId>,
    /// Frames sent, per receiver.
    sent_to: Vec<FrameCounts>,
}

impl Host {
    fn is_up(&self) -> bool {
        matches!(self.state, HostState::Up(_))
    }

    fn node(&self) -> Option<&Node> {
        match &self.state {
            HostState::Up(node) => Some(node),
            _ => None,
        }
    }
}

enum Pending {
    Command(Command),
    DialArrives {
        from: NodeId,
        epoch: u32,
        dial: DialId,
        address: Address,
    },
    Deliver {
        link: u64,
        to: usize,
        frame: Payload,
        kind: FrameKind,
        sent: Time,
    },
    /// The far end closed: tell this side if it is still open.
    CloseArrives {
        link: u64,
        side: usize,
    },
    /// This side closed (or was cut): tell its node.
    ClosedHere {
        link: u64,
        side: usize,
    },
    Timer {
        node: NodeId,
        epoch: u32,
    },
}

/// A place in the queue: ordered by time, then by the order scheduled. Node timers sit in
/// the key itself, so that finding a superseded one touches nothing else; every other
/// event waits in a slot of [`Queue::slots`], so the heap only moves small keys.
#[derive(PartialEq, Eq)]
struct Key {
    at: Time,
    seq: u64,
    entry: Entry,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Entry {
    Slot(usize),
    Timer { node: NodeId, epoch: u32 },
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Reversed, so that the max-heap pops the earliest; ties go in the order scheduled.
    fn cmp(&self, other: &Key) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Everything that will happen, earliest first.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Key>,
    slots: Vec<Option<Pending>>,
    free: Vec<usize>,
    seq: u64,
    /// Entries that are not node timers: while any is left, the network is not quiet.
    network: usize,
}

impl Queue {
    fn push(&mut self, at: Time, what: Pending) {
        self.seq += 1;
        let entry = match what {
            Pending::Timer { node, epoch } => Entry::Timer { node, epoch },
            what => {
                self.network += 1;
                match self.free.pop() {
                    Some(slot) => {
                        self.slots[slot] = Some(what);
                        Entry::Slot(slot)
                    }
                    None => {
                        self.slots.push(Some(what));
                        Entry::Slot(self.slots.len() - 1)
                    }
                }
            }
        };
        self.heap.push(Key {
            at,
            seq: self.seq,
            entry,
        });
    }

    /// The time of the first entry, and its node and epoch if it is a timer.
    fn peek(&self) -> Option<(Time, Option<(NodeId, u32)>)> {
        let key = self.heap.peek()?;
        Some(match key.entry {
            Entry::Timer { node, epoch } => (key.at, Some((node, epoch))),
            Entry::Slot(_) => (key.at, None),
        })
    }

    fn pop(&mut self) -> Option<(Time, Pending)> {
        loop {
            let key = self.heap.pop()?;
            match key.entry {
                Entry::Timer { node, epoch } => {
                    return Some((key.at, Pending::Timer { node, epoch }));
                }
                Entry::Slot(slot) => {
                    // Every slot key has a filled slot; a missing one would only be skipped.
                    let Some(what) = self.slots.get_mut(slot).and_then(Option::take) else {
                        continue;
                    };
                    self.free.push(slot);
                    self.network -= 1;
                    return Some((key.at, what));
                }
            }
        }
    }

    /// Every entry but the timers, in no order, with its time and place in line.
    fn iter(&self) -> impl Iterator<Item = (Time, u64, &Pending)> {
        self.heap.iter().filter_map(|key| match key.entry {
            Entry::Slot(slot) => Some((key.at, key.seq, self.slots.get(slot)?.as_ref()?)),
            Entry::Timer { .. } => None,
        })
    }
}

/// Many [`Node`]s on a virtual network. See the [module docs](self).
pub struct Sim {
    config: SimConfig,
    rng: Rng,
    now: Time,
    queue: Queue,
    hosts: Vec<Host>,
    /// Every connection ever opened, by id; `None` once both ends closed.
    links: Vec<Option<Link>>,
    /// Running nodes.
    live: usize,
    /// Ordered pairs of running nodes (a, b) where a's view holds a dialled connection to b.
    mesh_pairs: usize,
    first_full_mesh: Option<Time>,
    counters: Counters,
    log: Log,
    violations: Vec<Violation>,
    violation_count: u64,
    /// Every distinct transaction added at any node, in order.
    transactions: Vec<Transaction>,
    added: BTreeSet<String>,
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
        customise(&mut config);
        config.address = address.clone();
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
            sent_to: Vec::new(),
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
        let ends = std::mem::take(&mut host.ends);
        for link_id in ends {
            let Some(link) = self
                .links
                .get_mut(link_id as usize)
                .and_then(Option::as_mut)
            else {
                continue;
            };
            for side in [DIALLER, SERVER] {
                if link.nodes[side] == id {
                    link.ends[side] = End::Closed;
                }
            }
            for side in [DIALLER, SERVER] {
                if link.nodes[side] != id && link.ends[side] == End::Open {
                    let at =
                        link.last[side].max(self.now + self.config.latency.sample(&mut self.rng));
                    link.last[side] = at;
                    self.queue.push(
                        at,
                        Pending::CloseArrives {
                            link: link_id,
                            side,
                        },
                    );
                }
            }
            if link.ends == [End::Closed, End::Closed] {
                self.links[link_id as usize] = None;
            }
        }
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

    /// Splits the network into `groups` (nodes in none form one more group, and so do
    /// nodes added later). Connections across groups close at once, on both sides.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) -> Result<(), SimError> {
        for id in groups.iter().flatten() {
            self.host(*id)?;
        }
        self.log.write(
            self.now,
            None,
            format_args!("{}", Command::Partition(groups.to_vec())),
        );
        for host in &mut self.hosts {
            host.group = 0;
        }
        for (index, group) in groups.iter().enumerate() {
            for id in group {
                self.hosts[id.0].group = index + 1;
            }
        }
        for (link_id, link) in self.links.iter_mut().enumerate() {
            let Some(link) = link else { continue };
            let link_id = link_id as u64;
            let [a, b] = link.nodes;
            if self.hosts[a.0].group == self.hosts[b.0].group {
                continue;
            }
            for side in [DIALLER, SERVER] {
                if link.ends[side] == End::Open {
                    link.ends[side] = End::Closing;
                    self.queue.push(
                        self.now,
                        Pending::ClosedHere {
                            link: link_id,
                            side,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Ends the partition: every node can reach every other again.
    pub fn heal(&mut self) {
        self.log
            .write(self.now, None, format_args!("the partition heals"));
        for host in &mut self.hosts {
            host.group = 0;
        }
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
        let deadline = self.now + limit;
        let mut events = 0;
        let outcome = loop {
            if self.is_quiet() {
                break Outcome::Quiet;
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
        if !address.is_loopback() {
            return None;
        }
        let index = usize::from(address.port().checked_sub(FIRST_PORT)?);
        (index < self.hosts.len()).then_some(NodeId(index))
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

    /// The share of (transaction added, node) pairs where the node holds the transaction
    /// (running) or stored it (down); 1.0 when no transaction was added.
    pub fn delivered(&self) -> f64 {
        let pairs = self.transactions.len() * self.hosts.len();
        if pairs == 0 {
            return 1.0;
        }
        let held: usize = self
            .nodes()
            .map(|id| {
                self.transactions
                    .iter()
                    .filter(|tx| self.has_transaction(id, tx.hash()))
                    .count()
            })
            .sum();
        held as f64 / pairs as f64
    }

    /// Whether every running node's `connectedAddresses` holds every other running node
    /// (vacuously true with fewer than two).
    pub fn is_full_mesh(&self) -> bool {
        let live = self.live_nodes().count();
        self.live_nodes().all(|id| {
            let reached: BTreeSet<NodeId> = self
                .connected_addresses(id)
                .iter()
                .filter_map(|a| self.node_at(a))
                .filter(|&peer| peer != id && self.is_live(peer))
                .collect();
            reached.len() + 1 == live
        })
    }

    /// When every node added was first running and in one full mesh, if ever.
    pub fn first_full_mesh(&self) -> Option<Time> {
        self.first_full_mesh
    }

    /// The totals so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Frames `from` sent to `to` so far.
    pub fn link_frames(&self, from: NodeId, to: NodeId) -> FrameCounts {
        self.hosts
            .get(from.0)
            .and_then(|h| h.sent_to.get(to.0))
            .copied()
            .unwrap_or_default()
    }

    /// Frames sent so far on every link that carried one, by (sender, receiver).
    pub fn links(&self) -> impl Iterator<Item = ((NodeId, NodeId), FrameCounts)> + '_ {
        self.hosts.iter().enumerate().flat_map(|(i, host)| {
            host.sent_to
                .iter()
                .enumerate()
                .filter(|(_, counts)| counts.total() > 0)
                .map(move |(to, &counts)| ((NodeId(i), NodeId(to)), counts))
        })
    }

    /// Frames on their way now, by arrival.
    pub fn frames_in_flight(&self) -> Vec<InFlight> {
        self.frames_in_flight_with_text()
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    /// [`Sim::frames_in_flight`], each with its frame's text: what tells apart the types
    /// [`FrameKind`] counts together (`TXS`, `SYNC`, `STATUS_REQUEST`, …), for a host that
    /// shows them, like the browser demo.
    pub fn frames_in_flight_with_text(&self) -> Vec<(InFlight, &str)> {
        let mut frames: Vec<(u64, InFlight, &str)> = self
            .queue
            .iter()
            .filter_map(|(at, seq, what)| match what {
                Pending::Deliver {
                    link,
                    to,
                    frame,
                    kind,
                    sent,
                } => {
                    let l = self.link(*link)?;
                    Some((
                        seq,
                        InFlight {
                            from: l.nodes[1 - to],
                            to: l.nodes[*to],
                            kind: *kind,
                            sent: *sent,
                            arrives: at,
                        },
                        &**frame,
                    ))
                }
                _ => None,
            })
            .collect();
        frames.sort_by_key(|(seq, f, _)| (f.arrives, *seq));
        frames.into_iter().map(|(_, f, text)| (f, text)).collect()
    }

    /// The story lines kept, oldest first.
    pub fn log(&self) -> impl Iterator<Item = &str> {
        self.log.lines()
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

    /// Violations seen as they happened (a dial to itself, a second dial to one server, a
    /// HANDSHAKE that lists a closed connection, a frame on a connection the node does not
    /// hold, a transaction persisted twice).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// [`Sim::violations`], and what is wrong with the running nodes now: for each, its
    /// `connectedAddresses` must be exactly its open dialled connections, one per server,
    /// never itself; it must not dial itself or a server it holds a connection to; its
    /// pool must not hold a transaction twice. Empty when all is well.
    pub fn check(&self) -> Vec<Violation> {
        let mut found = self.violations.clone();
        for id in self.live_nodes() {
            let host = &self.hosts[id.0];
            let Some(node) = host.node() else { continue };
            let mut fault = |what: String| {
                found.push(Violation {
                    at: self.now,
                    node: id,
                    what,
                })
            };
            let mut connected = BTreeSet::new();
            for address in node.connected_addresses() {
                let target = self.node_at(address);
                if !connected.insert(target) {
                    fault(format!("connectedAddresses lists {address} twice"));
                }
                if target == Some(id) {
                    fault(format!("connectedAddresses lists itself ({address})"));
                }
                if !target.is_some_and(|t| host.out.contains_key(&t)) {
                    fault(format!(
                        "connectedAddresses lists {address}, but it holds no open dialled connection there"
                    ));
                }
            }
            for (&target, &count) in &host.out {
                if count > 1 {
                    fault(format!("holds {count} dialled connections to {target}"));
                }
                if !connected.contains(&Some(target)) {
                    fault(format!(
                        "holds a dialled connection to {target}, missing from connectedAddresses"
                    ));
                }
            }
            let mut dialling = BTreeSet::new();
            for address in node.dialling() {
                let target = self.node_at(address);
                if target == Some(id) {
                    fault(format!("is dialling itself ({address})"));
                }
                if target.is_some() && connected.contains(&target) {
                    fault(format!("is dialling {address}, which it is connected to"));
                }
                if !dialling.insert(address) {
                    fault(format!("is dialling {address} twice"));
                }
            }
            let mut hashes = BTreeSet::new();
            for tx in node.pool() {
                if !hashes.insert(tx.hash()) {
                    fault(format!("pool holds {} twice", tx.short_hash()));
                }
            }
        }
        found
    }

    /// How many violations were seen as they happened (only the first 1000 are kept).
    pub fn violation_count(&self) -> u64 {
        self.violation_count
    }

    // ----- the host's work -------------------------------------------------------------

    fn host(&self, id: NodeId) -> Result<&Host, SimError> {
        self.hosts.get(id.0).ok_or(SimError::UnknownNode(id))
    }

    fn link(&self, id: u64) -> Option<&Link> {
        self.links.get(usize::try_from(id).ok()?)?.as_ref()
    }

    fn link_mut(&mut self, id: u64) -> Option<&mut Link> {
        self.links.get_mut(usize::try_from(id).ok()?)?.as_mut()
    }

    fn timer_is_current(&self, node: NodeId, epoch: u32, at: Time) -> bool {
        self.hosts
            .get(node.0)
            .is_some_and(|h| h.epoch == epoch && h.timer == Some(at) && h.is_up())
    }

    fn violation(&mut self, node: NodeId, what: String) {
        self.violation_count += 1;
        self.log
            .write(self.now, Some(node), format_args!("VIOLATION {what}"));
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                at: self.now,
                node,
                what,
            });
        }
    }

    fn latency(&mut self) -> Duration {
        self.config.latency.sample(&mut self.rng)
    }

    fn boot(&mut self, id: NodeId) {
        let seed = self.rng.next_u64();
        let host = &mut self.hosts[id.0];
        let mut config = host.config.clone();
        config.seed = seed;
        host.state = HostState::Up(Box::new(Node::new(config, host.store.clone())));
        self.go_live(id);
        self.input(id, false, |node, now| node.start(now));
        self.after_change();
    }

    /// Hands the node one input, then carries out everything it asks for and books its
    /// next wake-up. `woken` says the input was its timeout.
    fn input(&mut self, id: NodeId, woken: bool, f: impl FnOnce(&mut Node, Time)) {
        let now = self.now;
        let Some(Host {
            state: HostState::Up(node),
            ..
        }) = self.hosts.get_mut(id.0)
        else {
            return;
        };
        f(node, now);
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

    fn carry_out(&mut self, id: NodeId, action: Action) {
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

    fn dial(&mut self, id: NodeId, dial: DialId, address: Address) {
        self.counters.dials += 1;
        let target = self.node_at(&address);
        let host = &self.hosts[id.0];
        let mut faults = Vec::new();
        if target == Some(id) || address == host.address || host.config.aliases.contains(&address) {
            faults.push(format!("dials itself ({address})"));
        } else {
            if target.is_some_and(|t| host.out.contains_key(&t)) {
                faults.push(format!("dials {address}, which it is connected to"));
            }
            let twice = host
                .dialling
                .values()
                .any(|a| *a == address || (target.is_some() && self.node_at(a) == target));
            if twice {
                faults.push(format!("dials {address} a second time at once"));
            }
        }
        for fault in faults {
            self.violation(id, fault);
        }
        let host = &mut self.hosts[id.0];
        host.dialling.insert(dial, address.clone());
        let epoch = host.epoch;
        let at = self.now + self.latency();
        self.queue.push(
            at,
            Pending::DialArrives {
                from: id,
                epoch,
                dial,
                address,
            },
        );
    }

    fn send(&mut self, id: NodeId, conn: ConnId, frame: Payload) {
        let (link_id, side) = split(conn);
        let kind = FrameKind::of(&frame);
        let Some(link) = self.link(link_id).filter(|l| l.nodes[side] == id) else {
            self.violation(
                id,
                format!("sends on {conn}, a connection it does not hold"),
            );
            return;
        };
        let (to, ends) = (link.nodes[1 - side], link.ends);
        if ends[side] == End::Closed {
            self.violation(id, format!("sends on {conn} after it was told it closed"));
            return;
        }
        self.counters.sent.add(kind);
        let sent_to = &mut self.hosts[id.0].sent_to;
        if sent_to.len() <= to.0 {
            sent_to.resize(to.0 + 1, FrameCounts::default());
        }
        sent_to[to.0].add(kind);
        if self.config.check_frames && kind == FrameKind::Handshake {
            let server = (side == DIALLER).then_some(to);
            self.check_handshake(id, server, &frame);
        }
        if ends != [End::Open, End::Open] {
            self.counters.dropped.add(kind);
            return;
        }
        let arrival = self.now + self.latency();
        let Some(link) = self.link_mut(link_id) else {
            return;
        };
        let at = link.last[1 - side].max(arrival);
        link.last[1 - side] = at;
        self.queue.push(
            at,
            Pending::Deliver {
                link: link_id,
                to: 1 - side,
                frame,
                kind,
                sent: self.now,
            },
        );
    }

    /// A HANDSHAKE must list the sender first, then only servers it holds an open
    /// dialled connection to, among them the one it is sent on (`server`). A dial-only
    /// node's lists nothing and says it is dial-only.
    fn check_handshake(&mut self, id: NodeId, server: Option<NodeId>, text: &str) {
        let host = &self.hosts[id.0];
        let mut faults = Vec::new();
        match frame::decode(text, usize::MAX) {
            Ok(Frame::Handshake {
                addresses,
                dial_only,
                ..
            }) if host.config.dial_only => {
                if !addresses.is_empty() || !dial_only {
                    faults.push(format!(
                        "a dial-only node sent a HANDSHAKE that lists addresses or does not say it is dial-only: {text}"
                    ));
                }
            }
            Ok(Frame::Handshake {
                addresses: list, ..
            }) => {
                match list.first().map(|first| first.parse::<Address>()) {
                    Some(Ok(first)) if first == host.address => {}
                    _ => faults.push(format!(
                        "sent a HANDSHAKE that does not list its own address first: {text}"
                    )),
                }
                let mut listed = BTreeSet::new();
                for entry in list.iter().skip(1) {
                    let target = entry.parse::<Address>().ok().and_then(|a| self.node_at(&a));
                    match target {
                        Some(t) if host.out.contains_key(&t) => {
                            listed.insert(t);
                        }
                        _ => faults.push(format!(
                            "sent a HANDSHAKE listing {entry}, which is not an open connection of it"
                        )),
                    }
                }
                if let Some(server) = server {
                    if !listed.contains(&server) {
                        faults.push(format!(
                            "sent a HANDSHAKE to {server} that does not list the connection it is sent on"
                        ));
                    }
                }
            }
            _ => faults.push(format!("sent a HANDSHAKE that does not decode: {text}")),
        }
        for fault in faults {
            self.violation(id, fault);
        }
    }

    fn close(&mut self, id: NodeId, conn: ConnId) {
        let (link_id, side) = split(conn);
        let Some(link) = self
            .links
            .get_mut(link_id as usize)
            .and_then(Option::as_mut)
            .filter(|l| l.nodes[side] == id)
        else {
            self.violation(id, format!("closes {conn}, a connection it does not hold"));
            return;
        };
        if link.ends[side] != End::Open {
            return;
        }
        link.ends[side] = End::Closing;
        self.queue.push(
            self.now,
            Pending::ClosedHere {
                link: link_id,
                side,
            },
        );
        let other = 1 - side;
        if link.ends[other] == End::Open {
            let at = link.last[other].max(self.now + self.config.latency.sample(&mut self.rng));
            link.last[other] = at;
            self.queue.push(
                at,
                Pending::CloseArrives {
                    link: link_id,
                    side: other,
                },
            );
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

    fn dial_arrives(&mut self, from: NodeId, epoch: u32, dial: DialId, address: Address) -> Event {
        let host = &mut self.hosts[from.0];
        if host.epoch != epoch || !host.is_up() {
            return Event::Moot;
        }
        let wanted = host.dialling.remove(&dial).is_some();
        let group = host.group;
        let server = self.node_at(&address).filter(|t| {
            let h = &self.hosts[t.0];
            h.is_up() && h.listening && h.group == group
        });
        let Some(to) = server else {
            self.counters.dials_failed += 1;
            self.input(from, false, |node, now| node.handle_dial_failed(dial, now));
            return Event::DialFailed { from, address };
        };
        let link_id = self.links.len() as u64;
        self.links.push(Some(Link {
            nodes: [from, to],
            ends: [End::Open, End::Open],
            last: [self.now, self.now],
            wanted,
        }));
        self.hosts[from.0].ends.insert(link_id);
        self.hosts[to.0].ends.insert(link_id);
        self.counters.connections += 1;
        if wanted {
            self.view_add(from, to);
        }
        self.input(to, false, |node, now| {
            node.handle_accepted(conn_id(link_id, SERVER), now)
        });
        self.input(from, false, |node, now| {
            node.handle_dial_opened(dial, conn_id(link_id, DIALLER), now)
        });
        Event::DialOpened { from, to }
    }

    fn deliver(&mut self, link_id: u64, side: usize, frame: &str, kind: FrameKind) -> Event {
        let Some(link) = self.link(link_id) else {
            self.counters.dropped.add(kind);
            return Event::Moot;
        };
        let (from, to) = (link.nodes[1 - side], link.nodes[side]);
        if link.ends[side] != End::Open {
            self.counters.dropped.add(kind);
            return Event::Dropped { from, to, kind };
        }
        let sender_open = link.ends[1 - side] == End::Open;
        self.counters.delivered.add(kind);
        self.input(to, false, |node, now| {
            node.handle_text(conn_id(link_id, side), frame, now)
        });
        if sender_open {
            // The frame left the sender's buffer: room for more there.
            let len = frame.len();
            self.input(from, false, |node, now| {
                node.handle_written(conn_id(link_id, 1 - side), len, now)
            });
        }
        Event::Delivered { from, to, kind }
    }

    /// Tells the node at `side` that its end closed, if the end is still `expected`.
    fn report_closed(&mut self, link_id: u64, side: usize, expected: End) -> Event {
        let Some(link) = self.link_mut(link_id) else {
            return Event::Moot;
        };
        if link.ends[side] != expected {
            return Event::Moot;
        }
        link.ends[side] = End::Closed;
        let (node, peer) = (link.nodes[side], link.nodes[1 - side]);
        let other_end = link.ends[1 - side];
        let viewed = side == DIALLER && link.wanted;
        if other_end == End::Closed {
            self.links[link_id as usize] = None;
        }
        if !(peer == node && other_end != End::Closed) {
            self.hosts[node.0].ends.remove(&link_id);
        }
        if viewed {
            self.view_remove(node, peer);
        }
        self.counters.closes += 1;
        self.input(node, false, |n, now| {
            n.handle_closed(conn_id(link_id, side), now)
        });
        Event::Closed { node, peer }
    }

    // ----- who is connected to whom, kept up to date for `first_full_mesh` --------------

    fn counts_in_mesh(&self, a: NodeId, b: NodeId) -> bool {
        a != b && self.hosts[a.0].is_up() && self.hosts[b.0].is_up()
    }

    fn view_add(&mut self, from: NodeId, to: NodeId) {
        let count = self.hosts[from.0].out.entry(to).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.hosts[to.0].dialled_by.insert(from);
            if self.counts_in_mesh(from, to) {
                self.mesh_pairs += 1;
            }
        }
    }

    fn view_remove(&mut self, from: NodeId, to: NodeId) {
        let Some(count) = self.hosts[from.0].out.get_mut(&to) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.hosts[from.0].out.remove(&to);
            self.hosts[to.0].dialled_by.remove(&from);
            if self.counts_in_mesh(from, to) {
                self.mesh_pairs -= 1;
            }
        }
    }

    /// Call with the node just made `Up`: its view is empty, but others may still hold
    /// connections to its previous life they were not yet told about.
    fn go_live(&mut self, id: NodeId) {
        self.live += 1;
        let pairs = self.hosts[id.0]
            .dialled_by
            .iter()
            .filter(|&&peer| self.counts_in_mesh(peer, id))
            .count();
        self.mesh_pairs += pairs;
    }

    /// Call while the node is still `Up`.
    fn go_down(&mut self, id: NodeId) {
        let incoming = self.hosts[id.0]
            .dialled_by
            .iter()
            .filter(|&&peer| self.counts_in_mesh(peer, id))
            .count();
        let out = std::mem::take(&mut self.hosts[id.0].out);
        let outgoing = out
            .keys()
            .filter(|&&peer| self.counts_in_mesh(id, peer))
            .count();
        for peer in out.keys() {
            self.hosts[peer.0].dialled_by.remove(&id);
        }
        self.mesh_pairs -= incoming + outgoing;
        self.live -= 1;
    }

    fn after_change(&mut self) {
        if self.first_full_mesh.is_none()
            && self.live == self.hosts.len()
            && self.live > 0
            && self.mesh_pairs == self.live * (self.live - 1)
        {
            self.first_full_mesh = Some(self.now);
            self.log.write(
                self.now,
                None,
                format_args!("all {} nodes form one full mesh", self.live),
            );
        }
    }
}
