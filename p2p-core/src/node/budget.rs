//! What one connection may cost the node, whatever its peer sends and however slowly it
//! reads.
//!
//! The budget of one connection, enforced here and nowhere else:
//!
//! - **Bytes queued**: frames handed to the host and not yet reported written are at
//!   most `Limits::max_send_buffer` plus one frame. Past it the node produces nothing
//!   more for the connection: relay pushes wait in a backlog of shared transactions (at
//!   most `Limits::max_backlog`, a pointer pair each), catch-up answers are not built.
//! - **Progress**: a connection with bytes queued that makes no progress for
//!   `Limits::stall_timeout` is closed (a peer we dialled is redialled with backoff).
//! - **Catch-up**: SYNC is answered only on a connection whose peer said it is one of
//!   ours (a HANDSHAKE with `ext`, or HELLO); at most `Limits::max_sync_requests` wait,
//!   more are refused; each is answered only when the bodies asked for by the one
//!   before have gone out, so one request's work (bounded by the `sync` module) and its
//!   bodies are all that is ever pending. A body asked for twice while pending is sent
//!   once, and bodies go out at most `Limits::catch_up_bodies_per_second` after a burst
//!   of `Limits::catch_up_burst`.
//! - **Bytes read**: the host reads at most `Limits::max_inbound_buffer` (plus one frame)
//!   from a connection ahead of the node, and `Limits::max_inbound_total` from all of
//!   them; past either, it stops reading. A frame begun must end within
//!   `Limits::stall_timeout`.
//! - **Work per frame**: a frame is decoded once, within `Limits::max_frame_bytes`;
//!   a SYNC frame's ranges must be sorted and disjoint, so answering it visits each
//!   pooled hash at most once.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use super::rate::Rate;
use super::{Action, ConnId, ConnKind, Node, Notice, Payload, SeededHasher};
use crate::frame::{self, FrameError};
use crate::sync::{self, Range};
use crate::time::Time;
use crate::transaction::{Transaction, TxHash};

/// Largest TXS or TRANSACTIONS frame the node builds: small enough that the send buffer
/// is filled in fine steps, large enough that a frame carries a few hundred transactions.
const TXS_FRAME_BYTES: usize = 64 << 10;

/// `txs` cut into runs that each fit in one frame of at most `TXS_FRAME_BYTES` (a run
/// of one if a transaction alone is larger).
fn frame_chunks(txs: &[Transaction]) -> impl Iterator<Item = &[Transaction]> {
    let mut rest = txs;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = frame::TRANSACTIONS_HEAD.len() + frame::TXS_TAIL.len();
        let mut count = 0;
        for tx in rest {
            if count > 0 && bytes + tx.body().len() + 1 > TXS_FRAME_BYTES {
                break;
            }
            bytes += tx.body().len() + 1;
            count += 1;
        }
        let (chunk, tail) = rest.split_at(count);
        rest = tail;
        Some(chunk)
    })
}

/// The frame that pushes `txs`: a TRANSACTION frame for one, else a TRANSACTIONS frame.
fn pushes_frame(txs: &[Transaction]) -> Payload {
    if let [tx] = txs {
        return tx.to_frame().into();
    }
    let size = txs.iter().map(|tx| tx.body().len() + 1).sum::<usize>();
    let mut text = String::with_capacity(size + frame::TRANSACTIONS_HEAD.len() + 2);
    text.push_str(frame::TRANSACTIONS_HEAD);
    for (i, tx) in txs.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(tx.body());
    }
    text.push_str(frame::TXS_TAIL);
    text.into()
}

