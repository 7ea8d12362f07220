//! The protocol state machine: `Node` and its `handle_*` / `poll_*` surface. Its jobs sit
//! in submodules along their seams: `membership` (the address book, dialling, who is
//! connected and what they are: [`Membership`]), `relay` (the
//! pool, relay and catch-up: [`Broadcast`]), `budget` (what one
//! connection may cost), `watch` (dial-only peers and watchers) and `notice` (what the
//! node tells people, and STATUS). `Node` holds the connections both work over and
//! dispatches each input to them.

mod budget;
mod membership;
mod notice;
mod overlay;
mod rate;
mod relay;
mod watch;

use budget::Outbox;
use membership::{Io, Membership, Wanted};
pub use notice::{Level, Notice, OverlayStatus, Sent, Status};
use overlay::OverlayState;
use relay::{Broadcast, Pool, Via};

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
    /// A connection of the overlay: our dial for a link, or accepted from a node that
    /// said it runs the overlay (see `overlay`).
    overlay: bool,
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
            overlay: false,
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

/// Room kept in the action queue once the host has drained it: a burst queues tens of
/// thousands of actions (about 1.2 MB measured), which a node need not hold afterwards.
const ACTIONS_KEPT: usize = 1024;

/// One node of the network, as a pure state machine.
///
/// # The driving contract
///
/// - **Inputs.** Everything that happens reaches the node through a `handle_*` method
///   (or [`Node::start`], [`Node::add_transaction`]), each with the current [`Time`].
///   Time never goes backwards from one call to the next; the node never reads a clock.
/// - **Outputs.** Actions queue up in the order the node decided them; the host takes
///   them with [`Node::poll_action`] and carries them out in that order. It drains the
///   queue after every input, or after a batch of inputs that were already waiting (the
///   node packs the pushes of a batch together). Until it drains, any `handle_*` may be
///   called: the queue only grows, in order, and the node's state already reflects what
///   it decided (a frame queued counts against its connection's send buffer, a
///   connection it asked to close ignores what arrives on it).
/// - **Timers.** After draining, the host sleeps until [`Node::poll_timeout`] or the next
///   input, and then calls [`Node::handle_timeout`]. Calling it early, late or more often
///   is harmless; never calling it stops retries, catch-up rounds and stall checks.
/// - **Connections** are named by the host with [`ConnId`]s unique among its open ones;
///   an id may be used again only after its [`Node::handle_closed`]. Every connection
///   that opened (accepted, or a dial reported opened) is reported closed exactly once,
///   whoever closed it; after an [`Action::Close`] the host closes it and reports that
///   too. Frames handed over in [`Action::Send`] count against the connection's budget
///   until reported with [`Node::handle_written`].
/// - **Dials** are named by the node with [`DialId`]s. Each [`Action::Dial`] ends in
///   exactly one [`Node::handle_dial_opened`] or [`Node::handle_dial_failed`], unless the
///   node abandons it first ([`Action::AbandonDial`], when `Backoff::dial_timeout` passes):
///   then the host stops it and reports nothing more of it. A report of a dial the node
///   no longer waits for (abandoned, or never its own) is answered with a close.
/// - **Notices** ([`Action::Log`]) are for people. A host never acts on one: whatever it
///   must do is an action of its own kind.
///
/// The crate documentation has a worked example.
pub struct Node {
    config: Config,
    started: bool,
    /// The address book, dials and `connectedAddresses`.
    members: Membership,
    conns: BTreeMap<ConnId, Conn>,
    /// Connections to look at then: a stall check, or catch-up held back by its rate.
    conn_timers: BTreeSet<(Time, ConnId)>,
    /// The pool, and when relay and catch-up next have work.
    broadcast: Broadcast,
    /// What the host is to do, in order; room for at most `ACTIONS_KEPT` is kept once
    /// drained.
    actions: VecDeque<Action>,
    /// Accepted connections of dial-only peers of ours, pushed to as our dials are.
    clients: Vec<ConnId>,
    /// Connections streamed events.
    watchers: Vec<ConnId>,
    /// Pool length when watchers were last told of new transactions.
    watch_mark: usize,
    /// The overlay's views and tree, in overlay mode (`Config::overlay`).
    overlay: Option<OverlayState>,
    rng: Rng,
    sent: Sent,
}

