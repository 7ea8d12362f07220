//! What a node tells the person running it, and what STATUS reports.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::ConnId;
use crate::address::Address;
use crate::frame::FrameError;

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
    /// The node started; it only dials (`Config::dial_only`), and is named so in its log.
    DialOnly(Address),
    /// A dial-only peer of ours (a browser tab) said so on an accepted connection: it is
    /// pushed what peers of ours are.
    DialOnlyPeer(ConnId),
    /// A connection asked to watch the node: it is streamed events.
    Watching(ConnId),
    /// A watcher left too much unread: it was dropped (its connection closed).
    WatcherDropped {
        /// The connection.
        conn: ConnId,
        /// Bytes it left unread.
        queued: usize,
    },
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
        /// It was made at this node ([`Node::add_transaction`](crate::Node::add_transaction)),
        /// not received.
        made_here: bool,
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
    /// A connection had bytes queued and made no progress for too long; it was closed.
    Stalled {
        /// The connection.
        conn: ConnId,
        /// Who it was, if known.
        peer: Option<Address>,
        /// Bytes waiting for it.
        queued: usize,
        /// How long it made no progress.
        for_ms: u64,
    },
    /// A peer of ours fell so far behind that the transactions waiting for it were
    /// dropped; catch-up brings them once it has room.
    Behind {
        /// The connection.
        conn: ConnId,
        /// Who it is, if known.
        peer: Option<Address>,
        /// Transactions that were waiting.
        waiting: usize,
    },
    /// A peer that cannot catch up (not one of ours) fell too far behind; it was
    /// disconnected.
    NotKeepingUp {
        /// The connection.
        conn: ConnId,
        /// Who it was, if known.
        peer: Option<Address>,
        /// Transactions that were waiting.
        waiting: usize,
    },
    /// The overlay linked a peer (it joined the active view).
    Linked {
        /// The peer.
        address: Address,
        /// Links now.
        active: usize,
    },
    /// An overlay link ended.
    Unlinked {
        /// The peer.
        address: Address,
        /// Why.
        why: &'static str,
        /// Links now.
        active: usize,
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
            | Notice::DialOnly(_)
            | Notice::DialOnlyPeer(_)
            | Notice::Watching(_)
            | Notice::Connected(_)
            | Notice::Disconnected { .. }
            | Notice::Handshake { .. }
            | Notice::NewTransaction { .. }
            | Notice::Linked { .. }
            | Notice::Unlinked { .. }
            | Notice::CaughtUp { .. } => Level::Info,
            Notice::DialFailed { attempt, .. } if *attempt <= 1 => Level::Info,
            Notice::Refused { .. }
            | Notice::Misbehaving { .. }
            | Notice::Limit { .. }
            | Notice::Stalled { .. }
            | Notice::Behind { .. }
            | Notice::NotKeepingUp { .. }
            | Notice::WatcherDropped { .. }
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
            Notice::DialOnly(address) => {
                write!(f, "started as {address}, dial-only: serving nothing")
            }
            Notice::DialOnlyPeer(conn) => write!(
                f,
                "connection {conn} is a dial-only peer of ours: pushing to it on it"
            ),
            Notice::Watching(conn) => write!(f, "connection {conn} watches this node"),
            Notice::WatcherDropped { conn, queued } => write!(
                f,
                "dropping watcher {conn}: {queued} bytes of events unread"
            ),
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
            Notice::NewTransaction {
                hash,
                made_here: true,
                pool,
                ..
            } => write!(f, "new transaction {hash} made here; pool holds {pool}"),
            Notice::NewTransaction {
                hash, from, pool, ..
            } => write!(
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
            Notice::Stalled {
                conn,
                peer,
                queued,
                for_ms,
            } => write!(
                f,
                "closing {conn} to {}: {queued} bytes queued and nothing read for {for_ms} ms",
                OrUnknown(peer)
            ),
            Notice::Behind {
                conn,
                peer,
                waiting,
            } => write!(
                f,
                "{} on {conn} fell {waiting} transactions behind; catching it up once it reads again",
                OrUnknown(peer)
            ),
            Notice::NotKeepingUp {
                conn,
                peer,
                waiting,
            } => write!(
                f,
                "closing {conn} to {}: {waiting} transactions waiting and it is not keeping up",
                OrUnknown(peer)
            ),
            Notice::Linked { address, active } => {
                write!(f, "linked to {address} in the overlay ({active} links)")
            }
            Notice::Unlinked {
                address,
                why,
                active,
            } => write!(f, "link to {address} ended: {why} ({active} links)"),
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
    /// Dial-only peers (browser tabs) pushed to, among the accepted connections.
    pub pages: usize,
    /// Connections streamed events (WATCH), among the accepted connections.
    pub watchers: usize,
    /// Transactions in the pool.
    pub pool: usize,
    /// Frames sent since start, by type.
    pub sent: Sent,
    /// The overlay's views (`null` in the full mesh): see [`OverlayStatus`].
    pub overlay: Option<OverlayStatus>,
}

/// A node's place in the overlay (see `Config::overlay`), as STATUS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverlayStatus {
    /// Peers linked now (the active view), in address order.
    pub active: Vec<Address>,
    /// Links that carry transactions by push (the rest get announcements).
    pub eager: usize,
    /// Addresses kept to replace a lost link (the passive view's size).
    pub passive: usize,
    /// The node wants links and has none: it is cut off from the overlay.
    pub isolated: bool,
    /// The root of the overlay's tree as the node knows it (the smallest address it
    /// reaches), and its distance to it in links.
    pub root: Address,
    /// Links between the node and the root.
    pub dist: u16,
}

/// Frames a node has sent, by type (what benchmarks and the simulator count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// HANDSHAKE frames.
    pub handshake: u64,
    /// TRANSACTION frames.
    pub transaction: u64,
    /// TRANSACTIONS frames (pushes packed together, to peers of ours).
    pub transactions: u64,
    /// STATUS replies.
    pub status: u64,
    /// HELLO answers to our HANDSHAKEs.
    pub hello: u64,
    /// SYNC frames (catch-up).
    pub sync: u64,
    /// TXS frames (catch-up bodies).
    pub txs: u64,
    /// EVENT frames (to watchers).
    pub event: u64,
    /// Overlay membership frames (JOIN, FORWARD_JOIN, NEIGHBOR, NEIGHBOR_REPLY,
    /// DISCONNECT, SHUFFLE, SHUFFLE_REPLY).
    pub membership: u64,
    /// IHAVE frames (overlay announcements).
    pub ihave: u64,
    /// GRAFT frames (overlay: asking for announced transactions).
    pub graft: u64,
    /// TREE frames (overlay: a node's place in the tree, told to its links).
    pub tree: u64,
}
