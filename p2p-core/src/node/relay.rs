//! The pool, relay of new transactions, and catch-up with peers of ours.
//!
//! Relay pushes each transaction once to each peer that needs it (see
//! `accept_transaction`); for the `Sync::settle` after a transaction enters, relay also
//! makes up for a dial that was not open yet (`replay`). Catch-up (SYNC conversations,
//! see [`crate::sync`]) repairs what relay still missed: a push older than that when
//! its connection opened, lost with a connection, or dropped from a full backlog, or a
//! node that was down. Its rules:
//!
//! - **One side leads.** Of each pair of ours, the smaller address opens a conversation
//!   on each new dialled connection, and the periodic rounds (`Sync::lull` after its pool
//!   last changed, at most `Sync::max_wait` after the first change not yet covered). An
//!   equal pool costs that one opening frame, which the follower does not answer.
//! - **A conversation covers the pool.** Opening one, or being sent one, covers every
//!   transaction pooled then: the conversation settles it with that peer, both ways.
//!   What arrives later is not covered until the next one. A closed connection (pushes
//!   and a conversation on it may be lost) uncovers everything.
//! - **The follower never waits forever.** A follower opens a round itself when a
//!   transaction it holds has not been covered for `Sync::follower_wait` (from its
//!   arrival or the pair's last connection): a working leader, whose pool changes with
//!   the same traffic, always comes first.
//! - **No body races a push.** A transaction that entered the pool less than
//!   `Sync::settle` ago is not sent (it is most likely on its way by push) and is
//!   uncovered again, so a later round brings it if the peer still lacks it.
//!
//! So any transaction a node holds is, for each open peer of ours, either covered by a
//! conversation that started after it arrived and ran to its end, or uncovered with a
//! round due at a bounded time: any two pools of connected nodes of ours converge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Action, ConnId, Node, Notice, Payload, PeerState, SeededHasher};
use crate::address::Address;
use crate::frame;
use crate::sync::{self, HashIndex};
use crate::time::Time;
use crate::transaction::{Transaction, TxHash};

/// The transactions a node holds, in arrival order, with when each arrived, and by
/// hash (sorted, for catch-up).
#[derive(Debug, Default, Clone)]
pub(super) struct Pool {
    pub(super) order: Vec<Transaction>,
    /// When each transaction of `order` entered the pool.
    pub(super) arrived: Vec<Time>,
    /// Whether each transaction of `order` came from one of ours (pushed or caught up):
    /// its origin pushed it to our peers of ours, so we pass it only to other peers.
    pub(super) from_ours: Vec<bool>,
    /// How many of the first of `order` come from the stored pool: held before the node
    /// started, so none of them is on its way anywhere.
    pub(super) stored: usize,
    /// Hash to position in `order`.
    pub(super) hashes: HashIndex,
}

impl Pool {
    pub(super) fn contains(&self, hash: &str) -> bool {
        self.hashes.contains(hash)
    }

