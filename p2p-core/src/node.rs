//! The protocol state machine.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, DefaultHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::address::Address;
use crate::config::Config;
use crate::frame::{self, Frame, FrameError};
use crate::rng::Rng;
use crate::sync::{self, HashIndex, Range};
use crate::time::Time;
use crate::transaction::Transaction;

/// A connection, named by the host: unique among the host's open connections.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One dial the node asked for, named by the node; the host reports its outcome with it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DialId(pub u64);

/// A frame's text, serialised once and shared by every connection it goes to.
pub type Payload = Arc<str>;

/// What the node asks its host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Serve WebSocket connections; the node is reachable at `address`.
    Listen {
        /// The node's advertised address.
        address: Address,
    },
    /// Open a WebSocket connection to `address`, then report it with
    /// [`Node::handle_dial_opened`] or [`Node::handle_dial_failed`].
    Dial {
        /// Names this dial in the report.
        dial: DialId,
        /// Where to.
        address: Address,
    },
    /// Send one text frame on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The frame's text.
        frame: Payload,
    },
    /// Close a connection, then report it with [`Node::handle_closed`].
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Add a transaction to the stored pool (after those already stored, in this order).
    Persist {
        /// The transaction, new to this node.
        transaction: Transaction,
    },
    /// Tell the person running the node what happened.
    Log(Notice),
}

/// How much a notice matters.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something was refused or a limit was reached.
    Warn,
    /// The story of the network: connections, handshakes, new transactions.
    Info,
    /// Detail: dial attempts, duplicates.
    Debug,
}

/// Something that happened in the node, for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The node started and serves on its address.
    Listening(Address),
    /// A dial started.
    Dialling {
        /// Where to.
        address: Address,
        /// Failed dials to it in a row before this one.
        attempt: u32,
    },
    /// A dial opened; a HANDSHAKE was sent on it.
    Connected(Address),
    /// A dial failed or timed out.
    DialFailed {
        /// Where to.
        address: Address,
        /// Failed dials in a row, this one included.
        attempt: u32,
        /// When it is tried again; `None` if the address was forgotten.
        retry_in: Option<Duration>,
    },
    /// A dialled connection closed.
    Disconnected {
        /// To whom.
        address: Address,
        /// When it is dialled again.
        retry_in: Duration,
    },
    /// A connection was accepted.
    Accepted(ConnId),
    /// An accepted connection closed.
    InboundClosed {
        /// The connection.
        conn: ConnId,
        /// Who it was, if it said in a HANDSHAKE.
        peer: Option<Address>,
    },
    /// A HANDSHAKE arrived.
    Handshake {
        /// The connection it came on.
        conn: ConnId,
        /// Its first address, the sender's, if valid.
        from: Option<Address>,
        /// How many addresses it listed.
        listed: usize,
        /// How many of those are not addresses we would dial.
        invalid: usize,
    },
    /// A transaction new to this node entered its pool.
    NewTransaction {
        /// Its hash.
        hash: String,
        /// The peer it came from, if known.
        from: Option<Address>,
        /// Pool size, this one included.
        pool: usize,
    },
    /// A transaction already in the pool arrived again and was dropped.
    Duplicate {
        /// Its hash.
        hash: String,
    },
    /// A frame of a type we do not know; ignored.
    UnknownType {
        /// The connection.
        conn: ConnId,
        /// Its `type`.
        kind: String,
    },
    /// A frame the node cannot use; dropped.
    Refused {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: FrameError,
    },
    /// A connection was closed for sending too many frames the node cannot use.
    Misbehaving {
        /// The connection.
        conn: ConnId,
        /// Who it was, if known.
        peer: Option<Address>,
    },
    /// A dial turned out to reach this node itself; the address is never dialled again.
    SelfAlias(Address),
    /// Catch-up with a peer brought transactions this node lacked.
    CaughtUp {
        /// The peer.
        from: Option<Address>,
        /// How many were new.
        new: usize,
    },
    /// A limit stopped the node from doing what a peer asked.
    Limit {
        /// Which limit.
        what: &'static str,
        /// The limit's value.
        limit: usize,
    },
}

