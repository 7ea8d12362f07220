//! The pool, relay of new transactions, and catch-up with peers of ours.

use std::sync::Arc;

use super::{Action, ConnId, Node, Notice, Payload, PeerState};
use crate::address::Address;
use crate::frame;
use crate::sync::{self, HashIndex};
use crate::time::Time;
use crate::transaction::Transaction;

/// The transactions a node holds, in arrival order, and by hash (sorted, for catch-up).
#[derive(Debug, Default, Clone)]
pub(super) struct Pool {
    pub(super) order: Vec<Transaction>,
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

    /// Adds `tx` unless its hash is already held; says whether it was new.
    pub(super) fn insert(&mut self, tx: Transaction) -> bool {
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
    pub(super) fn accept_transaction(
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
        // By index, not by iterator: `push` needs the node, and a list of targets would
        // cost an allocation per transaction on the hottest path. Pushing never changes
        // `connected` (a connection it closes leaves it when the host reports it closed).
        for i in 0..self.connected.len() {
            let address = &self.connected[i];
            if from.as_ref() == Some(address) {
                continue;
            }
            let conn = match self.peers.get(address) {
                Some(peer) if !(from_ours && peer.ours) => match peer.state {
                    PeerState::Open { conn } => conn,
                    _ => continue,
                },
                _ => continue,
            };
            self.push(conn, &tx, &mut frame, now);
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

    pub(super) fn is_ours(&self, address: &Address) -> bool {
        self.peers.get(address).is_some_and(|p| p.ours)
    }

    /// Opens catch-up with `address` once per dialled connection, as soon as the
    /// connection is open and the peer has shown it is one of ours.
    pub(super) fn open_catch_up(&mut self, address: &Address, now: Time) {
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
        if !self.has_room(conn) {
            return self.open_later(conn);
        }
        let frame = frame::sync(&sync::open(&self.pool.hashes));
        self.sent.sync += 1;
        self.send(conn, frame.into(), now);
    }

    /// The pool changed: a catch-up round with every peer of ours follows once things
    /// are quiet for `Sync::lull`, and at most `Sync::max_wait` after the first change.
    pub(super) fn schedule_catch_up(&mut self, now: Time) {
        let lull = self.config.sync.lull;
        let max_wait = self.config.sync.max_wait;
        self.sync_due = Some(match self.sync_due {
            None => (now + lull, now),
            Some((_, first)) => ((now + lull).min(first + max_wait), first),
        });
    }

    /// Opens catch-up with every open peer of ours (one frame, shared).
    pub(super) fn catch_up_round(&mut self, now: Time) {
        let conns: Vec<ConnId> = self
            .connected
            .iter()
            .filter_map(|address| self.peers.get(address))
            .filter_map(|peer| match (peer.ours, peer.state) {
                (true, PeerState::Open { conn }) => Some(conn),
                _ => None,
            })
            .collect();
        if conns.is_empty() {
            return;
        }
        let frame: Payload = frame::sync(&sync::open(&self.pool.hashes)).into();
        for conn in conns {
            if !self.has_room(conn) {
                self.open_later(conn);
                continue;
            }
            self.sent.sync += 1;
            self.send(conn, Arc::clone(&frame), now);
        }
    }
}
