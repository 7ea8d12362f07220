//! What a node is told at start: who it is, whom it knows, and its limits.

use std::time::Duration;

use crate::address::Address;

/// Everything a [`Node`](crate::Node) needs to know about itself.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address the node advertises: first in every HANDSHAKE it sends.
    pub address: Address,
    /// Other spellings that reach this node (e.g. `ws://localhost:PORT` when the
    /// advertised address is a LAN address). The node never dials any of them.
    pub aliases: Vec<Address>,
    /// The addresses from `known-peers.json`, dialled at start and never forgotten.
    pub known_peers: Vec<Address>,
    /// Seed of every random choice the node makes (backoff jitter).
    pub seed: u64,
    /// Caps that keep a hostile or broken peer from hurting the node.
    pub limits: Limits,
    /// How failed dials are retried.
    pub backoff: Backoff,
    /// When catch-up rounds run.
    pub sync: Sync,
    /// The node only dials (a browser tab, which cannot accept connections): it never
    /// listens, lists no address of its own in its HANDSHAKE (so no one dials
    /// `address`, which then only names it in its log), leads catch-up with every peer
    /// and passes on only the transactions made at it. Nodes of ours push to it, on the
    /// connection it opened, what they push to their peers of ours.
    pub dial_only: bool,
    /// Ask every node of ours it dials to stream what it does (WATCH), and hand each
    /// EVENT to the host as [`Action::Watched`](crate::Action::Watched).
    pub watch: bool,
    /// Join a bounded-degree overlay instead of the full mesh: peers of ours are linked
    /// only within a small active view (HyParView) and transactions spread along a tree
    /// of those links (rooted at the smallest address) with announcements on the others
    /// (IHAVE, as Plumtree's lazy push). `None`: the
    /// curriculum's full mesh. JavaScript peers are served as in the mesh either way.
    pub overlay: Option<Overlay>,
}

impl Config {
    /// A node reachable at `address`, with default limits and backoff.
    pub fn new(address: Address) -> Config {
        Config {
            address,
            aliases: Vec::new(),
            known_peers: Vec::new(),
            seed: 0,
            limits: Limits::default(),
            backoff: Backoff::default(),
            sync: Sync::default(),
            dial_only: false,
            watch: false,
            overlay: None,
        }
    }
}