impl Notice {
    /// How much it matters.
    pub fn level(&self) -> Level {
        match self {
            Notice::Listening(_)
            | Notice::Connected(_)
            | Notice::Disconnected { .. }
            | Notice::Handshake { .. }
            | Notice::NewTransaction { .. }
            | Notice::CaughtUp { .. } => Level::Info,
            Notice::DialFailed { attempt, .. } if *attempt <= 1 => Level::Info,
            Notice::Refused { .. }
            | Notice::Misbehaving { .. }
            | Notice::Limit { .. }
            | Notice::SelfAlias(_) => Level::Warn,
            Notice::UnknownType { .. } => Level::Info,
            Notice::DialFailed { .. }
            | Notice::Dialling { .. }
            | Notice::Accepted(_)
            | Notice::InboundClosed { .. }
            | Notice::Duplicate { .. } => Level::Debug,
        }
    }
}

struct OrUnknown<'a>(&'a Option<Address>);

impl fmt::Display for OrUnknown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}"),
            None => f.write_str("an unnamed peer"),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Listening(address) => write!(f, "listening on {address}"),
            Notice::Dialling { address, attempt } => {
                write!(f, "dialling {address} (attempt {})", attempt + 1)
            }
            Notice::Connected(address) => {
                write!(f, "connected to {address}; sent HANDSHAKE")
            }
            Notice::DialFailed {
                address,
                attempt,
                retry_in: Some(delay),
            } => write!(
                f,
                "could not reach {address} ({attempt} in a row); retrying in {} ms",
                delay.as_millis()
            ),
            Notice::DialFailed {
                address,
                attempt,
                retry_in: None,
            } => write!(
                f,
                "could not reach {address} ({attempt} in a row); forgetting it"
            ),
            Notice::Disconnected { address, retry_in } => write!(
                f,
                "disconnected from {address}; redialling in {} ms",
                retry_in.as_millis()
            ),
            Notice::Accepted(conn) => write!(f, "accepted connection {conn}"),
            Notice::InboundClosed { conn, peer } => {
                write!(f, "connection {conn} from {} closed", OrUnknown(peer))
            }
            Notice::Handshake {
                conn,
                from,
                listed,
                invalid,
            } => {
                write!(
                    f,
                    "HANDSHAKE from {} on {conn} listing {listed} address{}",
                    OrUnknown(from),
                    if *listed == 1 { "" } else { "es" }
                )?;
                if *invalid > 0 {
                    write!(f, " ({invalid} not dialable, ignored)")?;
                }
                Ok(())
            }
            Notice::NewTransaction { hash, from, pool } => write!(
                f,
                "new transaction {hash} from {}; pool holds {pool}",
                OrUnknown(from)
            ),
            Notice::Duplicate { hash } => write!(f, "dropped duplicate transaction {hash}"),
            Notice::UnknownType { conn, kind } => {
                write!(f, "ignored frame of unknown type {kind:?} on {conn}")
            }
            Notice::Refused { conn, error } => write!(f, "refused frame on {conn}: {error}"),
            Notice::Misbehaving { conn, peer } => write!(
                f,
                "closing {conn} from {}: too many frames it cannot use",
                OrUnknown(peer)
            ),
            Notice::SelfAlias(address) => write!(
                f,
                "{address} is this node itself; closing that connection and never dialling it again"
            ),
            Notice::CaughtUp { from, new } => write!(
                f,
                "caught up {new} transaction{} from {}",
                if *new == 1 { "" } else { "s" },
                OrUnknown(from)
            ),
            Notice::Limit { what, limit } => write!(f, "limit reached: {what} ({limit})"),
        }
    }
}

/// A node's state as the STATUS frame reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The node's advertised address.
    pub address: Address,
    /// Its `connectedAddresses`: open dialled connections, in the order they opened.
    pub connected: Vec<Address>,
    /// Dials in flight.
    pub dialling: Vec<Address>,
    /// Accepted connections open.
    pub inbound: usize,
    /// Transactions in the pool.
    pub pool: usize,
    /// Frames sent since start, by type.
    pub sent: Sent,
}

/// Frames a node has sent, by type (what benchmarks and the simulator count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// HANDSHAKE frames.
    pub handshake: u64,
    /// TRANSACTION frames.
    pub transaction: u64,
    /// STATUS replies.
    pub status: u64,
    /// HELLO answers to our HANDSHAKEs.
    pub hello: u64,
    /// SYNC frames (catch-up).
    pub sync: u64,
    /// TXS frames (catch-up bodies).
    pub txs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    /// Not connected; dialled at `at` (or as soon as a dial slot is free after it).
    Waiting {
        at: Time,
    },
    Dialling {
        dial: DialId,
    },
    Open {
        conn: ConnId,
    },
}