    pub(super) fn get(&self, hash: &str) -> Option<&Transaction> {
        self.hashes.index(hash).and_then(|i| self.order.get(i))
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// A pool holding `stored` (duplicates skipped), as if they arrived at time zero.
    pub(super) fn from_stored(stored: Vec<Transaction>) -> Pool {
        let mut pool = Pool::default();
        for tx in stored {
            pool.insert(tx, Time::ZERO, false);
        }
        pool.stored = pool.len();
        pool
    }

    /// Whether the transaction at `index` entered the pool, after the node started, less
    /// than `settle` before `now`.
    fn is_fresh(&self, index: usize, now: Time, settle: Duration) -> bool {
        index >= self.stored && self.arrived.get(index).is_some_and(|&at| now < at + settle)
    }

    /// Adds `tx`, arrived at `now`, unless its hash is already held; says whether it
    /// was new.
    pub(super) fn insert(&mut self, tx: Transaction, now: Time, from_ours: bool) -> bool {
        if !self.hashes.insert(tx.shared_hash(), self.order.len()) {
            return false;
        }
        self.order.push(tx);
        self.arrived.push(now);
        self.from_ours.push(from_ours);
        true
    }

    /// Positions of the transactions that entered the pool, after the node started, at
    /// or after `start`, oldest first.
    fn since(&self, start: Time) -> std::ops::Range<usize> {
        let first = self.arrived[self.stored..].partition_point(|&at| at < start);
        self.stored + first..self.len()
    }
}

/// Broadcast's state: the pool, and when relay and catch-up next have work. Its rules
/// are the methods of this module; they live on `Node` because every push and every
/// catch-up frame goes through the connection table and its budgets.
#[derive(Debug)]
pub(super) struct Broadcast {
    pub(super) pool: Pool,
    /// What catch-up knows of each peer of ours it has worked with, by address (kept
    /// for peers in the address book only).
    pub(super) reconciled: HashMap<Address, Reconciled, SeededHasher>,
    /// When to look for catch-up rounds that are due (at or before the first one).
    pub(super) sync_check: Option<Time>,
    /// Connections with pushes gathered for packing (see `pack`), and when the first
    /// of them was pushed.
    pub(super) packing: Vec<ConnId>,
    pub(super) packing_at: Time,
}

/// What catch-up knows of one peer of ours.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Reconciled {
    /// The dialled connection on which the first conversation with it was opened.
    pub(super) synced_on: Option<ConnId>,
    /// The first `covered` transactions of our pool are settled with the peer: a
    /// conversation that started after they entered has run (or runs) with it, and
    /// nothing of them was held back since.
    pub(super) covered: usize,
    /// When a connection with it last opened or closed: a follower waits from then.
    pub(super) since: Time,
    /// When we last opened a conversation with it.
    pub(super) last_round: Time,
}

/// Where a transaction came from, which decides where it goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// Pushed by a peer, or made here: pass it on.
    Push,
    /// Found missing by catch-up with one of ours: only JavaScript peers need it pushed.
    CatchUp,
}

impl Node {
    /// Pools `tx` if it is new and passes it on; says whether it was new.
    ///
    /// Relay: a node of ours pushes what it originates (or hears from a JavaScript node,
    /// or from a peer unknown) to every peer it dialled. What it hears from one of ours
    /// it passes only to peers not of ours, which flood and never catch up; peers of ours
    /// already had it pushed by its origin, and catch-up rounds fill whatever a lost or
    /// missing connection kept from them. In a stable mesh of our nodes each transaction
    /// crosses one link per receiving node.
    ///
    /// A dial that opens is pushed what it missed while it was not open, if that is
    /// fresh (younger than `Sync::settle`; catch-up brings what is older); a peer that
    /// turns out not to be ours is passed what came from ours, likewise. See `replay`.
    ///
    /// Dial-only peers of ours are pushed what peers of ours are (but for the one it came
    /// on, `source`). A dial-only node passes on only what was made at it: it is a leaf,
    /// and its peers hear everything else from each other.
    pub(super) fn accept_transaction(
        &mut self,
        tx: Transaction,
        from: Option<Address>,
        source: Option<ConnId>,
        via: Via,
        now: Time,
    ) -> bool {
        // To a dial-only node, whatever a peer sends counts as from ours: it passes on
        // only what was made at it.
        let dial_only = self.config.dial_only;
        let from_ours =
            via == Via::CatchUp || from.as_ref().is_some_and(|a| dial_only || self.is_ours(a));
        // One look-up in the index: the insert says whether the hash was held.
        if !self.broadcast.pool.insert(tx.clone(), now, from_ours) {
            self.log(Notice::Duplicate {
                hash: tx.short_hash().to_owned(),
            });
            return false;
        }
        let mut frame: Option<Payload> = None;
        debug_assert_eq!(
            self.members.foreign_peers,
            self.members.peers.values().filter(|p| p.foreign).count()
        );
        // What comes from ours goes only to peers found not to be ours: with none, no
        // peer need be looked at (at N = 50 the look-ups cost a sixth of a node's time).
        let targets = if from_ours && (self.members.foreign_peers == 0 || dial_only) {
            0
        } else {
            self.members.connected.len()
        };
        // By index, not by iterator: `push` needs the node, and a list of targets would
        // cost an allocation per transaction on the hottest path. Pushing never changes
        // `connected` (a connection it closes leaves it when the host reports it closed).
        for i in 0..targets {
            let address = &self.members.connected[i];
            if from.as_ref() == Some(address) {
                continue;
            }
            // A peer not known yet to be one of ours or not is passed what comes from
            // ours only once it says (or `Sync::settle` passes): see `replay`.
            let conn = match self.members.peers.get(address) {
                Some(peer) if !from_ours || peer.foreign => match peer.state {
                    PeerState::Open { conn } => conn,
                    _ => continue,
                },
                _ => continue,
            };
            self.push(conn, &tx, &mut frame, now);
        }
        if !from_ours {
            for i in 0..self.clients.len() {
                let conn = self.clients[i];
                if Some(conn) != source {
                    self.push(conn, &tx, &mut frame, now);
                }
            }
        }
        if self.overlay.is_some() {
            self.overlay_relay(&tx, source, via, now);
        }
        // What this makes due (see `round_due`) is due no sooner than this.
        let sync = &self.config.sync;
        self.check_catch_up_at(now + sync.lull.max(sync.settle));
        self.log(Notice::NewTransaction {
            hash: tx.short_hash().to_owned(),
            made_here: from.is_none() && source.is_none(),
            from,
            pool: self.broadcast.pool.len(),
        });
        self.actions.push_back(Action::Persist { transaction: tx });
        true
    }