/// Caps on what one peer can make the node do or hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest frame the node reads, in bytes.
    pub max_frame_bytes: usize,
    /// Addresses taken from one HANDSHAKE; the rest are ignored.
    pub max_handshake_addresses: usize,
    /// Addresses the node remembers in all.
    pub max_address_book: usize,
    /// Dials in flight at once; more wait their turn.
    pub max_concurrent_dials: usize,
    /// Dials started per second, sustained (after a burst of `dial_burst`): one
    /// HANDSHAKE naming thousands of servers must not turn the node into a dialling
    /// cannon.
    pub max_dials_per_second: u32,
    /// Dials that may start at once before `max_dials_per_second` applies.
    pub dial_burst: u32,
    /// Accepted connections open at once; more are closed at once.
    pub max_inbound: usize,
    /// Frames a connection may send that the node cannot use before it is closed.
    pub max_refused_frames: u32,
    /// Longest transaction (its JSON text) the node takes, far below the frame cap.
    pub max_transaction_bytes: usize,
    /// Bytes of frames handed to the host for one connection and not yet reported
    /// written; past it the node produces nothing more for that connection (relay pushes
    /// wait in its backlog, catch-up replies are not built) until the host reports
    /// progress with [`Node::handle_written`](crate::Node::handle_written).
    pub max_send_buffer: usize,
    /// Relay pushes one connection may have waiting for room in its send buffer. Past
    /// it a peer of ours is caught up later instead (the backlog is dropped); any other
    /// peer is disconnected, as it is not keeping up.
    pub max_backlog: usize,
    /// Bytes of frames the host may have read from one connection and not yet handed to
    /// the node; past it the host starts no new frame from that connection until the node
    /// has caught up (back-pressure onto the peer, never a dropped frame).
    pub max_inbound_buffer: usize,
    /// Bytes of frames the host may have read from all connections together and not yet
    /// handed to the node: past it no connection reads, not even to finish a message it
    /// began, and a message begun must end within `stall_timeout` or its connection is
    /// closed. So a thousand peers each leaving a long message unfinished hold this much
    /// of the node at most, and not for longer than `stall_timeout`.
    pub max_inbound_total: usize,
    /// Bytes of read buffers the host keeps, over all connections, for long frames (a
    /// WebSocket layer keeps a buffer the size of the longest frame a connection sent
    /// until the connection ends): a connection whose message over 96 KiB would pass it
    /// is closed. Room for 128 connections keeping a buffer for the longest frame our
    /// nodes send (a SYNC of 256 KiB).
    pub max_frame_buffers: usize,
    /// A connection with bytes queued and no progress for this long is closed, and so
    /// is one that began a message and did not finish it within this long.
    pub stall_timeout: Duration,
    /// SYNC frames one connection may have waiting for an answer; more are refused.
    pub max_sync_requests: usize,
    /// Transaction bodies one connection is sent by catch-up per second, sustained
    /// (after a burst of `catch_up_burst`): asking for the whole pool again and again
    /// gets a peer no more than this.
    pub catch_up_bodies_per_second: u32,
    /// Bodies catch-up may send at once before `catch_up_bodies_per_second` applies.
    pub catch_up_burst: u32,
    /// Share of `max_concurrent_dials`, in percent, that addresses merely listed in
    /// HANDSHAKEs (never reached) may take: the rest stays free for known peers and
    /// for the senders of HANDSHAKEs, who are dialled back at once.
    pub learned_dial_share: u8,
    /// Share of `max_address_book`, in percent, that addresses listed by one source (one
    /// HANDSHAKE sender) may take.
    pub learned_book_share: u8,
    /// Dial-only peers (browser tabs) pushed to at once; more are still answered and
    /// may catch up, but are pushed nothing: each one pushed to may hold up to
    /// `max_send_buffer` and `max_backlog` of the node's memory.
    pub max_dial_only_peers: usize,
    /// Connections that may watch the node (WATCH) at once; more are refused.
    pub max_watchers: usize,
    /// Bytes of frames a watcher may leave queued in the node (handed to the host and
    /// not reported written): an event that finds more queued for it drops the watcher
    /// (its connection is closed), so a slow page never makes the node wait nor hold
    /// more. What the host's socket buffers hold comes on top (a native host writes
    /// into the kernel's, up to a few MiB, before anything queues here).
    pub max_watch_buffer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: 1 << 20,
            max_handshake_addresses: 1024,
            max_address_book: 4096,
            max_concurrent_dials: 32,
            max_dials_per_second: 256,
            dial_burst: 256,
            max_inbound: 1024,
            max_refused_frames: 16,
            max_transaction_bytes: 4096,
            max_send_buffer: 4 << 20,
            max_backlog: 1 << 17,
            max_inbound_buffer: 2 << 20,
            max_inbound_total: 32 << 20,
            max_frame_buffers: 32 << 20,
            stall_timeout: Duration::from_secs(10),
            max_sync_requests: 4,
            catch_up_bodies_per_second: 100_000,
            catch_up_burst: 250_000,
            learned_dial_share: 75,
            learned_book_share: 25,
            max_dial_only_peers: 16,
            max_watchers: 16,
            max_watch_buffer: 256 << 10,
        }
    }
}

impl Limits {
    /// The limits of a node in overlay mode (`Config::overlay`): the defaults, with a
    /// send buffer of 1 MiB per connection instead of 4 and an inbound buffer of 256 KiB
    /// instead of 2 MiB. An overlay node forwards what it gets to a few links; with 4 MiB
    /// a link, the node that takes a burst handed each link most of it at once, and every
    /// node below held it while it passed (after a 10,000 burst into one of 200 real
    /// processes, VmHWM over 16 MiB in 14 of the 200 nodes, max 19.0 MiB). With 1 MiB,
    /// still 0 to 5 nodes over 16 MiB per run (max 18.0): a node on a loaded machine read
    /// up to 2 MiB ahead from each link while it fell behind. With 256 KiB, none in ten
    /// runs (max 15.8 MiB; BENCHMARKS.md). Five links bound what a node queues to 5 MiB
    /// and what it reads ahead to 1.25 MiB by construction; what it reads ahead from all
    /// connections, clients and pages included, is held to 4 MiB.
    pub fn overlay() -> Limits {
        Limits {
            max_send_buffer: 1 << 20,
            max_inbound_buffer: 256 << 10,
            max_inbound_total: 4 << 20,
            max_frame_buffers: 4 << 20,
            ..Limits::default()
        }
    }
}