#[derive(Debug, Clone)]
struct Peer {
    state: PeerState,
    /// Known peers and peers once reached are never forgotten.
    keep: bool,
    /// Failed dials in a row.
    failures: u32,
    /// It marked its HANDSHAKE as one of ours: it speaks SYNC, and it pushes what it
    /// originates to all its peers, so what we get from it we need not pass to ours.
    ours: bool,
    /// The dialled connection on which catch-up with it was opened.
    synced_on: Option<ConnId>,
    /// When its last dialled connection opened.
    opened_at: Time,
}

#[derive(Debug, Clone)]
enum ConnKind {
    /// A connection we dialled, and the nonce of the HANDSHAKE we sent on it.
    Dialled(Address, u64),
    /// The peer's address once it said it in a HANDSHAKE.
    Accepted(Option<Address>),
}

#[derive(Debug, Clone)]
struct Conn {
    kind: ConnKind,
    refused: u32,
    /// The node asked the host to close it: frames from it are ignored.
    closing: bool,
}

/// The transactions a node holds, in arrival order, and by hash (sorted, for catch-up).
#[derive(Debug, Default, Clone)]
struct Pool {
    order: Vec<Transaction>,
    /// Hash to position in `order`.
    hashes: HashIndex,
}

impl Pool {
    fn contains(&self, hash: &str) -> bool {
        self.hashes.contains(hash)
    }

    fn get(&self, hash: &str) -> Option<&Transaction> {
        self.hashes.index(hash).and_then(|i| self.order.get(i))
    }

    /// Adds `tx` unless its hash is already held; says whether it was new.
    fn insert(&mut self, tx: Transaction) -> bool {
        if !self
            .hashes
            .insert(Arc::clone(tx.shared_hash()), self.order.len())
        {
            return false;
        }
        self.order.push(tx);
        true
    }
}

/// Where a transaction came from, which decides where it goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Pushed by a peer, or made here: pass it on.
    Push,
    /// Found missing by catch-up with one of ours: only JavaScript peers need it pushed.
    CatchUp,
}

/// Hashers that start from the node's seed: deterministic for one seed, unpredictable
/// to peers.
#[derive(Debug, Clone, Copy)]
struct SeededHasher(u64);

impl BuildHasher for SeededHasher {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        let mut hasher = DefaultHasher::new();
        hasher.write_u64(self.0);
        hasher
    }
}

/// One node of the network, as a pure state machine.
///
/// See the crate documentation for how a host drives it.
pub struct Node {
    config: Config,
    started: bool,
    /// The address book; never iterated, so a hash map (keyed by the node's seed, so
    /// a peer cannot aim collisions at it) keeps the simulator deterministic.
    peers: HashMap<Address, Peer, SeededHasher>,
    /// `connectedAddresses`, in the order the dials opened.
    connected: Vec<Address>,
    conns: BTreeMap<ConnId, Conn>,
    dials: BTreeMap<DialId, Address>,
    /// Waiting peers by the time they may be dialled.
    wakeups: BTreeSet<(Time, Address)>,
    dial_deadlines: BTreeSet<(Time, DialId)>,
    next_dial: u64,
    /// The dial-rate limit's theoretical arrival time.
    dial_rate_tat: Time,
    inbound: usize,
    pool: Pool,
    /// Spellings found to reach this node itself.
    learned_aliases: BTreeSet<Address>,
    /// When the next catch-up round with every peer of ours is due, and when the pool
    /// first changed since the last one (rounds wait for a lull, but not forever).
    sync_due: Option<(Time, Time)>,
    /// The address book filled up and that was logged; reset when a HANDSHAKE ends, so
    /// one HANDSHAKE of thousands of addresses logs it once.
    book_full_logged: bool,
    actions: VecDeque<Action>,
    rng: Rng,
    sent: Sent,
}

impl Node {
    /// A node with `config`, holding the transactions of its stored pool (duplicates in
    /// it are skipped). Nothing happens until [`Node::start`].
    pub fn new(config: Config, stored_pool: Vec<Transaction>) -> Node {
        let seed = config.seed;
        let mut pool = Pool::default();
        for tx in stored_pool {
            pool.insert(tx);
        }
        Node {
            rng: Rng::new(seed),
            config,
            started: false,
            peers: HashMap::with_hasher(SeededHasher(seed)),
            connected: Vec::new(),
            conns: BTreeMap::new(),
            dials: BTreeMap::new(),
            wakeups: BTreeSet::new(),
            dial_deadlines: BTreeSet::new(),
            next_dial: 0,
            dial_rate_tat: Time::ZERO,
            inbound: 0,
            pool,
            sync_due: None,
            learned_aliases: BTreeSet::new(),
            book_full_logged: false,
            actions: VecDeque::new(),
            sent: Sent::default(),
        }
    }