    pub(super) fn is_ours(&self, address: &Address) -> bool {
        self.members.is_ours(address)
    }

    /// Pushes on `conn`, our dial to a peer, what it was not pushed: those we were to
    /// push to every peer that entered the pool since `pushed` (the dial just opened;
    /// fresh ones only: catch-up sends no body younger than `Sync::settle`, and brings
    /// the older ones if the peer lacks them), and those from ours that entered since
    /// `relayed` (the peer is not one of ours, or did not say in time; it never catches
    /// up, so everything it was not passed while we waited).
    pub(super) fn replay(
        &mut self,
        conn: ConnId,
        pushed: Option<Time>,
        relayed: Option<Time>,
        now: Time,
    ) {
        // A dial-only node passes on only what was made at it.
        let relayed = relayed.filter(|_| !self.config.dial_only);
        let starts = [pushed, relayed].into_iter().flatten().min();
        let Some(start) = starts else {
            return;
        };
        for index in self.broadcast.pool.since(start) {
            let at = self.broadcast.pool.arrived[index];
            let wanted = if self.broadcast.pool.from_ours[index] {
                relayed.is_some_and(|from| at >= from)
            } else {
                pushed.is_some_and(|from| at >= from)
            };
            if wanted {
                let tx = self.broadcast.pool.order[index].clone();
                self.push(conn, &tx, &mut None, now);
            }
        }
    }

    /// The earliest arrival of a transaction that is fresh at `now` (younger than
    /// `Sync::settle`, as `Pool::is_fresh` says).
    pub(super) fn fresh_since(&self, now: Time) -> Time {
        let settle = u64::try_from(self.config.sync.settle.as_micros()).unwrap_or(u64::MAX);
        Time::from_micros(now.as_micros().saturating_sub(settle) + 1)
    }

    /// `address` said it is not one of ours (a HANDSHAKE without `ext`), or did not say
    /// in time: what comes from ours is passed to it from now on, and, if our dial to it
    /// was waiting for it to say, what it was not passed since the dial opened (or in the
    /// last `Sync::settle`) goes now; once per dial: a peer that keeps changing its story
    /// gets no more.
    pub(super) fn found_foreign(&mut self, address: &Address, now: Time) {
        let Some(peer) = self.members.peers.get_mut(address) else {
            return;
        };
        if peer.foreign || peer.ours {
            return;
        }
        peer.foreign = true;
        self.members.foreign_peers += 1;
        let peer = self.members.peers.get(address).expect("looked up above");
        if let PeerState::Open { conn } = peer.state {
            let opened = peer.opened_at.min(self.fresh_since(now));
            if self.stop_identify_wait(conn) {
                self.replay(conn, None, Some(opened), now);
            }
        }
    }

    /// The peer of our dial `conn` said what it is, or the wait is over: true if it was
    /// still waited for.
    pub(super) fn stop_identify_wait(&mut self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let Some(at) = c.identify_by.take() else {
            return false;
        };
        if c.out.stall_check != Some(at) && c.out.resume_at != Some(at) {
            self.conn_timers.remove(&(at, conn));
        }
        true
    }