/// What is waiting to go out on one connection.
#[derive(Debug)]
pub(super) struct Outbox {
    /// Bytes handed to the host and not yet reported written.
    pub(super) queued: usize,
    /// When the host last reported progress (or the queue last became non-empty).
    progress_at: Time,
    /// The stall check of this connection in `Node::conn_timers`, while bytes are queued.
    pub(super) stall_check: Option<Time>,
    /// When the catch-up body rate lets bodies go again, in `Node::conn_timers`.
    pub(super) resume_at: Option<Time>,
    /// Relay pushes not yet handed over, oldest first: to a peer of ours, those waiting
    /// to be packed together; to any other, those that did not fit in the send buffer.
    backlog: VecDeque<Transaction>,
    /// The connection is in `Node::packing`.
    packing: bool,
    /// Pushes to a peer of ours packed into frames (shared with every peer that gets the
    /// same), that did not fit in the send buffer yet, oldest first, with how many
    /// transactions each carries.
    packed: VecDeque<(Payload, usize)>,
    /// Transactions in `packed`.
    packed_count: usize,
    /// The peer (one of ours) missed pushes dropped from a full backlog: a catch-up
    /// round with it follows as soon as its queue has room.
    behind: bool,
    /// SYNC frames received and not yet answered, oldest first.
    requests: VecDeque<Vec<Range>>,
    /// Catch-up bodies to send, oldest first; `pending` holds the same hashes, so a hash
    /// asked for again while it waits is not queued twice.
    bodies: VecDeque<TxHash>,
    pending: HashSet<TxHash, SeededHasher>,
    /// Theoretical arrival time of the catch-up body rate limit (GCRA).
    bodies_tat: Time,
}

impl Outbox {
    pub(super) fn new(seed: u64) -> Outbox {
        Outbox {
            queued: 0,
            progress_at: Time::ZERO,
            stall_check: None,
            resume_at: None,
            backlog: VecDeque::new(),
            packing: false,
            packed: VecDeque::new(),
            packed_count: 0,
            behind: false,
            requests: VecDeque::new(),
            bodies: VecDeque::new(),
            pending: HashSet::with_hasher(SeededHasher(seed)),
            bodies_tat: Time::ZERO,
        }
    }
}

