//! Peers that only dial (a browser tab) and watchers: what a node of ours owes them.
//!
//! A **dial-only peer** of ours (a HANDSHAKE with `ext` and `"dialOnly":true` on an
//! accepted connection) cannot be dialled back, so the node treats the connection it
//! opened as a dial to a peer of ours: it is pushed what peers of ours are pushed, what
//! was fresh when it came, and a HANDSHAKE naming each server the node newly reaches, so
//! that it learns the network as the node does. It leads catch-up itself. At most
//! `Limits::max_dial_only_peers` are pushed to at once.
//!
//! A **watcher** (a WATCH frame on an accepted connection) is streamed EVENT frames:
//! the node's state when it starts watching, its `connectedAddresses` whenever they
//! change, and the transactions that entered its pool since the host last drained the
//! actions (one event per drain, at most [`POOLED_HASHES`] hashes named). Watching is
//! bounded: at most `Limits::max_watchers` at once, and a watcher that leaves more than
//! `Limits::max_watch_buffer` bytes unread is dropped. With no watcher, it costs nothing.

use std::sync::Arc;

use serde::Serialize;

use super::{ConnId, ConnKind, Node, Notice, Payload};
use crate::address::Address;
use crate::frame;
use crate::time::Time;

/// Hashes named in one `pooled` event; the rest are counted.
pub(super) const POOLED_HASHES: usize = 32;

/// What an EVENT frame's `data` says.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Event<'a> {
    /// Sent when watching starts.
    State {
        address: &'a Address,
        connected: &'a [Address],
        pool: usize,
    },
    /// `connectedAddresses` changed: the whole new list.
    Peers { connected: &'a [Address] },
    /// Transactions entered the pool.
    Pooled {
        pool: usize,
        hashes: Vec<&'a str>,
        more: usize,
    },
}

impl Node {
    /// A HANDSHAKE marked as from a dial-only peer of ours arrived on accepted `conn`:
    /// from now on it is pushed what peers of ours are, starting with what is fresh, and
    /// told whom this node reaches.
    pub(super) fn client_joined(&mut self, conn: ConnId, now: Time) {
        let limit = self.config.limits.max_dial_only_peers;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.client || c.closing || !matches!(c.kind, ConnKind::Accepted(_)) {
            return;
        }
        if self.clients.len() >= limit {
            return self.log(Notice::Limit {
                what: "dial-only peers pushed to",
                limit,
            });
        }
        c.client = true;
        self.clients.push(conn);
        self.log(Notice::DialOnlyPeer(conn));
        let nonce = self.rng.next_u64();
        let handshake = frame::handshake(&self.config.address, &self.members.connected, nonce);
        self.sent.handshake += 1;
        self.send(conn, handshake.into(), now);
        // Everything fresh, whoever it came from: it may not reach that origin yet, and
        // catch-up sends no body younger than `Sync::settle`.
        let fresh = self.fresh_since(now);
        self.replay(conn, Some(fresh), Some(fresh), now);
    }

    /// A WATCH arrived on `conn`: if it is a connection we accepted, it is streamed
    /// events from now on, while there is room.
    pub(super) fn watch(&mut self, conn: ConnId, now: Time) {
        let limit = self.config.limits.max_watchers;
        match self.conns.get_mut(&conn) {
            Some(c) if !c.watching && !c.closing && matches!(c.kind, ConnKind::Accepted(_)) => {
                if self.watchers.len() >= limit {
                    return self.log(Notice::Limit {
                        what: "watchers",
                        limit,
                    });
                }
                c.watching = true;
            }
            _ => return,
        }
        self.watchers.push(conn);
        self.log(Notice::Watching(conn));
        let state = Event::State {
            address: &self.config.address,
            connected: &self.members.connected,
            pool: self.broadcast.pool.len(),
        };
        let payload = event_frame(&state);
        self.tell_watcher(conn, &payload, now);
    }

    /// `connectedAddresses` changed: watchers are told, and if `opened` is a server
    /// newly reached, dial-only peers are handed its address.
    pub(super) fn peers_changed(&mut self, opened: Option<&Address>, now: Time) {
        if let Some(address) = opened.filter(|_| !self.clients.is_empty()) {
            for i in 0..self.clients.len() {
                let conn = self.clients[i];
                let nonce = self.rng.next_u64();
                let handshake = frame::handshake(&self.config.address, [address], nonce);
                self.sent.handshake += 1;
                self.send(conn, handshake.into(), now);
            }
        }
        if self.watchers.is_empty() {
            return;
        }
        let payload = event_frame(&Event::Peers {
            connected: &self.members.connected,
        });
        self.tell_watchers(&payload, now);
    }

    /// Tells watchers of the transactions that entered the pool since the last call.
    pub(super) fn report_pooled(&mut self) {
        let from = std::mem::replace(&mut self.watch_mark, self.broadcast.pool.len());
        if self.watchers.is_empty() || from >= self.broadcast.pool.len() {
            return;
        }
        // When the last of them arrived: the time of the input that pooled it.
        let now = self
            .broadcast
            .pool
            .arrived
            .last()
            .copied()
            .unwrap_or(Time::ZERO);
        let new = &self.broadcast.pool.order[from..];
        let payload = event_frame(&Event::Pooled {
            pool: self.broadcast.pool.len(),
            hashes: new.iter().take(POOLED_HASHES).map(|t| t.hash()).collect(),
            more: new.len().saturating_sub(POOLED_HASHES),
        });
        self.tell_watchers(&payload, now);
    }

    /// `conn` closed: it is no longer a dial-only peer or a watcher.
    pub(super) fn forget_watcher(&mut self, conn: ConnId) {
        self.clients.retain(|&c| c != conn);
        self.watchers.retain(|&c| c != conn);
    }

    fn tell_watchers(&mut self, payload: &Payload, now: Time) {
        // By index: dropping a watcher only marks its connection closing.
        for i in 0..self.watchers.len() {
            let conn = self.watchers[i];
            self.tell_watcher(conn, payload, now);
        }
    }

    /// Sends an event to one watcher, or drops the watcher if it lags.
    fn tell_watcher(&mut self, conn: ConnId, payload: &Payload, now: Time) {
        let budget = self.config.limits.max_watch_buffer;
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        if c.out.queued > budget {
            let queued = c.out.queued;
            self.log(Notice::WatcherDropped { conn, queued });
            return self.close_conn(conn);
        }
        self.sent.event += 1;
        self.send(conn, Arc::clone(payload), now);
    }
}

fn event_frame(event: &Event<'_>) -> Payload {
    // Serialising addresses, numbers and hex hashes cannot fail.
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    frame::event(&data).into()
}