    /// Catch-up's record of `address`, made if need be; `None` if it is not in the
    /// address book (a record lives no longer than the peer's entry).
    pub(super) fn reconciled_mut(&mut self, address: &Address) -> Option<&mut Reconciled> {
        if !self.members.peers.contains_key(address) && self.link(address).is_none() {
            return None;
        }
        let records = &mut self.broadcast.reconciled;
        if !records.contains_key(address) {
            records.insert(address.clone(), Reconciled::default());
        }
        records.get_mut(address)
    }

    /// Catch-up's record of `address` (a blank one if it has none).
    fn reconciled(&self, address: &Address) -> Reconciled {
        self.broadcast
            .reconciled
            .get(address)
            .copied()
            .unwrap_or_default()
    }

    /// Whether we lead catch-up with `address`: of each pair of ours, the smaller
    /// address does; a dial-only node, which no one dials, always does.
    fn leads(&self, address: &Address) -> bool {
        self.config.dial_only || self.config.address < *address
    }

    /// Opens catch-up with `address` once per dialled connection, as soon as the
    /// connection is open and the peer has shown it is one of ours, if we lead the pair
    /// (one conversation reconciles both ways). A follower's rounds come from
    /// `catch_up_rounds`.
    pub(super) fn open_catch_up(&mut self, address: &Address, now: Time) {
        let leads = self.leads(address);
        let Some(peer) = self.members.peers.get(address) else {
            return;
        };
        let PeerState::Open { conn } = peer.state else {
            return;
        };
        if !peer.ours {
            return;
        }
        let Some(sync) = self.reconciled_mut(address) else {
            return;
        };
        let first = leads && sync.synced_on != Some(conn);
        if first {
            sync.synced_on = Some(conn);
        }
        if !first {
            // The pair is ready: a follower's rounds are due from now on.
            return self.arm_round(address);
        }
        let frame = frame::sync(&sync::open(&self.broadcast.pool.hashes)).into();
        self.open_round(address, conn, &frame, now);
    }

    /// Opens a conversation with `address` on `conn` with the opening `frame` (one
    /// fingerprint of the whole pool): it settles everything the pool holds now.
    ///
    /// A dial-only node also opens one every `Sync::max_wait` with each peer of ours, as
    /// nothing tells it what it missed: a peer passes it only what peers of ours are
    /// passed, and it may not be connected to the origin of a transaction. An equal pool
    /// costs the one opening frame.
    fn open_round(&mut self, address: &Address, conn: ConnId, frame: &Payload, now: Time) {
        self.conversation_started(address);
        if let Some(sync) = self.reconciled_mut(address) {
            sync.last_round = now;
        }
        if self.config.dial_only {
            self.arm_round(address);
        }
        if !self.has_room(conn) {
            return self.open_later(conn);
        }
        self.sent.sync += 1;
        self.send(conn, Arc::clone(frame), now);
    }

    /// A conversation with `address` starts now (we open it, or it opened it): it
    /// settles everything the pool holds now.
    pub(super) fn conversation_started(&mut self, address: &Address) {
        let len = self.broadcast.pool.len();
        if let Some(sync) = self.reconciled_mut(address) {
            sync.covered = len;
        }
    }

    /// A connection with `address` closed: frames pushed on it may be lost and a
    /// conversation on it cut, so nothing is settled with it any more.
    pub(super) fn catch_up_reset(&mut self, address: &Address, now: Time) {
        if let Some(sync) = self.reconciled_mut(address) {
            sync.covered = 0;
            sync.since = now;
            self.arm_round(address);
        }
    }