    /// Starts the node: it listens and dials every known peer. A second call does nothing.
    pub fn start(&mut self, now: Time) {
        if self.started {
            return;
        }
        self.started = true;
        let address = self.config.address.clone();
        self.actions.push_back(Action::Listen {
            address: address.clone(),
        });
        self.log(Notice::Listening(address));
        for address in self.config.known_peers.clone() {
            if let Some(peer) = self.want(address, now) {
                peer.keep = true;
            }
        }
        self.pump_dials(now);
    }

    /// The dial `dial` opened as connection `conn`.
    pub fn handle_dial_opened(&mut self, dial: DialId, conn: ConnId, now: Time) {
        let Some(address) = self.dials.remove(&dial) else {
            // It timed out before it opened, or was never ours: we do not want it.
            self.actions.push_back(Action::Close { conn });
            return;
        };
        self.dial_deadlines.retain(|&(_, d)| d != dial);
        let duplicate = self.conns.contains_key(&conn);
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.state = PeerState::Open { conn };
            peer.keep = true;
            peer.opened_at = now;
        }
        let nonce = self.rng.next_u64();
        if duplicate {
            // The host reused a live id; refusing it keeps our books straight.
            self.actions.push_back(Action::Close { conn });
            self.retry_later(address, now);
            self.pump_dials(now);
            return;
        }
        self.conns.insert(
            conn,
            Conn {
                kind: ConnKind::Dialled(address.clone(), nonce),
                refused: 0,
                closing: false,
            },
        );
        self.connected.push(address.clone());
        let handshake = frame::handshake(&self.config.address, &self.connected, nonce);
        self.sent.handshake += 1;
        self.actions.push_back(Action::Send {
            conn,
            frame: handshake.into(),
        });
        self.log(Notice::Connected(address.clone()));
        self.open_catch_up(&address);
        self.pump_dials(now);
    }

    /// The dial `dial` failed (refused, unreachable, handshake error).
    pub fn handle_dial_failed(&mut self, dial: DialId, now: Time) {
        if let Some(address) = self.dials.remove(&dial) {
            self.dial_deadlines.retain(|&(_, d)| d != dial);
            self.dial_failed(address, now);
        }
        self.pump_dials(now);
    }

    /// The host accepted connection `conn` on the node's server.
    pub fn handle_accepted(&mut self, conn: ConnId, _now: Time) {
        let limit = self.config.limits.max_inbound;
        if self.inbound >= limit || self.conns.contains_key(&conn) {
            self.actions.push_back(Action::Close { conn });
            self.log(Notice::Limit {
                what: "inbound connections",
                limit,
            });
            return;
        }
        self.inbound += 1;
        self.conns.insert(
            conn,
            Conn {
                kind: ConnKind::Accepted(None),
                refused: 0,
                closing: false,
            },
        );
        self.log(Notice::Accepted(conn));
    }

    /// A text frame arrived on `conn`.
    pub fn handle_text(&mut self, conn: ConnId, text: &str, now: Time) {
        match self.conns.get(&conn) {
            Some(c) if !c.closing => {}
            _ => return,
        }
        match frame::decode(text, self.config.limits.max_frame_bytes) {
            Ok(Frame::Handshake {
                addresses,
                ours,
                nonce,
            }) => {
                let from_us = addresses
                    .first()
                    .is_some_and(|first| first.as_ref() == self.config.address.as_str());
                if !(from_us && self.caught_dialling_itself(nonce)) {
                    self.on_handshake(conn, addresses, ours, now);
                }
            }
            Ok(Frame::Transaction(tx)) => {
                let from = self.peer_of(conn);
                self.accept_transaction(tx, from, Via::Push, now);
            }
            Ok(Frame::Sync(ranges)) => self.on_sync(conn, &ranges),
            Ok(Frame::Txs(txs)) => {
                let from = self.peer_of(conn);
                let new = txs
                    .into_iter()
                    .filter(|tx| {
                        self.accept_transaction(tx.clone(), from.clone(), Via::CatchUp, now)
                    })
                    .count();
                if new > 0 {
                    self.log(Notice::CaughtUp { from, new });
                }
            }
            Ok(Frame::Hello) => {
                if let Some(ConnKind::Dialled(address, _)) = self.conns.get(&conn).map(|c| &c.kind)
                {
                    let address = address.clone();
                    if let Some(peer) = self.peers.get_mut(&address) {
                        peer.ours = true;
                    }
                    self.open_catch_up(&address);
                }
            }
            Ok(Frame::StatusRequest) => {
                let data = serde_json::to_string(&self.status()).unwrap_or_default();
                self.sent.status += 1;
                self.actions.push_back(Action::Send {
                    conn,
                    frame: format!(r#"{{"type":"STATUS","data":{data}}}"#).into(),
                });
            }
            Ok(Frame::Unknown(kind)) => self.log(Notice::UnknownType { conn, kind }),
            Err(error) => self.refuse(conn, error),
        }
    }

    /// A binary frame of `len` bytes arrived on `conn`; the protocol has none.
    pub fn handle_binary(&mut self, conn: ConnId, len: usize, _now: Time) {
        if self.conns.get(&conn).is_some_and(|c| !c.closing) {
            self.refuse(conn, FrameError::Binary(len));
        }
    }

    /// Connection `conn` closed, whoever closed it.
    pub fn handle_closed(&mut self, conn: ConnId, now: Time) {
        let Some(closed) = self.conns.remove(&conn) else {
            return;
        };
        match closed.kind {
            ConnKind::Dialled(address, _) => {
                self.connected.retain(|a| *a != address);
                // A connection that lived long clears the peer's record; one that closed
                // soon after opening (a peer that accepts, then drops or misbehaves)
                // counts as a failure, so redials back off instead of flapping.
                let stable_after = self.config.backoff.stable_after;
                let failures = match self.peers.get_mut(&address) {
                    Some(peer) if now.since(peer.opened_at) >= stable_after => {
                        peer.failures = 0;
                        1
                    }
                    Some(peer) => {
                        peer.failures = peer.failures.saturating_add(1);
                        peer.failures
                    }
                    None => 1,
                };
                let retry_in = self.backoff(failures);
                // A peer no longer in the book (an alias of ourselves) is not redialled.
                if self.wait(&address, now + retry_in) {
                    self.log(Notice::Disconnected { address, retry_in });
                }
            }
            ConnKind::Accepted(peer) => {
                self.inbound -= 1;
                self.log(Notice::InboundClosed { conn, peer });
            }
        }
        self.pump_dials(now);
    }

    /// Time passed: the host calls this at (or after) [`Node::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Time) {
        if let Some((due, _)) = self.sync_due {
            if due <= now {
                self.sync_due = None;
                self.catch_up_round();
            }
        }
        while let Some(&(deadline, dial)) = self.dial_deadlines.first() {
            if deadline > now {
                break;
            }
            self.dial_deadlines.pop_first();
            if let Some(address) = self.dials.remove(&dial) {
                self.dial_failed(address, now);
            }
        }
        self.pump_dials(now);
    }

    /// A transaction made at this node (the simulator's and tests' way in; the curriculum's
    /// `add-transaction` sends a frame instead). Says whether it was new.
    pub fn add_transaction(&mut self, tx: Transaction, now: Time) -> bool {
        self.accept_transaction(tx, None, Via::Push, now)
    }

    /// The next thing the host must do, if any. Drain it after every input.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the node next needs [`Node::handle_timeout`], if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let wakeup = if self.dials.len() < self.config.limits.max_concurrent_dials {
            self.wakeups
                .first()
                .map(|&(at, _)| at.max(self.next_dial_allowed()))
        } else {
            None
        };
        let deadline = self.dial_deadlines.first().map(|&(at, _)| at);
        let sync = self.sync_due.map(|(due, _)| due);
        [wakeup, deadline, sync].into_iter().flatten().min()
    }

    /// The node's advertised address.
    pub fn address(&self) -> &Address {
        &self.config.address
    }

    /// `connectedAddresses`: open dialled connections, in the order they opened.
    pub fn connected_addresses(&self) -> &[Address] {
        &self.connected
    }

    /// Addresses being dialled now.
    pub fn dialling(&self) -> impl Iterator<Item = &Address> {
        self.dials.values()
    }

    /// The pool, in arrival order.
    pub fn pool(&self) -> &[Transaction] {
        &self.pool.order
    }

    /// Whether the pool holds a transaction with this hash.
    pub fn has_transaction(&self, hash: &str) -> bool {
        self.pool.contains(hash)
    }

    /// A summary of the node's state.
    pub fn status(&self) -> Status {
        Status {
            address: self.config.address.clone(),
            connected: self.connected.clone(),
            dialling: self.dials.values().cloned().collect(),
            inbound: self.inbound,
            pool: self.pool.order.len(),
            sent: self.sent,
        }
    }

    /// The config the node was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn is_self(&self, address: &Address) -> bool {
        *address == self.config.address
            || self.config.aliases.contains(address)
            || self.learned_aliases.contains(address)
    }

    /// A HANDSHAKE naming us first and carrying the nonce of one of our own dials came
    /// back to us: that dial reached this very node under a spelling we did not know (a
    /// host name, a LAN address). The spelling becomes an alias of ours, never dialled
    /// again, and the dial is closed. Only our own dial's nonce, which no other node has
    /// seen unless we dialled it, can cause this.
    fn caught_dialling_itself(&mut self, nonce: Option<u64>) -> bool {
        let Some(nonce) = nonce else {
            return false;
        };
        let found = self.conns.iter().find_map(|(&conn, c)| match &c.kind {
            ConnKind::Dialled(address, n) if *n == nonce => Some((conn, address.clone())),
            _ => None,
        });
        let Some((conn, alias)) = found else {
            return false;
        };
        self.log(Notice::SelfAlias(alias.clone()));
        self.learned_aliases.insert(alias.clone());
        self.connected.retain(|a| *a != alias);
        self.peers.remove(&alias);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.closing = true;
        }
        self.actions.push_back(Action::Close { conn });
        true
    }

    fn log(&mut self, notice: Notice) {
        self.actions.push_back(Action::Log(notice));
    }

    fn peer_of(&self, conn: ConnId) -> Option<Address> {
        match &self.conns.get(&conn)?.kind {
            ConnKind::Dialled(address, _) => Some(address.clone()),
            ConnKind::Accepted(peer) => peer.clone(),
        }
    }

    fn on_handshake(&mut self, conn: ConnId, list: Vec<Cow<'_, str>>, ours: bool, now: Time) {
        let limit = self.config.limits.max_handshake_addresses;
        if list.len() > limit {
            self.log(Notice::Limit {
                what: "addresses taken from one HANDSHAKE",
                limit,
            });
        }
        let listed = list.len();
        let mut invalid = 0;
        let mut from = None;
        for (index, text) in list.iter().take(limit).enumerate() {
            // Fast path: our nodes list canonical addresses, mostly of servers we are
            // already connected to or dialling; those need no parsing and no dial.
            if index > 0 {
                if let Some(peer) = self.peers.get(text.as_ref()) {
                    if !matches!(peer.state, PeerState::Waiting { .. }) {
                        continue;
                    }
                }
            }
            let Ok(address) = text.parse::<Address>() else {
                invalid += 1;
                continue;
            };
            if index == 0 {
                from = Some(address.clone());
            }
            // `want` skips our own address, open connections and dials in flight; an
            // address listed as someone's open connection is alive, so dial it now.
            let _ = self.want(address, now);
        }
        if let Some(Conn {
            kind: ConnKind::Accepted(peer),
            ..
        }) = self.conns.get_mut(&conn)
        {
            if peer.is_none() {
                peer.clone_from(&from);
            }
            if ours {
                self.sent.hello += 1;
                self.actions.push_back(Action::Send {
                    conn,
                    frame: frame::HELLO.into(),
                });
            }
        }
        if let Some(sender) = &from {
            if let Some(peer) = self.peers.get_mut(sender) {
                peer.ours = ours;
            }
            self.open_catch_up(sender);
        }
        self.book_full_logged = false;
        self.log(Notice::Handshake {
            conn,
            from,
            listed,
            invalid,
        });
        self.pump_dials(now);
    }

    /// Pools `tx` if it is new and passes it on; says whether it was new.
    ///
    /// Relay: a node of ours pushes what it originates (or hears from a JavaScript node,
    /// or from a peer unknown) to every peer it dialled. What it hears from one of ours
    /// it passes only to peers not of ours, which flood and never catch up; peers of ours
    /// already had it pushed by its origin, and catch-up rounds fill whatever a lost or
    /// missing connection kept from them. In a stable mesh of our nodes each transaction
    /// crosses one link per receiving node.
    fn accept_transaction(
        &mut self,
        tx: Transaction,
        from: Option<Address>,
        via: Via,
        now: Time,
    ) -> bool {
        if self.pool.contains(tx.hash()) {
            self.log(Notice::Duplicate {
                hash: tx.short_hash().to_owned(),
            });
            return false;
        }
        self.pool.insert(tx.clone());
        let from_ours = via == Via::CatchUp || from.as_ref().is_some_and(|a| self.is_ours(a));
        let mut frame: Option<Payload> = None;
        for address in &self.connected {
            if from.as_ref() == Some(address) {
                continue;
            }
            let Some(peer) = self.peers.get(address) else {
                continue;
            };
            if from_ours && peer.ours {
                continue;
            }
            if let PeerState::Open { conn } = peer.state {
                let frame = frame.get_or_insert_with(|| tx.to_frame().into());
                self.sent.transaction += 1;
                self.actions.push_back(Action::Send {
                    conn,
                    frame: Arc::clone(frame),
                });
            }
        }
        self.schedule_catch_up(now);
        self.log(Notice::NewTransaction {
            hash: tx.short_hash().to_owned(),
            from,
            pool: self.pool.order.len(),
        });
        self.actions.push_back(Action::Persist { transaction: tx });
        true
    }

    /// Time between dials at the sustained dial rate.
    fn dial_interval(&self) -> Duration {
        Duration::from_secs(1) / self.config.limits.max_dials_per_second.max(1)
    }

    /// When the dial-rate limit (GCRA: a burst of `dial_burst`, then
    /// `max_dials_per_second`) next lets a dial start.
    fn next_dial_allowed(&self) -> Time {
        let burst = self.dial_interval() * self.config.limits.dial_burst;
        Time::from_micros(
            self.dial_rate_tat
                .as_micros()
                .saturating_sub(burst.as_micros() as u64),
        )
    }

    fn is_ours(&self, address: &Address) -> bool {
        self.peers.get(address).is_some_and(|p| p.ours)
    }

    /// Opens catch-up with `address` once per dialled connection, as soon as the
    /// connection is open and the peer has shown it is one of ours.
    fn open_catch_up(&mut self, address: &Address) {
        let Some(peer) = self.peers.get_mut(address) else {
            return;
        };
        let PeerState::Open { conn } = peer.state else {
            return;
        };
        // One conversation per pair is enough (it reconciles both ways): the side with
        // the smaller address opens it.
        if !peer.ours || peer.synced_on == Some(conn) || self.config.address > *address {
            return;
        }
        peer.synced_on = Some(conn);
        let frame = frame::sync(&sync::open(&self.pool.hashes));
        self.sent.sync += 1;
        self.actions.push_back(Action::Send {
            conn,
            frame: frame.into(),
        });
    }

    /// The pool changed: a catch-up round with every peer of ours follows once things
    /// are quiet for `Sync::lull`, and at most `Sync::max_wait` after the first change.
    fn schedule_catch_up(&mut self, now: Time) {
        let lull = self.config.sync.lull;
        let max_wait = self.config.sync.max_wait;
        self.sync_due = Some(match self.sync_due {
            None => (now + lull, now),
            Some((_, first)) => ((now + lull).min(first + max_wait), first),
        });
    }

    /// Opens catch-up with every open peer of ours (one frame, shared).
    fn catch_up_round(&mut self) {
        let mut frame: Option<Payload> = None;
        for address in &self.connected {
            let Some(peer) = self.peers.get(address) else {
                continue;
            };
            if let (true, PeerState::Open { conn }) = (peer.ours, peer.state) {
                let frame =
                    frame.get_or_insert_with(|| frame::sync(&sync::open(&self.pool.hashes)).into());
                self.sent.sync += 1;
                self.actions.push_back(Action::Send {
                    conn,
                    frame: Arc::clone(frame),
                });
            }
        }
    }

    /// Answers a step of catch-up on the connection it came on.
    fn on_sync(&mut self, conn: ConnId, ranges: &[Range]) {
        let reply = sync::answer(&self.pool.hashes, ranges);
        if !reply.ranges.is_empty() {
            self.sent.sync += 1;
            self.actions.push_back(Action::Send {
                conn,
                frame: frame::sync(&reply.ranges).into(),
            });
        }
        if !reply.send.is_empty() {
            let txs: Vec<&Transaction> =
                reply.send.iter().filter_map(|h| self.pool.get(h)).collect();
            for text in frame::txs(txs, self.config.limits.max_frame_bytes / 2) {
                self.sent.txs += 1;
                self.actions.push_back(Action::Send {
                    conn,
                    frame: text.into(),
                });
            }
        }
    }

    fn refuse(&mut self, conn: ConnId, error: FrameError) {
        self.log(Notice::Refused { conn, error });
        let limit = self.config.limits.max_refused_frames;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.refused += 1;
        if c.refused >= limit && !c.closing {
            c.closing = true;
            let peer = self.peer_of(conn);
            self.actions.push_back(Action::Close { conn });
            self.log(Notice::Misbehaving { conn, peer });
        }
    }

    /// Makes sure `address` is dialled soon unless it is us, open, or being dialled.
    /// Returns its book entry, if it has one.
    fn want(&mut self, address: Address, now: Time) -> Option<&mut Peer> {
        if self.is_self(&address) {
            return None;
        }
        if !self.peers.contains_key(&address) {
            let limit = self.config.limits.max_address_book;
            if self.peers.len() >= limit {
                if !self.book_full_logged {
                    self.book_full_logged = true;
                    self.log(Notice::Limit {
                        what: "address book",
                        limit,
                    });
                }
                return None;
            }
            self.peers.insert(
                address.clone(),
                Peer {
                    state: PeerState::Waiting { at: now },
                    keep: false,
                    failures: 0,
                    ours: false,
                    synced_on: None,
                    opened_at: Time::ZERO,
                },
            );
            self.wait(&address, now);
        }
        if let Some(PeerState::Waiting { at }) = self.peers.get(&address).map(|p| p.state) {
            if at > now {
                self.wakeups.remove(&(at, address.clone()));
                self.wait(&address, now);
            }
        }
        self.peers.get_mut(&address)
    }

    fn dial_failed(&mut self, address: Address, now: Time) {
        let forget_after = self.config.backoff.forget_after;
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        peer.failures = peer.failures.saturating_add(1);
        let attempt = peer.failures;
        if !peer.keep && attempt >= forget_after {
            self.peers.remove(&address);
            self.log(Notice::DialFailed {
                address,
                attempt,
                retry_in: None,
            });
            return;
        }
        let retry_in = self.backoff(attempt);
        self.wait(&address, now + retry_in);
        self.log(Notice::DialFailed {
            address,
            attempt,
            retry_in: Some(retry_in),
        });
    }

    fn retry_later(&mut self, address: Address, now: Time) {
        let retry_in = self.backoff(1);
        self.wait(&address, now + retry_in);
    }

    /// Puts a known peer in `Waiting { at }` with its wake-up in the schedule, the one
    /// place the two are kept in step (`pump_dials` skips wake-ups whose peer has moved on).
    /// False if the address is not in the book.
    fn wait(&mut self, address: &Address, at: Time) -> bool {
        let Some(peer) = self.peers.get_mut(address) else {
            return false;
        };
        peer.state = PeerState::Waiting { at };
        self.wakeups.insert((at, address.clone()));
        true
    }

    /// The delay before retry number `attempt` (1 for the first): doubling from the
    /// initial delay up to the cap, then jittered.
    fn backoff(&mut self, attempt: u32) -> Duration {
        let initial = self.config.backoff.initial;
        let doubled = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        self.jitter(doubled.min(self.config.backoff.max))
    }

    /// A random delay in `[d/2, d]`, so nodes that failed together do not retry together.
    fn jitter(&mut self, delay: Duration) -> Duration {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.range(micros / 2, micros))
    }

    /// Starts dials whose time has come, as far as the concurrency cap allows.
    fn pump_dials(&mut self, now: Time) {
        let interval = self.dial_interval();
        while self.dials.len() < self.config.limits.max_concurrent_dials {
            let Some((at, _)) = self.wakeups.first() else {
                break;
            };
            if *at > now || self.next_dial_allowed() > now {
                break;
            }
            let Some((at, address)) = self.wakeups.pop_first() else {
                break;
            };
            let Some(peer) = self.peers.get_mut(&address) else {
                continue;
            };
            // Stale entries (the peer was rescheduled, or connected) are skipped.
            if peer.state != (PeerState::Waiting { at }) {
                continue;
            }
            let dial = DialId(self.next_dial);
            self.next_dial += 1;
            self.dial_rate_tat = self.dial_rate_tat.max(now) + interval;
            peer.state = PeerState::Dialling { dial };
            let attempt = peer.failures;
            self.dials.insert(dial, address.clone());
            self.dial_deadlines
                .insert((now + self.config.backoff.dial_timeout, dial));
            self.actions.push_back(Action::Dial {
                dial,
                address: address.clone(),
            });
            self.log(Notice::Dialling { address, attempt });
        }
    }
}

#[cfg(test)]
mod tests;