impl Node {
    /// Hands one frame to the host for `conn`, counting it against the connection's send
    /// buffer (control frames and pushes that fit alike).
    pub(super) fn send(&mut self, conn: ConnId, frame: Payload, now: Time) {
        let stall = self.config.limits.stall_timeout;
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.out.stall_check.is_none() {
                c.out.progress_at = now;
                c.out.stall_check = Some(now + stall);
                self.conn_timers.insert((now + stall, conn));
            }
            c.out.queued = c.out.queued.saturating_add(frame.len());
        }
        self.actions.push_back(Action::Send { conn, frame });
    }

    /// Whether `conn` may be handed another frame now: its queue is under its budget.
    /// Every frame but the HANDSHAKE on a new dial (sent into an empty queue) waits for
    /// this, so the bytes queued for a connection never pass the budget by more than
    /// one frame.
    pub(super) fn has_room(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| !c.closing && c.out.queued < self.config.limits.max_send_buffer)
    }

    /// Catch-up with `conn` must open, but its queue is full: it opens once there is room.
    pub(super) fn open_later(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.out.behind = true;
        }
    }

    /// Pushes a new transaction to `conn`. To a peer of ours it joins the connection's
    /// backlog, and what gathers there until the host next takes actions goes out
    /// together (see `pack`): in a burst, a frame carries hundreds of transactions, not
    /// one. To any other peer it goes at once as a TRANSACTION frame if the send buffer
    /// has room (`frame`, built once for all peers), else it waits in the backlog.
    pub(super) fn push(
        &mut self,
        conn: ConnId,
        tx: &Transaction,
        frame: &mut Option<Payload>,
        now: Time,
    ) {
        let limits = &self.config.limits;
        let (budget, max_backlog) = (limits.max_send_buffer, limits.max_backlog);
        let ours = self.identified(conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        if !ours {
            let payload = frame.get_or_insert_with(|| tx.to_frame().into());
            if c.out.backlog.is_empty() && c.out.queued + payload.len() <= budget {
                let payload = Arc::clone(payload);
                self.sent.transaction += 1;
                self.send(conn, payload, now);
                return;
            }
        }
        if c.out.behind {
            // Catch-up will bring it, with everything else it missed.
            return;
        }
        c.out.backlog.push_back(tx.clone());
        if ours && !c.out.packing {
            c.out.packing = true;
            if self.broadcast.packing.is_empty() {
                self.broadcast.packing_at = now;
            }
            self.broadcast.packing.push(conn);
        }
        let waiting = c.out.backlog.len() + c.out.packed_count;
        if waiting <= max_backlog {
            return;
        }
        let peer = self.peer_of(conn);
        if self.identified(conn) {
            // One of ours catches up: drop the backlog, reconcile once it has room.
            let c = self.conns.get_mut(&conn).expect("looked up above");
            c.out.backlog = VecDeque::new();
            c.out.packed = VecDeque::new();
            c.out.packed_count = 0;
            c.out.behind = true;
            self.log(Notice::Behind {
                conn,
                peer,
                waiting,
            });
        } else {
            self.log(Notice::NotKeepingUp {
                conn,
                peer,
                waiting,
            });
            self.close_conn(conn);
        }
    }

    /// The host wrote `bytes` of the frames it was handed for `conn` to the network: room
    /// for more.
    pub(super) fn written(&mut self, conn: ConnId, bytes: usize, now: Time) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.out.queued = c.out.queued.saturating_sub(bytes);
        c.out.progress_at = now;
        self.fill(conn, now);
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.out.queued == 0 {
                if let Some(at) = c.out.stall_check.take() {
                    self.conn_timers.remove(&(at, conn));
                }
            }
        }
    }

    /// A SYNC frame arrived on `conn`: it waits its turn (answered as the connection
    /// drains), or is refused.
    pub(super) fn on_sync(&mut self, conn: ConnId, ranges: Vec<Range>, now: Time) {
        let limit = self.config.limits.max_sync_requests;
        if !self.identified(conn) {
            self.refuse(conn, FrameError::NotIdentified("SYNC"));
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.out.requests.len() >= limit {
            self.refuse(conn, FrameError::TooManyRequests(limit));
            return;
        }
        let opening = sync::is_opening(&ranges);
        c.out.requests.push_back(ranges);
        if opening {
            if let Some(address) = self.peer_of(conn) {
                self.conversation_started(&address);
            }
        }
        self.fill(conn, now);
    }

    /// Produces what waits for `conn` while its send buffer has room: backlogged pushes
    /// first, then catch-up bodies, then a catch-up round it fell behind for, then the
    /// answer to its oldest SYNC.
    pub(super) fn fill(&mut self, conn: ConnId, now: Time) {
        let budget = self.config.limits.max_send_buffer;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.closing || c.out.queued >= budget {
                return;
            }
            if let Some((payload, count)) = c.out.packed.pop_front() {
                c.out.packed_count -= count;
                if count == 1 {
                    self.sent.transaction += 1;
                } else {
                    self.sent.transactions += 1;
                }
                self.send(conn, payload, now);
                continue;
            }
            if !c.out.backlog.is_empty() && !c.out.packing {
                // A peer not of ours (pushes to ours are packed first): one at a time.
                if let Some(tx) = c.out.backlog.pop_front() {
                    self.sent.transaction += 1;
                    self.send(conn, tx.to_frame().into(), now);
                }
                continue;
            }
            if !c.out.bodies.is_empty() {
                if !self.send_bodies(conn, now) {
                    return;
                }
                continue;
            }
            if c.out.behind && c.out.queued == 0 {
                c.out.behind = false;
                let frame: Payload = frame::sync(&sync::open(&self.broadcast.pool.hashes)).into();
                if let Some(address) = self.peer_of(conn) {
                    self.conversation_started(&address);
                }
                self.sent.sync += 1;
                self.send(conn, frame, now);
                continue;
            }
            let Some(ranges) = c.out.requests.pop_front() else {
                return;
            };
            let reply = sync::answer(&self.broadcast.pool.hashes, &ranges);
            let peer = self.peer_of(conn);
            let send = self.settled_bodies(peer.as_ref(), reply.send, now);
            let c = self.conns.get_mut(&conn).expect("looked up above");
            for hash in send {
                if c.out.pending.insert(hash.clone()) {
                    c.out.bodies.push_back(hash);
                }
            }
            if !reply.ranges.is_empty() {
                self.sent.sync += 1;
                self.send(conn, frame::sync(&reply.ranges).into(), now);
            }
        }
    }

    /// Packs the pushes gathered for each peer of ours since the host last took actions
    /// (see `push`) into frames, and hands them over as far as the send buffers allow.
    /// Every peer that gets the same transactions (all of them, in a burst from one
    /// sender) gets the same frames: one copy in memory, however many peers.
    pub(super) fn pack(&mut self) {
        let now = self.broadcast.packing_at;
        // Frames built in this packing, for the next peers: (transactions, frame).
        let mut built: Vec<(Vec<Transaction>, Payload)> = Vec::new();
        for conn in std::mem::take(&mut self.broadcast.packing) {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            c.out.packing = false;
            let gathered: Vec<Transaction> = c.out.backlog.drain(..).collect();
            for chunk in frame_chunks(&gathered) {
                let known = built.iter().find(|(txs, _)| {
                    txs.len() == chunk.len() && txs.iter().zip(chunk).all(|(a, b)| a.is_same(b))
                });
                let payload = match known {
                    Some((_, payload)) => Arc::clone(payload),
                    None => {
                        let payload = pushes_frame(chunk);
                        built.push((chunk.to_vec(), Arc::clone(&payload)));
                        payload
                    }
                };
                c.out.packed.push_back((payload, chunk.len()));
                c.out.packed_count += chunk.len();
            }
            self.fill(conn, now);
        }
    }

    /// Sends one TXS frame of waiting bodies, as far as the body rate allows; false if
    /// the rate limit holds them back (a wake-up is scheduled).
    fn send_bodies(&mut self, conn: ConnId, now: Time) -> bool {
        let limits = &self.config.limits;
        let rate = Rate::new(limits.catch_up_bodies_per_second, limits.catch_up_burst);
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let allowed_at = rate.allowed_at(c.out.bodies_tat);
        if allowed_at > now {
            if c.out.resume_at.is_none() {
                c.out.resume_at = Some(allowed_at);
                self.conn_timers.insert((allowed_at, conn));
            }
            return false;
        }
        let mut frame = String::from(frame::TXS_HEAD);
        let mut count = 0u32;
        while let Some(hash) = c.out.bodies.front() {
            let Some(tx) = self.broadcast.pool.get(hash) else {
                let hash = c.out.bodies.pop_front().expect("front exists");
                c.out.pending.remove(&hash);
                continue;
            };
            if count > 0 && frame.len() + tx.body().len() + 3 > TXS_FRAME_BYTES {
                break;
            }
            if count > 0 {
                frame.push(',');
            }
            frame.push_str(tx.body());
            count += 1;
            let hash = c.out.bodies.pop_front().expect("front exists");
            c.out.pending.remove(&hash);
        }
        if c.out.bodies.is_empty() {
            // Give the memory back: a large catch-up is over.
            c.out.pending = HashSet::with_hasher(SeededHasher(self.config.seed));
            c.out.bodies = VecDeque::new();
        }
        c.out.bodies_tat = rate.spend(c.out.bodies_tat, now, count);
        if count > 0 {
            frame.push_str(frame::TXS_TAIL);
            self.sent.txs += 1;
            self.send(conn, frame.into(), now);
        }
        true
    }

    /// Timers of connections: stall checks, catch-up held back by its rate, and dials
    /// whose peer has not said what it is.
    pub(super) fn connection_timers(&mut self, now: Time) {
        let stall = self.config.limits.stall_timeout;
        while let Some(&(at, conn)) = self.conn_timers.first() {
            if at > now {
                break;
            }
            self.conn_timers.pop_first();
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.identify_by == Some(at) {
                if let ConnKind::Dialled(address, _) = &c.kind {
                    let address = address.clone();
                    self.found_foreign(&address, now);
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    // Not in the book any more (forgotten): stop waiting all the same.
                    c.identify_by = None;
                }
            }
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.out.resume_at == Some(at) {
                c.out.resume_at = None;
                self.fill(conn, now);
                continue;
            }
            if c.out.stall_check != Some(at) {
                continue;
            }
            c.out.stall_check = None;
            if c.out.queued == 0 || c.closing {
                continue;
            }
            let due = c.out.progress_at + stall;
            if due > now {
                c.out.stall_check = Some(due);
                self.conn_timers.insert((due, conn));
                continue;
            }
            let (queued, since) = (c.out.queued, c.out.progress_at);
            let peer = self.peer_of(conn);
            self.log(Notice::Stalled {
                conn,
                peer,
                queued,
                for_ms: now.since(since).as_millis() as u64,
            });
            self.close_conn(conn);
        }
    }

    /// Whether `conn`'s peer said it is one of ours.
    pub(super) fn identified(&self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        c.ours || matches!(&c.kind, ConnKind::Dialled(address, _) if self.is_ours(address))
    }

    /// Asks the host to close `conn`; frames from it are ignored from now on.
    pub(super) fn close_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.closing {
                c.closing = true;
                self.actions.push_back(Action::Close { conn });
            }
        }
    }
}