    /// Catch-up would send `address` the bodies of `hashes`: those that entered the pool
    /// less than `Sync::settle` ago are held back (most likely on their way to it by push
    /// already) and left for a later round. Returns the rest.
    pub(super) fn settled_bodies(
        &mut self,
        address: Option<&Address>,
        mut hashes: Vec<TxHash>,
        now: Time,
    ) -> Vec<TxHash> {
        let settle = self.config.sync.settle;
        let mut held_from: Option<usize> = None;
        hashes.retain(|hash| {
            let Some(index) = self.broadcast.pool.hashes.index(hash) else {
                return false;
            };
            let fresh = self.broadcast.pool.is_fresh(index, now, settle);
            if fresh {
                held_from = Some(held_from.map_or(index, |h| h.min(index)));
            }
            !fresh
        });
        if let (Some(index), Some(address)) = (held_from, address) {
            if let Some(sync) = self.reconciled_mut(address) {
                sync.covered = sync.covered.min(index);
                self.arm_round(address);
            }
        }
        hashes
    }

    /// Starts catch-up on a new overlay link `conn` to `address`, as on a new dialled
    /// connection to a peer of ours in the mesh: the smaller address opens it.
    pub(super) fn open_link_catch_up(&mut self, address: &Address, conn: ConnId, now: Time) {
        if !self.leads(address) {
            return self.arm_round(address);
        }
        if let Some(sync) = self.reconciled_mut(address) {
            sync.synced_on = Some(conn);
        }
        let frame = frame::sync(&sync::open(&self.broadcast.pool.hashes)).into();
        self.open_round(address, conn, &frame, now);
    }

    /// Makes sure `catch_up_rounds` runs when a round with `address` is due.
    fn arm_round(&mut self, address: &Address) {
        if let Some((_, due)) = self.round_with(address) {
            self.check_catch_up_at(due);
        }
    }

    /// The connection on which a round with `address` would open, and when it is due:
    /// only with an open peer of ours that is not caught up on everything.
    fn round_with(&self, address: &Address) -> Option<(ConnId, Time)> {
        let conn = match self.link(address) {
            Some(conn) => conn,
            None => {
                let peer = self.members.peers.get(address)?;
                match peer.state {
                    PeerState::Open { conn } if peer.ours => conn,
                    _ => return None,
                }
            }
        };
        let sync = self.reconciled(address);
        let due = match self.round_due(self.leads(address), sync) {
            Some(due) => due,
            None if self.config.dial_only => sync.last_round + self.config.sync.max_wait,
            None => return None,
        };
        Some((conn, due))
    }

    /// Makes sure `catch_up_rounds` runs at `at` or sooner.
    pub(super) fn check_catch_up_at(&mut self, at: Time) {
        self.broadcast.sync_check = Some(self.broadcast.sync_check.map_or(at, |due| due.min(at)));
    }

    /// When a round with a peer of ours whose first `covered` transactions are settled
    /// is due, if one is. A leader's: a lull after the pool last changed, but at most
    /// `max_wait` after the first transaction not settled with it entered, and not before
    /// that one has settled (a round would hold it back). A follower's: `follower_wait`
    /// after that transaction entered or the pair last connected, whichever is later, so
    /// that its leader comes first.
    fn round_due(&self, leads: bool, sync: Reconciled) -> Option<Time> {
        let first = *self.broadcast.pool.arrived.get(sync.covered)?;
        let config = &self.config.sync;
        if leads {
            let last = *self.broadcast.pool.arrived.last()?;
            let quiet = (last + config.lull).min(first + config.max_wait);
            Some(quiet.max(first + config.settle))
        } else {
            Some(first.max(sync.since) + config.follower_wait)
        }
    }

    /// Opens the rounds that are due (one opening frame, shared) with the open peers of
    /// ours, and sets when to look again.
    pub(super) fn catch_up_rounds(&mut self, now: Time) {
        let mut due_now = Vec::new();
        let mut next: Option<Time> = None;
        let links = self.overlay.iter().flat_map(|state| state.links.keys());
        for address in self.members.connected.iter().chain(links) {
            match self.round_with(address) {
                Some((conn, due)) if due <= now => due_now.push((address.clone(), conn)),
                Some((_, due)) => next = Some(next.map_or(due, |n| n.min(due))),
                None => {}
            }
        }
        self.broadcast.sync_check = next;
        if due_now.is_empty() {
            return;
        }
        let frame: Payload = frame::sync(&sync::open(&self.broadcast.pool.hashes)).into();
        for (address, conn) in due_now {
            self.open_round(&address, conn, &frame, now);
        }
    }
}
