//! The protocol state machine: `Node` and its `handle_*` / `poll_*` surface. Its jobs sit
//! in submodules along their seams: `dialer` (the address book and dialling), `relay`
//! (the pool, relay and catch-up) and `notice` (what the node tells people, and STATUS).

mod budget;
mod dialer;
mod notice;
mod rate;
mod relay;
mod watch;

use budget::Outbox;
use dialer::Wanted;
pub use notice::{Level, Notice, Sent, Status};
use relay::{Pool, Reconciled, Via};

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, DefaultHasher, Hasher};
use std::sync::Arc;

use crate::address::Address;
use crate::config::Config;
use crate::frame::{self, Frame, FrameError};
use crate::rng::Rng;
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
    /// Give up on dial `dial`: the node no longer waits for it (it did not open within
    /// `Backoff::dial_timeout`). The host stops it and reports nothing more about it; if
    /// it opens anyway and is reported, the node closes it.
    AbandonDial {
        /// The dial.
        dial: DialId,
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
    /// A node we watch (see `Config::watch`) did something: `event` is the EVENT frame's
    /// `data`, a JSON object (`kind` names what: `state`, `peers` or `pooled`), for the
    /// host to show. Only a node with `Config::watch` set produces it.
    Watched {
        /// The node it comes from.
        from: Address,
        /// The event, as JSON text.
        event: String,
    },
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
    /// It is not one of ours: it sent a HANDSHAKE without `ext`, or its dial was open for
    /// `Sync::settle` without a word of it. What we get from ours we pass to it.
    foreign: bool,
    /// Catch-up with it, if it is one of ours.
    sync: Reconciled,
    /// When its last dialled connection opened.
    opened_at: Time,
    /// Only heard of, in a HANDSHAKE from this source, and never reached.
    learned_from: Option<u64>,
}

#[derive(Debug, Clone)]
enum ConnKind {
    /// A connection we dialled, and the nonce of the HANDSHAKE we sent on it.
    Dialled(Address, u64),
    /// The peer's address once it said it in a HANDSHAKE.
    Accepted(Option<Address>),
}

#[derive(Debug)]
struct Conn {
    kind: ConnKind,
    refused: u32,
    /// The node asked the host to close it: frames from it are ignored.
    closing: bool,
    /// Its peer said it is one of ours (a HANDSHAKE with `ext` on an accepted connection,
    /// HELLO on a dialled one): it may ask for catch-up.
    ours: bool,
    /// What waits to go out on it, and what it has cost.
    out: Outbox,
    /// A dial whose peer has not said whether it is one of ours: at this time (in
    /// `Node::conn_timers`) it is taken for one that is not.
    identify_by: Option<Time>,
    /// An accepted connection from a dial-only peer of ours (see `watch`).
    client: bool,
    /// It asked to be streamed events (see `watch`).
    watching: bool,
}

impl Conn {
    fn new(kind: ConnKind, seed: u64) -> Conn {
        Conn {
            kind,
            refused: 0,
            closing: false,
            ours: false,
            out: Outbox::new(seed),
            identify_by: None,
            client: false,
            watching: false,
        }
    }
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
    /// Waiting known peers, HANDSHAKE senders and peers once reached, by the time they
    /// may be dialled.
    wakeups: BTreeSet<(Time, Address)>,
    /// Waiting learned addresses (only listed in a HANDSHAKE), likewise: a queue of their
    /// own, so they never delay the others.
    learned_wakeups: BTreeSet<(Time, Address)>,
    /// Dials in flight to learned addresses.
    learned_dials: BTreeSet<DialId>,
    /// Learned addresses in the book, by source.
    learned_counts: HashMap<u64, usize, SeededHasher>,
    dial_deadlines: BTreeSet<(Time, DialId)>,
    /// Connections to look at then: a stall check, or catch-up held back by its rate.
    conn_timers: BTreeSet<(Time, ConnId)>,
    next_dial: u64,
    /// The dial-rate limit's theoretical arrival time.
    dial_rate_tat: Time,
    inbound: usize,
    pool: Pool,
    /// Spellings found to reach this node itself.
    learned_aliases: BTreeSet<Address>,
    /// When to look for catch-up rounds that are due (at or before the first one).
    sync_check: Option<Time>,
    /// The address book filled up and that was logged; reset when a HANDSHAKE ends, so
    /// one HANDSHAKE of thousands of addresses logs it once.
    book_full_logged: bool,
    actions: VecDeque<Action>,
    /// Connections with pushes gathered for packing (see `pack`), and when the first
    /// of them was pushed.
    packing: Vec<ConnId>,
    packing_at: Time,
    /// Peers in the book found not to be ours (`Peer::foreign`): while there are none,
    /// what comes from ours is passed to no one, and relay looks at no peer for it.
    foreign_peers: usize,
    /// Accepted connections of dial-only peers of ours, pushed to as our dials are.
    clients: Vec<ConnId>,
    /// Connections streamed events.
    watchers: Vec<ConnId>,
    /// Pool length when watchers were last told of new transactions.
    watch_mark: usize,
    rng: Rng,
    sent: Sent,
}