/// Capped exponential backoff with jitter for redialling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry; it doubles after every failure.
    pub initial: Duration,
    /// The delay never grows past this.
    pub max: Duration,
    /// A dial not answered within this counts as failed.
    pub dial_timeout: Duration,
    /// A dialled connection that closes sooner than this after opening counts as a
    /// failed dial (the backoff keeps growing); one that lived longer resets it.
    pub stable_after: Duration,
    /// Addresses only heard of in a HANDSHAKE, never reached, are forgotten after this
    /// many failed dials in a row (known peers and peers once reached are kept).
    pub forget_after: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            dial_timeout: Duration::from_secs(10),
            stable_after: Duration::from_secs(10),
            forget_after: 6,
        }
    }
}

/// When a node runs catch-up rounds with its peers of ours (besides once per new
/// connection).
///
/// Of each pair of ours, the side with the smaller address leads: it opens the rounds,
/// `lull` after its pool last changed and at most `max_wait` after the first change the
/// peer has not been caught up on. The other side follows: it opens a round only when
/// something has waited `follower_wait` for the leader (a leader whose pool never
/// changes). No side sends a transaction that entered its pool less than `settle` ago
/// (it is most likely still on its way to the peer, pushed by its origin), and a leader
/// waits for the first change to settle before its round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sync {
    /// A leader's round follows this long after the pool last changed.
    pub lull: Duration,
    /// ... but no later than this after the first change since the last round.
    pub max_wait: Duration,
    /// A follower opens a round itself when a transaction it holds has waited this long
    /// (from when it entered, or the pair last connected) without a round covering it.
    /// Longer than `max_wait`, so that a working leader always comes first.
    pub follower_wait: Duration,
    /// Catch-up sends no transaction that entered the pool less than this ago; it
    /// brings it in a later round if the peer still lacks it then. Relay covers that
    /// span instead: a dial that opens is pushed what it missed in it, and a peer that
    /// has not said within it whether it is one of ours is taken for one that is not.
    pub settle: Duration,
}

impl Default for Sync {
    fn default() -> Sync {
        Sync {
            lull: Duration::from_millis(500),
            max_wait: Duration::from_secs(3),
            follower_wait: Duration::from_secs(6),
            settle: Duration::from_secs(1),
        }
    }
}

/// The sizes and periods of the overlay mode (see `Config::overlay` and the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Peers linked at once (the active view): transactions go only over these links.
    pub active: usize,
    /// Addresses kept to replace a lost link (the passive view).
    pub passive: usize,
    /// Hops a JOIN is walked through the overlay (HyParView's ARWL): where it ends, the
    /// newcomer is linked.
    pub active_walk: u8,
    /// At this many hops left, a walked JOIN also leaves the newcomer in the passive
    /// view of the node it passes (HyParView's PRWL).
    pub passive_walk: u8,
    /// How often a node swaps a few addresses with a random linked peer (SHUFFLE).
    pub shuffle_every: Duration,
    /// Addresses of the active view sent in a SHUFFLE (besides the sender's own).
    pub shuffle_active: usize,
    /// Addresses of the passive view sent in a SHUFFLE, and at most in its reply.
    pub shuffle_passive: usize,
    /// For this many shuffles after it starts, a node with a full view also trades one
    /// link with a passive address (SWAP): links formed while many nodes join at once
    /// are local; trading them for random ones gives the overlay a short diameter.
    pub rewire_rounds: u32,
    /// How often a node shuffles (and trades a link) in those first rounds: the overlay
    /// that many joins at once leave behind is rewired within seconds, not minutes.
    pub rewire_every: Duration,
    /// How often a node with fewer links than `active` promotes a passive address.
    pub repair_every: Duration,
    /// A transaction announced (IHAVE) and not received by push within this is asked
    /// for (GRAFT), and the announcing link joins the tree.
    pub graft_after: Duration,
    /// Announced transactions awaited at once; more announcements are ignored (catch-up
    /// brings what they named).
    pub max_missing: usize,
}

impl Default for Overlay {
    fn default() -> Overlay {
        Overlay {
            active: 5,
            passive: 30,
            active_walk: 6,
            passive_walk: 3,
            shuffle_every: Duration::from_secs(10),
            shuffle_active: 3,
            shuffle_passive: 4,
            rewire_rounds: 6,
            rewire_every: Duration::from_secs(2),
            repair_every: Duration::from_secs(1),
            graft_after: Duration::from_millis(80),
            max_missing: 16_384,
        }
    }
}