impl Node {
    /// A node with `config`, holding the transactions of its stored pool (duplicates in
    /// it are skipped). Nothing happens until [`Node::start`].
    pub fn new(config: Config, stored_pool: Vec<Transaction>) -> Node {
        let seed = config.seed;
        let (config_overlay, dial_only) = (config.overlay.is_some(), config.dial_only);
        let address = config.address.clone();
        let pool = Pool::from_stored(stored_pool);
        let watch_mark = pool.len();
        Node {
            rng: Rng::new(seed),
            config,
            started: false,
            members: Membership::new(seed),
            conns: BTreeMap::new(),
            conn_timers: BTreeSet::new(),
            broadcast: Broadcast {
                pool,
                reconciled: HashMap::with_hasher(SeededHasher(seed)),
                sync_check: None,
                packing: Vec::new(),
                packing_at: Time::ZERO,
            },
            actions: VecDeque::new(),
            clients: Vec::new(),
            watchers: Vec::new(),
            watch_mark,
            overlay: (config_overlay && !dial_only).then(|| OverlayState::new(address, seed)),
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
        if self.overlay.is_some() {
            // Known peers are contacts to JOIN through, not a mesh to dial.
            return self.overlay_start(now);
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
        if self.overlay_dial_opened(dial, conn, now) {
            return;
        }
        let Some(address) = self.members.end_dial(dial) else {
            // It timed out before it opened, or was never ours: we do not want it.
            self.actions.push_back(Action::Close { conn });
            return;
        };
        self.members.unlearn(&address);
        let duplicate = self.conns.contains_key(&conn);
        if let Some(peer) = self.members.peers.get_mut(&address) {
            peer.state = PeerState::Open { conn };
            peer.keep = true;
            peer.opened_at = now;
        }
        if let Some(sync) = self.reconciled_mut(&address) {
            sync.since = now;
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
        self.members.connected.push(address.clone());
        let handshake = if self.config.dial_only {
            frame::handshake_dial_only(nonce)
        } else {
            frame::handshake(&self.config.address, &self.members.connected, nonce)
        };
        self.sent.handshake += 1;
        self.send(conn, handshake.into(), now);
        self.log(Notice::Connected(address.clone()));
        self.peers_changed(Some(&address), now);
        let (ours, foreign) = self
            .members
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
        if self.overlay_dial_failed(dial, now) {
            return;
        }
        if let Some(address) = self.members.end_dial(dial) {
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
        if self.members.inbound >= limit || self.conns.contains_key(&conn) {
            self.actions.push_back(Action::Close { conn });
            self.log(Notice::Limit {
                what: "inbound connections",
                limit,
            });
            return;
        }
        self.members.inbound += 1;
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
                overlay,
            }) => {
                let from_us = addresses
                    .first()
                    .is_some_and(|first| first.as_ref() == self.config.address.as_str());
                if from_us && self.caught_dialling_itself(nonce) {
                    return;
                }
                if overlay && ours && self.overlay.is_some() {
                    self.overlay_handshake(conn, addresses.first().map(AsRef::as_ref), now);
                } else {
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
                    if let Some(peer) = self.members.peers.get_mut(&address) {
                        peer.ours = true;
                        if std::mem::take(&mut peer.foreign) {
                            self.members.foreign_peers -= 1;
                        }
                    }
                    let _ = self.stop_identify_wait(conn);
                    self.open_catch_up(&address, now);
                    if self.config.watch {
                        self.send(conn, frame::WATCH.into(), now);
                    }
                }
            }
            Ok(Frame::Overlay(message)) => self.on_overlay(conn, message, now),
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
        if closed.overlay {
            let peer = match closed.kind {
                ConnKind::Dialled(address, _) => Some(address),
                ConnKind::Accepted(peer) => {
                    self.members.inbound -= 1;
                    peer
                }
            };
            self.overlay_closed(conn, peer, now);
            return self.pump_dials(now);
        }
        match closed.kind {
            ConnKind::Dialled(address, _) => {
                self.members.connected.retain(|a| *a != address);
                self.peers_changed(None, now);
                self.catch_up_reset(&address, now);
                // A connection that lived long clears the peer's record; one that closed
                // soon after opening (a peer that accepts, then drops or misbehaves)
                // counts as a failure, so redials back off instead of flapping.
                let stable_after = self.config.backoff.stable_after;
                let failures = match self.members.peers.get_mut(&address) {
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
                if self.members.wait(&address, now + retry_in) {
                    self.log(Notice::Disconnected { address, retry_in });
                }
            }
            ConnKind::Accepted(peer) => {
                self.members.inbound -= 1;
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
        if self.broadcast.sync_check.is_some_and(|at| at <= now) {
            self.catch_up_rounds(now);
        }
        while let Some(&(deadline, dial)) = self.members.dial_deadlines.first() {
            if deadline > now {
                break;
            }
            if let Some(address) = self.members.end_dial(dial) {
                self.actions.push_back(Action::AbandonDial { dial });
                self.dial_failed(address, now);
            }
        }
        self.connection_timers(now);
        self.overlay_timers(now);
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
        if !self.broadcast.packing.is_empty() {
            self.pack();
        }
        if self.watch_mark != self.broadcast.pool.len() {
            self.report_pooled();
        }
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > ACTIONS_KEPT {
            // A burst queued thousands at once; the room is not kept for the next one.
            self.actions.shrink_to(ACTIONS_KEPT);
        }
        action
    }

    /// When the node next needs [`Node::handle_timeout`], if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let wakeup = self.members.next_dial_at(&self.config);
        let deadline = self.members.dial_deadlines.first().map(|&(at, _)| at);
        let sync = self.broadcast.sync_check;
        let conn = self.conn_timers.first().map(|&(at, _)| at);
        let overlay = self.overlay.as_ref().and_then(OverlayState::next_timer);
        [wakeup, deadline, sync, conn, overlay]
            .into_iter()
            .flatten()
            .min()
    }

    /// The node's advertised address.
    pub fn address(&self) -> &Address {
        &self.config.address
    }

    /// `connectedAddresses`: open dialled connections, in the order they opened.
    pub fn connected_addresses(&self) -> &[Address] {
        &self.members.connected
    }

    /// The overlay's active view: the peers of ours this node is linked to, in address
    /// order (empty in the full mesh; see `Config::overlay`).
    pub fn active_view(&self) -> impl Iterator<Item = &Address> + '_ {
        self.overlay.iter().flat_map(|state| state.links.keys())
    }

    /// Addresses being dialled now.
    pub fn dialling(&self) -> impl Iterator<Item = &Address> {
        self.members.dials.values()
    }

    /// The pool, in arrival order.
    pub fn pool(&self) -> &[Transaction] {
        &self.broadcast.pool.order
    }

    /// Whether the pool holds a transaction with this hash.
    pub fn has_transaction(&self, hash: &str) -> bool {
        self.broadcast.pool.contains(hash)
    }

    /// A summary of the node's state.
    pub fn status(&self) -> Status {
        Status {
            address: self.config.address.clone(),
            connected: self.members.connected.clone(),
            dialling: self.members.dials.values().cloned().collect(),
            inbound: self.members.inbound,
            pages: self.clients.len(),
            watchers: self.watchers.len(),
            pool: self.broadcast.pool.order.len(),
            sent: self.sent,
            overlay: self.overlay.as_ref().map(|state| OverlayStatus {
                active: state.links.keys().cloned().collect(),
                eager: state.links.values().filter(|l| l.eager).count(),
                passive: state.passive.len(),
                isolated: state.links.is_empty(),
                root: state.root.clone(),
                dist: state.dist,
            }),
        }
    }

    /// The config the node was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Membership's state and what it needs of the node, borrowed apart.
    fn members_io(&mut self) -> (&mut Membership, Io<'_>) {
        let io = Io {
            config: &self.config,
            rng: &mut self.rng,
            actions: &mut self.actions,
        };
        (&mut self.members, io)
    }

    fn want(&mut self, address: Address, now: Time, wanted: Wanted) -> Option<&mut Peer> {
        let (members, mut io) = self.members_io();
        members.want(address, now, wanted, &mut io)
    }

    fn pump_dials(&mut self, now: Time) {
        let (members, mut io) = self.members_io();
        members.pump_dials(now, &mut io);
    }

    fn dial_failed(&mut self, address: Address, now: Time) {
        let (members, mut io) = self.members_io();
        members.dial_failed(address, now, &mut io);
    }

    fn retry_later(&mut self, address: Address, now: Time) {
        let (members, mut io) = self.members_io();
        members.retry_later(address, now, &mut io);
    }

    fn backoff(&mut self, attempt: u32) -> std::time::Duration {
        let (_, mut io) = self.members_io();
        membership::backoff(attempt, &mut io)
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
        self.broadcast.reconciled.remove(&alias);
        self.members.learned_aliases.insert(alias.clone());
        self.members.connected.retain(|a| *a != alias);
        self.members.forget(&alias);
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
            // In the overlay only the sender (a JavaScript node: ours send an overlay
            // HANDSHAKE) is dialled back; what it lists is its own mesh.
            if index > 0 && self.overlay.is_some() {
                break;
            }
            // Fast path: our nodes list canonical addresses, mostly of servers we are
            // already connected to or dialling; those need no parsing and no dial.
            if index > 0 {
                if let Some(peer) = self.members.peers.get(text.as_ref()) {
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
            if let Some(peer) = self.members.peers.get_mut(sender) {
                peer.ours = ours;
                if ours && std::mem::take(&mut peer.foreign) {
                    self.members.foreign_peers -= 1;
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
        self.members.book_full_logged = false;
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