impl Node {
    /// A node with `config`, holding the transactions of its stored pool (duplicates in
    /// it are skipped). Nothing happens until [`Node::start`].
    pub fn new(config: Config, stored_pool: Vec<Transaction>) -> Node {
        let seed = config.seed;
        let pool = Pool::from_stored(stored_pool);
        let watch_mark = pool.len();
        Node {
            rng: Rng::new(seed),
            config,
            started: false,
            peers: HashMap::with_hasher(SeededHasher(seed)),
            connected: Vec::new(),
            conns: BTreeMap::new(),
            dials: BTreeMap::new(),
            wakeups: BTreeSet::new(),
            learned_wakeups: BTreeSet::new(),
            learned_dials: BTreeSet::new(),
            learned_counts: HashMap::with_hasher(SeededHasher(seed)),
            dial_deadlines: BTreeSet::new(),
            conn_timers: BTreeSet::new(),
            next_dial: 0,
            dial_rate_tat: Time::ZERO,
            inbound: 0,
            pool,
            sync_check: None,
            learned_aliases: BTreeSet::new(),
            book_full_logged: false,
            actions: VecDeque::new(),
            packing: Vec::new(),
            packing_at: Time::ZERO,
            foreign_peers: 0,
            clients: Vec::new(),
            watchers: Vec::new(),
            watch_mark,
            sent: Sent::default(),
        }
    }

    /// Starts the node: it listens (unless it only dials) and dials every known peer. A
    /// second call does nothing.
    pub fn start(&mut self, now: Time) {
        if self.started {
            return;
        }
        self.started = true;
        let address = self.config.address.clone();
        if self.config.dial_only {
            self.log(Notice::DialOnly(address));
        } else {
            self.actions.push_back(Action::Listen {
                address: address.clone(),
            });
            self.log(Notice::Listening(address));
        }
        for address in self.config.known_peers.clone() {
            if let Some(peer) = self.want(address, now, Wanted::Known) {
                peer.keep = true;
            }
        }
        self.pump_dials(now);
    }

    /// The dial `dial` opened as connection `conn`.
    pub fn handle_dial_opened(&mut self, dial: DialId, conn: ConnId, now: Time) {
        let Some(address) = self.end_dial(dial) else {
            // It timed out before it opened, or was never ours: we do not want it.
            self.actions.push_back(Action::Close { conn });
            return;
        };
        self.unlearn(&address);
        let duplicate = self.conns.contains_key(&conn);
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.state = PeerState::Open { conn };
            peer.keep = true;
            peer.opened_at = now;
            peer.sync.since = now;
        }
        let nonce = self.rng.next_u64();
        if duplicate {
            // The host reused a live id; refusing it keeps our books straight.
            self.actions.push_back(Action::Close { conn });
            self.retry_later(address, now);
            self.pump_dials(now);
            return;
        }
        let seed = self.config.seed;
        self.conns.insert(
            conn,
            Conn::new(ConnKind::Dialled(address.clone(), nonce), seed),
        );
        self.connected.push(address.clone());
        let handshake = if self.config.dial_only {
            frame::handshake_dial_only(nonce)
        } else {
            frame::handshake(&self.config.address, &self.connected, nonce)
        };
        self.sent.handshake += 1;
        self.send(conn, handshake.into(), now);
        self.log(Notice::Connected(address.clone()));
        self.peers_changed(Some(&address), now);
        let (ours, foreign) = self
            .peers
            .get(&address)
            .map_or((false, false), |p| (p.ours, p.foreign));
        let fresh = self.fresh_since(now);
        self.replay(conn, Some(fresh), foreign.then_some(fresh), now);
        if !ours && !foreign {
            let at = now + self.config.sync.settle;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.identify_by = Some(at);
                self.conn_timers.insert((at, conn));
            }
        }
        self.open_catch_up(&address, now);
        self.pump_dials(now);
    }

    /// The dial `dial` failed (refused, unreachable, handshake error).
    pub fn handle_dial_failed(&mut self, dial: DialId, now: Time) {
        if let Some(address) = self.end_dial(dial) {
            self.dial_failed(address, now);
        }
        self.pump_dials(now);
    }

    /// The host accepted connection `conn` on the node's server.
    pub fn handle_accepted(&mut self, conn: ConnId, _now: Time) {
        let limit = self.config.limits.max_inbound;
        if self.config.dial_only {
            // It never asked to listen: whatever the host accepted is not ours to keep.
            self.actions.push_back(Action::Close { conn });
            return;
        }
        if self.inbound >= limit || self.conns.contains_key(&conn) {
            self.actions.push_back(Action::Close { conn });
            self.log(Notice::Limit {
                what: "inbound connections",
                limit,
            });
            return;
        }
        self.inbound += 1;
        let seed = self.config.seed;
        self.conns
            .insert(conn, Conn::new(ConnKind::Accepted(None), seed));
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
                dial_only,
            }) => {
                let from_us = addresses
                    .first()
                    .is_some_and(|first| first.as_ref() == self.config.address.as_str());
                if !(from_us && self.caught_dialling_itself(nonce)) {
                    self.on_handshake(conn, addresses, ours, now);
                    if ours && dial_only {
                        self.client_joined(conn, now);
                    }
                }
            }
            Ok(Frame::Transaction(tx)) => {
                if let Err(error) = self.check_size(&tx) {
                    return self.refuse(conn, error);
                }
                let from = self.peer_of(conn);
                self.accept_transaction(tx, from, Some(conn), Via::Push, now);
            }
            Ok(Frame::Transactions(txs)) => {
                if let Some(error) = txs.iter().find_map(|tx| self.check_size(tx).err()) {
                    return self.refuse(conn, error);
                }
                let from = self.peer_of(conn);
                for tx in txs {
                    self.accept_transaction(tx, from.clone(), Some(conn), Via::Push, now);
                }
            }
            Ok(Frame::Sync(ranges)) => self.on_sync(conn, ranges, now),
            Ok(Frame::Txs(txs)) => {
                if let Some(error) = txs.iter().find_map(|tx| self.check_size(tx).err()) {
                    return self.refuse(conn, error);
                }
                let from = self.peer_of(conn);
                let new = txs
                    .into_iter()
                    .filter(|tx| {
                        self.accept_transaction(
                            tx.clone(),
                            from.clone(),
                            Some(conn),
                            Via::CatchUp,
                            now,
                        )
                    })
                    .count();
                if new > 0 {
                    self.log(Notice::CaughtUp { from, new });
                }
            }
            Ok(Frame::Hello) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if let ConnKind::Dialled(address, _) = &c.kind {
                    c.ours = true;
                    let address = address.clone();
                    if let Some(peer) = self.peers.get_mut(&address) {
                        peer.ours = true;
                        if std::mem::take(&mut peer.foreign) {
                            self.foreign_peers -= 1;
                        }
                    }
                    let _ = self.stop_identify_wait(conn);
                    self.open_catch_up(&address, now);
                    if self.config.watch {
                        self.send(conn, frame::WATCH.into(), now);
                    }
                }
            }
            Ok(Frame::Watch) => self.watch(conn, now),
            Ok(Frame::Event(event)) => match (self.conns.get(&conn), self.config.watch) {
                (
                    Some(Conn {
                        kind: ConnKind::Dialled(from, _),
                        ..
                    }),
                    true,
                ) => {
                    let from = from.clone();
                    let event = event.to_owned();
                    self.actions.push_back(Action::Watched { from, event });
                }
                _ => self.log(Notice::UnknownType {
                    conn,
                    kind: "EVENT".to_owned(),
                }),
            },
            Ok(Frame::StatusRequest) => {
                if !self.has_room(conn) {
                    return self.refuse(conn, FrameError::Unread("STATUS_REQUEST"));
                }
                let data = serde_json::to_string(&self.status()).unwrap_or_default();
                self.sent.status += 1;
                let frame = format!(r#"{{"type":"STATUS","data":{data}}}"#).into();
                self.send(conn, frame, now);
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
        if let Some(at) = closed.identify_by {
            self.conn_timers.remove(&(at, conn));
        }
        if closed.client || closed.watching {
            self.forget_watcher(conn);
        }
        match closed.kind {
            ConnKind::Dialled(address, _) => {
                self.connected.retain(|a| *a != address);
                self.peers_changed(None, now);
                self.catch_up_reset(&address, now);
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
                if closed.ours {
                    if let Some(address) = &peer {
                        self.catch_up_reset(address, now);
                    }
                }
                self.log(Notice::InboundClosed { conn, peer });
            }
        }
        self.pump_dials(now);
    }

    /// Time passed: the host calls this at (or after) [`Node::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Time) {
        if self.sync_check.is_some_and(|at| at <= now) {
            self.catch_up_rounds(now);
        }
        while let Some(&(deadline, dial)) = self.dial_deadlines.first() {
            if deadline > now {
                break;
            }
            if let Some(address) = self.end_dial(dial) {
                self.actions.push_back(Action::AbandonDial { dial });
                self.dial_failed(address, now);
            }
        }
        self.connection_timers(now);
        self.pump_dials(now);
    }

    /// The host wrote `bytes` of the frames it was handed for `conn` (the sum of their
    /// lengths) to the network. Until it does, those bytes count against the
    /// connection's send buffer (`Limits::max_send_buffer`); what waited for room is
    /// produced now. A host that writes synchronously reports each frame at once.
    pub fn handle_written(&mut self, conn: ConnId, bytes: usize, now: Time) {
        self.written(conn, bytes, now);
    }

    /// A transaction made at this node (the simulator's and tests' way in; the curriculum's
    /// `add-transaction` sends a frame instead). Says whether it was new.
    pub fn add_transaction(&mut self, tx: Transaction, now: Time) -> bool {
        self.accept_transaction(tx, None, None, Via::Push, now)
    }

    /// The next thing the host must do, if any. Drain it after every input, or after a
    /// batch of inputs taken together: new transactions pushed to a peer of ours in
    /// between go out in one frame (a TRANSACTIONS frame for several), packed when this
    /// is first called.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        if !self.packing.is_empty() {
            self.pack();
        }
        if self.watch_mark != self.pool.len() {
            self.report_pooled();
        }
        self.actions.pop_front()
    }

    /// When the node next needs [`Node::handle_timeout`], if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let wakeup = self.next_dial_at();
        let deadline = self.dial_deadlines.first().map(|&(at, _)| at);
        let sync = self.sync_check;
        let conn = self.conn_timers.first().map(|&(at, _)| at);
        [wakeup, deadline, sync, conn].into_iter().flatten().min()
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
        self.forget(&alias);
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
        // Whom the listed addresses are learned from: the sender as it names itself.
        let source = {
            let mut hasher = SeededHasher(self.config.seed).build_hasher();
            match list.first() {
                Some(first) => hasher.write(first.as_bytes()),
                None => hasher.write_u64(conn.0),
            }
            hasher.finish()
        };
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
            // `want` skips our own address, open connections and dials in flight. The
            // sender, talking to us now, is dialled back at once; what it lists waits in
            // the learned queue.
            let wanted = if index == 0 {
                from = Some(address.clone());
                Wanted::Direct
            } else {
                Wanted::Listed { source }
            };
            let _ = self.want(address, now, wanted);
        }
        if let Some(Conn {
            kind: ConnKind::Accepted(peer),
            ours: conn_ours,
            ..
        }) = self.conns.get_mut(&conn)
        {
            if peer.is_none() {
                peer.clone_from(&from);
            }
            // HELLO once per connection: a peer cannot make us queue one per HANDSHAKE.
            if ours && !*conn_ours {
                *conn_ours = true;
                self.sent.hello += 1;
                self.send(conn, frame::HELLO.into(), now);
            }
        }
        if let Some(sender) = &from {
            let mut dialled = None;
            if let Some(peer) = self.peers.get_mut(sender) {
                peer.ours = ours;
                if ours && std::mem::take(&mut peer.foreign) {
                    self.foreign_peers -= 1;
                }
                if let PeerState::Open { conn } = peer.state {
                    dialled = Some(conn);
                }
            }
            if !ours {
                self.found_foreign(sender, now);
            } else if let Some(conn) = dialled {
                let _ = self.stop_identify_wait(conn);
            }
            self.open_catch_up(sender, now);
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

    /// Refuses a transaction longer than `Limits::max_transaction_bytes`.
    fn check_size(&self, tx: &Transaction) -> Result<(), FrameError> {
        let limit = self.config.limits.max_transaction_bytes;
        match tx.body().len() {
            len if len > limit => Err(FrameError::TransactionTooLarge { len, limit }),
            _ => Ok(()),
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
            let peer = self.peer_of(conn);
            self.close_conn(conn);
            self.log(Notice::Misbehaving { conn, peer });
        }
    }
}

#[cfg(test)]
mod tests;
