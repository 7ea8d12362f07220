//! The overlay mode (`Config::overlay`): a bounded-degree overlay of nodes of ours in
//! place of the full mesh. Membership is HyParView's; broadcast goes along one tree of
//! the links with announcements on the others, as in Plumtree, but the tree is kept by
//! distances to a root rather than by pruning duplicates. All as frames of ours over
//! links (see `docs/overlay.md` for the design, its sources and why).
//!
//! **Links.** A link is one connection, dialled by either side, used both ways. A node
//! keeps at most `Overlay::active` links (its active view) and up to `Overlay::passive`
//! addresses to replace them (its passive view). A newcomer dials a known peer and sends
//! JOIN: the contact links it and says so (NEIGHBOR_REPLY; it drops a random link with
//! DISCONNECT if its view is full) and walks FORWARD_JOIN from each of its other links for `Overlay::active_walk`
//! hops; where a walk ends, that node dials the newcomer and asks for a link with
//! NEIGHBOR, high priority (always granted). A walk also leaves the newcomer in the
//! passive view of the node it passes at `Overlay::passive_walk` hops left. A link that
//! fails is replaced from the passive view (NEIGHBOR, granted if the peer has room or
//! high, when the asker has no link at all); every `Overlay::repair_every` a node short
//! of links promotes another, and one with no link and no passive address JOINs a known
//! peer again. Every `Overlay::shuffle_every` a node swaps a few addresses with a random
//! link (SHUFFLE, SHUFFLE_REPLY), so passive views mix across the overlay; in its first
//! `Overlay::rewire_rounds`, every `Overlay::rewire_every`, and it also trades a link
//! for a random passive address (SWAP), so the links many joins at once leave local
//! become random.
//!
//! **Broadcast.** The links carry one spanning tree of the overlay, rooted at the
//! smallest address in it: every node tells its links (TREE) the root it knows, its
//! distance to it and whether that link is its parent; each takes as parent the link
//! offering the smallest root, then the shortest distance (never one whose parent it
//! is). A link is eager if it is the node's parent or the node is its parent: a new
//! transaction is pushed over eager links (as in the mesh, packed per drain) and
//! announced over the others (IHAVE, hashes gathered per drain), so in a settled tree
//! each node gets each transaction once, from at most twice the tree's depth away (the
//! node where it is made pushes it over the tree too: a copy over another link would
//! come first when its way is quicker, not shorter, and lengthen the longest path in
//! hops). A shorter way or a smaller root is told within `TREE_DELAY`, other changes
//! within `TREE_HOLD`, and a link is never told the same place twice. A hash announced
//! and not received within `Overlay::graft_after` is asked for (GRAFT) from the link
//! that announced it: that is how transactions cross a tree that is being rebuilt after
//! a crash. A root that is gone is forgotten once the distances that still name it count
//! up to `MAX_DIST`.
//! Catch-up runs on links as between peers of ours in the mesh (the smaller address
//! leads), so whatever a crash or a partition lost still arrives.
//!
//! **Budgets.** Overlay dials in flight: `MAX_DIALS`; addresses taken from one SHUFFLE:
//! what one may carry; hashes taken from one IHAVE or GRAFT: `MAX_HASHES`; hashes awaited
//! at once: `Overlay::max_missing`. Overlay frames are taken only from a connection whose
//! HANDSHAKE said it runs the overlay, and those that act on a link only from a link.
//! JavaScript nodes and the curriculum's frames are served as in the mesh: a JavaScript
//! node is dialled back and pushed everything, a leaf that floods.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::relay::Via;
use super::{Action, Conn, ConnId, ConnKind, DialId, Node, Notice, Payload, SeededHasher};
use crate::address::Address;
use crate::frame::{self, FrameError, Overlay as OverlayFrame};
use crate::time::Time;
use crate::transaction::{Transaction, TxHash};

/// Overlay dials in flight at once: joining and repair are slow, careful work, and a
/// peer's FORWARD_JOINs must not turn into a storm of dials.
const MAX_DIALS: usize = 2;

/// Hashes taken from one IHAVE or GRAFT frame; the rest are ignored.
const MAX_HASHES: usize = 4096;

/// Largest IHAVE or GRAFT frame the node builds.
const HASHES_FRAME_BYTES: usize = 64 << 10;

/// Repair's delay grows at most to this many times `Overlay::repair_every`.
const MAX_REPAIR_BACKOFF: u32 = 32;

/// Longest distance to the root a node takes from a link: a root that crashed is
/// forgotten once the distances still naming it have counted up to this.
const MAX_DIST: u16 = 32;

/// Changes of a node's place in the tree within this long are told together: while links
/// come and go (a burst of joins) a distance may change many times in a row.
const TREE_DELAY: Duration = Duration::from_millis(20);

/// Any other change (a longer way to the root, a larger root, or only a new parent at
/// the same distance) is told after this instead: a worse place spreads down the node's
/// whole subtree, and while links are traded (or a crashed root is counted out) a better
/// way often turns up within it. Meanwhile the old tree links still push (a few copies
/// more, no loss). Measured at 3,000 nodes: TREE frames 2.5 M -> 0.93 M in the first
/// 30 s, same tree and rmr.
const TREE_HOLD: Duration = Duration::from_millis(100);

/// Announcements (IHAVE) gathered this long go out together: one frame per lazy link for
/// all the transactions of a busy spell, and a tree push that is a little late is not
/// asked for again. Announcements are most of an overlay's frames (each node announces
/// each transaction on every link off the tree); measured at 3,000 nodes, 100
/// transactions in 5 s: 50 ms sent 408,000 IHAVE frames, 250 ms 148,000, with the same
/// tree, delivery and rmr, and a crash's losses still recovered.
const ANNOUNCE_DELAY: Duration = Duration::from_millis(250);

/// Hashes announced to one link per gathering (`ANNOUNCE_DELAY`): a burst gathers more,
/// and is not announced at all. Its announcements would cost each node about as much as
/// the burst itself (a hash each for every link off the tree, where the tree carries
/// the bodies once) and each receiver a look-up and a timer per hash; what a burst's
/// pushes miss, catch-up brings once the burst is over (an equal pool costs one frame).
const MAX_ANNOUNCED: usize = 1024;

/// Links that may announce one missing hash (asked in turn).
const MAX_ANNOUNCERS: usize = 4;

/// The overlay's state (present only in overlay mode).
#[derive(Debug)]
pub(super) struct OverlayState {
    /// The active view: linked peers by address, with their link.
    pub(super) links: BTreeMap<Address, Link>,
    /// The passive view.
    pub(super) passive: Vec<Address>,
    /// Overlay dials in flight: to whom, and what the connection will ask for.
    dials: BTreeMap<DialId, (Address, Ask)>,
    dial_deadlines: BTreeSet<(Time, DialId)>,
    /// Our dials that sent NEIGHBOR or SWAP and wait for the reply, with the peer's
    /// address.
    asking: BTreeMap<ConnId, Address>,
    /// When each of those is given up if unanswered (entries of answered ones are
    /// stale).
    asking_deadlines: BTreeSet<(Time, ConnId)>,
    /// Of those, the SWAPs, with the link each offers to drop.
    swapping: BTreeMap<ConnId, Address>,
    /// Shuffles run since start (SWAPs are tried in the first `rewire_rounds`).
    shuffles: u32,
    /// Hashes announced to us and not held: the links that announced them, in turn.
    missing: HashMap<String, Vec<ConnId>, SeededHasher>,
    /// When each missing hash is grafted (entries of hashes no longer missing are stale).
    graft_timers: BTreeSet<(Time, String)>,
    /// Announcements gathered for each lazy link until the host takes actions.
    announce: BTreeMap<ConnId, Vec<TxHash>>,
    /// When the announcements gathered go out (`ANNOUNCE_DELAY` after the first).
    announce_at: Option<Time>,
    next_shuffle: Time,
    /// When a node short of links next promotes one (`None`: it has its fill).
    next_repair: Option<Time>,
    /// How long repair waits between tries: `Overlay::repair_every`, doubled (up to
    /// `MAX_REPAIR_BACKOFF` times) by each refusal, so a node short of links in a full
    /// overlay asks ever more rarely; back to the period when a link is made or lost.
    repair_delay: Duration,
    /// Which known peer the next JOIN goes to.
    next_contact: usize,
    /// The last peer that dropped its link to us: repair asks others first.
    avoid: Option<Address>,
    /// The root of the tree as this node knows it, its distance to it, and the link
    /// that leads there (none at the root).
    pub(super) root: Address,
    pub(super) dist: u16,
    parent: Option<Address>,
    /// Links to tell our place in the tree at `tree_at`.
    tree_dirty: BTreeSet<Address>,
    tree_at: Option<Time>,
    /// Reused for the links a transaction goes to (no allocation per transaction).
    scratch: Vec<(ConnId, bool)>,
}

/// One link of the active view.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub(super) conn: ConnId,
    /// Transactions are pushed over it (else announced): it is in the tree.
    pub(super) eager: bool,
    /// The root and distance it last told (TREE).
    tree: Option<(Address, u16)>,
    /// It said we are its parent.
    child: bool,
    /// What we last told it (TREE): root, distance, whether it is our parent.
    told: Option<(Address, u16, bool)>,
}

impl Link {
    fn new(conn: ConnId) -> Link {
        Link {
            conn,
            eager: false,
            tree: None,
            child: false,
            told: None,
        }
    }
}

/// What an overlay dial asks for once it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ask {
    Join,
    Neighbor {
        high: bool,
    },
    /// A link in exchange for ours to this address (see `Overlay::rewire_rounds`).
    Swap {
        drop: Address,
    },
}

impl OverlayState {
    pub(super) fn new(address: Address, seed: u64) -> OverlayState {
        OverlayState {
            links: BTreeMap::new(),
            passive: Vec::new(),
            dials: BTreeMap::new(),
            dial_deadlines: BTreeSet::new(),
            asking: BTreeMap::new(),
            asking_deadlines: BTreeSet::new(),
            swapping: BTreeMap::new(),
            shuffles: 0,
            missing: HashMap::with_hasher(SeededHasher(seed)),
            graft_timers: BTreeSet::new(),
            announce: BTreeMap::new(),
            announce_at: None,
            next_shuffle: Time::ZERO,
            next_repair: None,
            repair_delay: Duration::ZERO,
            next_contact: 0,
            avoid: None,
            root: address,
            dist: 0,
            parent: None,
            tree_dirty: BTreeSet::new(),
            tree_at: None,
            scratch: Vec::new(),
        }
    }

    /// When the node next needs its timers run for the overlay.
    pub(super) fn next_timer(&self) -> Option<Time> {
        let deadline = self.dial_deadlines.first().map(|&(at, _)| at);
        let asking = self.asking_deadlines.first().map(|&(at, _)| at);
        let graft = self.graft_timers.first().map(|(at, _)| *at);
        let shuffle = (!self.links.is_empty()).then_some(self.next_shuffle);
        [
            deadline,
            asking,
            graft,
            shuffle,
            self.next_repair,
            self.tree_at,
            self.announce_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether an overlay dial to `address` is in flight, or our dial to it waits for
    /// the answer to its question: either way, no second one.
    fn is_reaching(&self, address: &Address) -> bool {
        self.dials.values().any(|(a, _)| a == address) || self.asking.values().any(|a| a == address)
    }
}

impl Node {
    fn overlay_config(&self) -> crate::config::Overlay {
        self.config.overlay.clone().unwrap_or_default()
    }

    fn ov(&mut self) -> &mut OverlayState {
        self.overlay.as_mut().expect("called in overlay mode only")
    }

    /// A random index below `len` (which is not zero).
    fn pick(&mut self, len: usize) -> usize {
        pick(&mut self.rng, len)
    }

    /// Starts the overlay: the first repair (a JOIN) at once, shuffles from a random
    /// point of the first period on (of the rewiring rounds, if any).
    pub(super) fn overlay_start(&mut self, now: Time) {
        let config = self.overlay_config();
        let every = if config.rewire_rounds > 0 {
            config.rewire_every
        } else {
            config.shuffle_every
        };
        let offset = super::membership::jitter(every, &mut self.rng);
        let state = self.ov();
        state.next_shuffle = now + offset;
        state.next_repair = Some(now);
        self.overlay_timers(now);
    }

    /// The connection of the link to `address`, if linked.
    pub(super) fn link(&self, address: &Address) -> Option<ConnId> {
        Some(self.overlay.as_ref()?.links.get(address)?.conn)
    }

    /// The address `conn` is the link to, if it is one.
    fn link_on(&self, conn: ConnId) -> Option<Address> {
        let address = self.peer_of(conn)?;
        (self.link(&address)? == conn).then_some(address)
    }

    /// Starts an overlay dial to `address`, asking `ask` once open.
    fn overlay_dial(&mut self, address: Address, ask: Ask, now: Time) {
        // One dialled connection per server: one still held (a NEIGHBOR or SWAP waiting
        // for its answer, a link on its way out, closing or not) makes this one wait for
        // a later turn.
        let open = self
            .conns
            .values()
            .any(|c| matches!(&c.kind, ConnKind::Dialled(a, _) if *a == address));
        if open {
            return;
        }
        let dial = self.members.new_dial_id();
        let deadline = now + self.config.backoff.dial_timeout;
        let state = self.ov();
        state.dials.insert(dial, (address.clone(), ask));
        state.dial_deadlines.insert((deadline, dial));
        self.actions.push_back(Action::Dial {
            dial,
            address: address.clone(),
        });
        self.log(Notice::Dialling {
            address,
            attempt: 0,
        });
    }

    /// The overlay's dial `dial` opened as `conn`: introduce ourselves and ask. False if
    /// it was not an overlay dial.
    pub(super) fn overlay_dial_opened(&mut self, dial: DialId, conn: ConnId, now: Time) -> bool {
        let Some(state) = self.overlay.as_mut() else {
            return false;
        };
        let Some((address, ask)) = state.dials.remove(&dial) else {
            return false;
        };
        state.dial_deadlines.retain(|&(_, d)| d != dial);
        if self.conns.contains_key(&conn) {
            // The host reused a live id; refusing it keeps our books straight.
            self.actions.push_back(Action::Close { conn });
            return true;
        }
        let nonce = self.rng.next_u64();
        let mut c = Conn::new(ConnKind::Dialled(address.clone(), nonce), self.config.seed);
        c.overlay = true;
        self.conns.insert(conn, c);
        self.sent.handshake += 1;
        let handshake = frame::handshake_overlay(&self.config.address, nonce);
        self.send(conn, handshake.into(), now);
        self.sent.membership += 1;
        let question = match &ask {
            Ask::Join => frame::JOIN.to_owned(),
            Ask::Neighbor { high } => frame::neighbor(*high),
            Ask::Swap { drop } => frame::swap(drop),
        };
        self.send(conn, question.into(), now);
        // Linked only on the answer: a node that does not run the overlay never gives
        // one, and is let go when the dial timeout passes.
        let deadline = now + self.config.backoff.dial_timeout;
        let state = self.ov();
        state.asking.insert(conn, address);
        state.asking_deadlines.insert((deadline, conn));
        if let Ask::Swap { drop } = ask {
            state.swapping.insert(conn, drop);
        }
        true
    }

    /// The overlay's dial `dial` failed: its address leaves the passive view. False if
    /// it was not an overlay dial.
    pub(super) fn overlay_dial_failed(&mut self, dial: DialId, now: Time) -> bool {
        let Some(state) = self.overlay.as_mut() else {
            return false;
        };
        let Some((address, _)) = state.dials.remove(&dial) else {
            return false;
        };
        state.dial_deadlines.retain(|&(_, d)| d != dial);
        state.passive.retain(|a| *a != address);
        // A dead passive address is no refusal: the next one is tried at once (each
        // failure removes one, so this ends). A known peer that does not answer a JOIN
        // is: the next JOIN waits, longer each time.
        let short = state.links.len() < self.config.overlay.as_ref().map_or(0, |o| o.active);
        if short && !state.passive.is_empty() {
            state.next_repair = Some(now);
        } else {
            self.repair_refused();
        }
        self.log(Notice::DialFailed {
            address,
            attempt: 1,
            retry_in: None,
        });
        true
    }

    /// An overlay HANDSHAKE on accepted connection `conn`: note who it is, say HELLO,
    /// dial nothing (a JOIN or NEIGHBOR follows if it wants a link).
    pub(super) fn overlay_handshake(&mut self, conn: ConnId, sender: Option<&str>, now: Time) {
        let address = sender.and_then(|text| text.parse::<Address>().ok());
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ConnKind::Accepted(peer) = &mut c.kind else {
            return;
        };
        if peer.is_none() {
            peer.clone_from(&address);
        }
        c.overlay = true;
        if !c.ours {
            c.ours = true;
            self.sent.hello += 1;
            self.send(conn, frame::HELLO.into(), now);
        }
        self.log(Notice::Handshake {
            conn,
            from: address,
            listed: 1,
            invalid: usize::from(sender.is_some_and(|s| s.parse::<Address>().is_err())),
        });
    }

    /// An overlay frame arrived on `conn`.
    pub(super) fn on_overlay(&mut self, conn: ConnId, message: OverlayFrame<'_>, now: Time) {
        let kind = overlay_kind(&message);
        let in_overlay = self.overlay.is_some() && self.conns.get(&conn).is_some_and(|c| c.overlay);
        let Some(peer) = self.peer_of(conn).filter(|_| in_overlay) else {
            return self.refuse(conn, FrameError::NotInOverlay(kind));
        };
        let linked = self.link(&peer) == Some(conn);
        match message {
            OverlayFrame::Join if self.is_accepted(conn) => {
                self.sent.membership += 1;
                self.send(conn, frame::neighbor_reply(true).into(), now);
                self.add_link(peer.clone(), conn, now);
                let walk = self.overlay_config().active_walk;
                let frame: Payload = frame::forward_join(&peer, walk).into();
                let others: Vec<ConnId> = self
                    .ov()
                    .links
                    .iter()
                    .filter(|(a, _)| **a != peer)
                    .map(|(_, l)| l.conn)
                    .collect();
                for other in others {
                    self.send_overlay(other, &frame, now);
                }
            }
            OverlayFrame::ForwardJoin { node, ttl } if linked => {
                let Ok(node) = node.parse::<Address>() else {
                    return self.refuse(conn, FrameError::BadOverlay("FORWARD_JOIN"));
                };
                self.forward_join(node, ttl, &peer, now);
            }
            OverlayFrame::Neighbor { high } => {
                if !self.is_accepted(conn) {
                    return;
                }
                let room = self.ov().links.len() < self.overlay_config().active;
                let accept = high || room || linked;
                self.sent.membership += 1;
                self.send(conn, frame::neighbor_reply(accept).into(), now);
                if accept {
                    self.add_link(peer, conn, now);
                }
            }
            OverlayFrame::NeighborReply { accept } => {
                if self.ov().asking.remove(&conn).is_none() {
                    return;
                }
                if accept {
                    self.add_link(peer, conn, now);
                } else {
                    self.add_passive(peer);
                    self.close_conn(conn);
                    self.repair_refused();
                }
            }
            OverlayFrame::Swap { drop } => {
                if !self.is_accepted(conn) {
                    return;
                }
                let Ok(drop) = drop.parse::<Address>() else {
                    return self.refuse(conn, FrameError::BadOverlay("SWAP"));
                };
                self.on_swap(peer, conn, drop, now);
            }
            OverlayFrame::SwapReply { accept, to } => {
                if self.ov().asking.remove(&conn).is_none() {
                    return;
                }
                let drop = self.ov().swapping.remove(&conn);
                if !accept {
                    self.add_passive(peer);
                    return self.close_conn(conn);
                }
                let to = to.and_then(|to| to.parse::<Address>().ok());
                if let Some((drop, old)) = drop.and_then(|d| Some((d.clone(), self.link(&d)?))) {
                    let frame = match &to {
                        Some(to) => frame::rewire(to),
                        None => frame::DISCONNECT.to_owned(),
                    };
                    if self.has_room(old) {
                        self.sent.membership += 1;
                        self.send(old, frame.into(), now);
                    }
                    self.remove_link(&drop, "traded for another", now);
                    self.close_conn(old);
                    self.add_passive(drop);
                }
                self.add_link(peer, conn, now);
            }
            OverlayFrame::Rewire { to } if linked => {
                let Ok(to) = to.parse::<Address>() else {
                    return self.refuse(conn, FrameError::BadOverlay("REWIRE"));
                };
                self.remove_link(&peer, "traded for another", now);
                self.add_passive(peer);
                self.close_conn(conn);
                self.rewired_to(to, now);
            }
            OverlayFrame::Disconnect if linked => {
                self.remove_link(&peer, "it dropped the link", now);
                self.close_conn(conn);
                // It was full: ask someone else first, and not at once, or nodes with
                // one link each around a full one take turns dropping each other.
                let every = self.overlay_config().repair_every;
                let later = now + super::membership::jitter(every, &mut self.rng);
                let state = self.ov();
                state.avoid = Some(peer.clone());
                state.next_repair = Some(state.next_repair.map_or(later, |at| at.max(later)));
                self.add_passive(peer);
            }
            OverlayFrame::Shuffle(list) if linked => {
                let config = self.overlay_config();
                let cap = 1 + config.shuffle_active + config.shuffle_passive;
                let mut reply = Vec::new();
                let mut pool = self.ov().passive.clone();
                while reply.len() < list.len().min(cap) && !pool.is_empty() {
                    let i = self.pick(pool.len());
                    reply.push(pool.swap_remove(i));
                }
                self.sent.membership += 1;
                self.send(conn, frame::shuffle("SHUFFLE_REPLY", &reply).into(), now);
                self.integrate(&list, cap);
            }
            OverlayFrame::ShuffleReply(list) if linked => {
                let config = self.overlay_config();
                self.integrate(&list, 1 + config.shuffle_active + config.shuffle_passive);
            }
            OverlayFrame::Tree { root, dist, parent } if linked => {
                let Ok(root) = root.parse::<Address>() else {
                    return self.refuse(conn, FrameError::BadOverlay("TREE"));
                };
                if let Some(link) = self.ov().links.get_mut(&peer) {
                    link.tree = Some((root, dist));
                    link.child = parent;
                }
                self.retree(now);
            }
            OverlayFrame::IHave(hashes) if linked => self.on_ihave(conn, &hashes, now),
            OverlayFrame::Graft(hashes) if linked => {
                let mut frame = None;
                for hash in hashes.into_iter().take(MAX_HASHES) {
                    if let Some(tx) = self.broadcast.pool.get(hash).cloned() {
                        self.push(conn, &tx, &mut frame, now);
                    }
                }
            }
            // A frame for a link that is gone (it crossed a DISCONNECT or a replacement
            // on the way): nothing to do.
            _ => {}
        }
    }

    fn is_accepted(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| matches!(c.kind, ConnKind::Accepted(_)))
    }

    /// Sends an overlay membership frame if the connection has room (else it is lost,
    /// as on a failing link: the overlay repairs itself).
    fn send_overlay(&mut self, conn: ConnId, frame: &Payload, now: Time) {
        if self.has_room(conn) {
            self.sent.membership += 1;
            self.send(conn, Arc::clone(frame), now);
        }
    }

    /// A walk of the newcomer `node` reached us from `from` with `ttl` hops left.
    fn forward_join(&mut self, node: Address, ttl: u8, from: &Address, now: Time) {
        if node == self.config.address || self.link(&node).is_some() {
            return;
        }
        let config = self.overlay_config();
        let links = self.ov().links.len();
        if ttl > 0 && links > 1 {
            if ttl == config.passive_walk {
                self.add_passive(node.clone());
            }
            let next: Vec<ConnId> = self
                .ov()
                .links
                .iter()
                .filter(|(a, _)| *a != from && **a != node)
                .map(|(_, l)| l.conn)
                .collect();
            if !next.is_empty() {
                let conn = next[self.pick(next.len())];
                let frame: Payload = frame::forward_join(&node, ttl - 1).into();
                return self.send_overlay(conn, &frame, now);
            }
        }
        // The walk ends here: link the newcomer (it must accept), if a dial is free.
        let state = self.ov();
        if state.dials.len() < MAX_DIALS && !state.is_reaching(&node) {
            self.overlay_dial(node, Ask::Neighbor { high: true }, now);
        } else {
            self.add_passive(node);
        }
    }

    /// Links `address` over `conn`, making room if the view is full; a second
    /// connection to a linked peer (both sides dialled at once) keeps the one dialled by
    /// the smaller address, on both sides alike.
    fn add_link(&mut self, address: Address, conn: ConnId, now: Time) {
        if address == self.config.address || self.members.is_self(&self.config, &address) {
            return self.close_conn(conn);
        }
        if let Some(existing) = self.link(&address) {
            if existing == conn {
                return;
            }
            let dialler = |node: &Node, conn: ConnId| match node.conns.get(&conn).map(|c| &c.kind) {
                Some(ConnKind::Dialled(..)) => node.config.address.clone(),
                _ => address.clone(),
            };
            let keep_new = dialler(self, conn) < dialler(self, existing);
            if !keep_new {
                return self.close_conn(conn);
            }
            self.ov().links.insert(address.clone(), Link::new(conn));
            self.close_conn(existing);
            self.ov().tree_dirty.insert(address.clone());
            return self.retree(now);
        }
        let active = self.overlay_config().active;
        if self.ov().links.len() >= active.max(1) {
            let candidates: Vec<Address> = self.ov().links.keys().cloned().collect();
            let dropped = candidates[self.pick(candidates.len())].clone();
            if let Some(link) = self.link(&dropped) {
                if self.has_room(link) {
                    self.sent.membership += 1;
                    self.send(link, frame::DISCONNECT.into(), now);
                }
                self.remove_link(&dropped, "the active view was full", now);
                self.close_conn(link);
                self.add_passive(dropped);
            }
        }
        let state = self.ov();
        state.passive.retain(|a| *a != address);
        state.links.insert(address.clone(), Link::new(conn));
        let count = state.links.len();
        state.repair_delay = Duration::ZERO;
        if count >= active {
            state.next_repair = None;
        }
        self.log(Notice::Linked {
            address: address.clone(),
            active: count,
        });
        // Catch-up with the new link: the smaller address opens it.
        self.broadcast.reconciled.remove(&address);
        if let Some(sync) = self.reconciled_mut(&address) {
            sync.since = now;
        }
        self.open_link_catch_up(&address, conn, now);
        let state = self.ov();
        state.tree_dirty.insert(address);
        state.tree_at.get_or_insert(now + TREE_DELAY);
    }

    /// `address` is no longer linked (its connection is closed by whoever calls this).
    fn remove_link(&mut self, address: &Address, why: &'static str, now: Time) {
        let state = self.ov();
        let Some(link) = state.links.remove(address) else {
            return;
        };
        state.announce.remove(&link.conn);
        state.repair_delay = Duration::ZERO;
        let active = state.links.len();
        self.broadcast.reconciled.remove(address);
        self.log(Notice::Unlinked {
            address: address.clone(),
            why,
            active,
        });
        self.retree(now);
    }

    /// A link was lost: promote a passive address now (tries that fail are retried
    /// every `repair_delay` from then on).
    fn want_repair(&mut self, now: Time) {
        let active = self.overlay_config().active;
        let state = self.ov();
        if state.links.len() < active {
            state.next_repair = Some(state.next_repair.map_or(now, |at| at.min(now)));
        }
    }

    /// A try to add a link failed: the next waits longer.
    fn repair_refused(&mut self) {
        let every = self.overlay_config().repair_every;
        let state = self.ov();
        state.repair_delay = (state.repair_delay * 2).clamp(every, every * MAX_REPAIR_BACKOFF);
    }

    /// Keeps `address` in the passive view (unless it is us, linked, or held already),
    /// forgetting a random one if the view is full.
    fn add_passive(&mut self, address: Address) {
        let capacity = self.overlay_config().passive;
        if self.members.is_self(&self.config, &address) || self.link(&address).is_some() {
            return;
        }
        if self.ov().passive.contains(&address) || capacity == 0 {
            return;
        }
        if self.ov().passive.len() >= capacity {
            let i = self.pick(capacity);
            self.ov().passive.swap_remove(i);
        }
        self.ov().passive.push(address);
    }

    /// Takes at most `cap` addresses of a SHUFFLE or its reply into the passive view.
    fn integrate(&mut self, list: &[std::borrow::Cow<'_, str>], cap: usize) {
        for text in list.iter().take(cap) {
            if let Ok(address) = text.parse::<Address>() {
                self.add_passive(address);
            }
        }
    }

    /// A connection of the overlay closed: if it was a link, the link is gone (and is
    /// replaced from the passive view).
    pub(super) fn overlay_closed(&mut self, conn: ConnId, address: Option<Address>, now: Time) {
        self.ov().swapping.remove(&conn);
        if self.ov().asking.remove(&conn).is_some() {
            self.repair_refused();
        }
        let Some(address) = address else {
            return;
        };
        if self.link(&address) == Some(conn) {
            self.remove_link(&address, "its connection closed", now);
            self.want_repair(now);
        }
    }

    /// Overlay dial deadlines, grafts, repair and shuffle that are due.
    pub(super) fn overlay_timers(&mut self, now: Time) {
        if self.overlay.is_none() {
            return;
        }
        while let Some(&(at, dial)) = self.ov().dial_deadlines.first() {
            if at > now {
                break;
            }
            self.ov().dial_deadlines.pop_first();
            if self.ov().dials.contains_key(&dial) {
                self.actions.push_back(Action::AbandonDial { dial });
                self.overlay_dial_failed(dial, now);
            }
        }
        while let Some(&(at, conn)) = self.ov().asking_deadlines.first() {
            if at > now {
                break;
            }
            self.ov().asking_deadlines.pop_first();
            if self.ov().asking.remove(&conn).is_some() {
                self.ov().swapping.remove(&conn);
                self.close_conn(conn);
                self.repair_refused();
            }
        }
        self.grafts_due(now);
        if self.ov().announce_at.is_some_and(|at| at <= now) {
            self.flush_announcements(now);
        }
        if self.ov().tree_at.is_some_and(|at| at <= now) {
            let state = self.ov();
            state.tree_at = None;
            for address in std::mem::take(&mut state.tree_dirty) {
                self.tell_tree(&address, now);
            }
        }
        if self.ov().next_repair.is_some_and(|at| at <= now) {
            self.repair(now);
        }
        if !self.ov().links.is_empty() && self.ov().next_shuffle <= now {
            self.shuffle(now);
        }
    }

    /// Promotes a passive address to a link, or, with no link and no passive address,
    /// JOINs a known peer again; runs every `Overlay::repair_every` while short.
    fn repair(&mut self, now: Time) {
        let config = self.overlay_config();
        let state = self.ov();
        if state.links.len() >= config.active {
            state.next_repair = None;
            return;
        }
        state.next_repair = Some(now + state.repair_delay.max(config.repair_every));
        if state.dials.len() >= MAX_DIALS {
            return;
        }
        let high = state.links.is_empty();
        let mut candidates: Vec<Address> = state
            .passive
            .iter()
            .filter(|a| !state.is_reaching(a))
            .cloned()
            .collect();
        if candidates.len() > 1 {
            if let Some(avoid) = state.avoid.take() {
                candidates.retain(|a| *a != avoid);
            }
        }
        if !candidates.is_empty() {
            let address = candidates[self.pick(candidates.len())].clone();
            return self.overlay_dial(address, Ask::Neighbor { high }, now);
        }
        if !self.ov().asking.is_empty() {
            return;
        }
        // No passive address: the known peers. With no link at all, JOIN one (it must
        // link us); with some, ask one that is not linked yet for a link, as a passive
        // address would be asked: two parts of an overlay that formed apart (nodes that
        // joined during a partition) find each other through them.
        let contacts: Vec<Address> = self
            .config
            .known_peers
            .iter()
            .filter(|a| !self.members.is_self(&self.config, a) && self.link(a).is_none())
            .cloned()
            .collect();
        if contacts.is_empty() {
            return;
        }
        let state = self.ov();
        let contact = contacts[state.next_contact % contacts.len()].clone();
        state.next_contact = state.next_contact.wrapping_add(1);
        if !state.is_reaching(&contact) {
            let ask = if high {
                Ask::Join
            } else {
                Ask::Neighbor { high: false }
            };
            self.overlay_dial(contact, ask, now);
        }
    }

    /// A SWAP from `peer` on `conn`, which offers to drop its link to `drop`: with
    /// room, it is linked as for NEIGHBOR; with a full view, a random link of ours
    /// (not `drop`'s, nor `drop` itself) is told to link with `drop` instead (REWIRE)
    /// and gives its place to `peer`. Both views keep their size.
    fn on_swap(&mut self, peer: Address, conn: ConnId, drop: Address, now: Time) {
        let active = self.overlay_config().active;
        let itself = self.members.is_self(&self.config, &drop);
        let state = self.ov();
        if state.links.len() < active {
            self.sent.membership += 1;
            self.send(conn, frame::swap_reply(true, None).into(), now);
            return self.add_link(peer, conn, now);
        }
        let usable = !itself && !state.links.contains_key(&drop);
        let others: Vec<Address> = state
            .links
            .keys()
            .filter(|a| **a != peer && **a != drop)
            .cloned()
            .collect();
        if !usable || others.is_empty() || state.links.contains_key(&peer) {
            self.sent.membership += 1;
            return self.send(conn, frame::swap_reply(false, None).into(), now);
        }
        let given = others[self.pick(others.len())].clone();
        if let Some(old) = self.link(&given) {
            if self.has_room(old) {
                self.sent.membership += 1;
                self.send(old, frame::rewire(&drop).into(), now);
            }
            self.remove_link(&given, "traded for another", now);
            self.close_conn(old);
            self.add_passive(given.clone());
        }
        self.sent.membership += 1;
        self.send(conn, frame::swap_reply(true, Some(&given)).into(), now);
        self.add_link(peer, conn, now);
    }

    /// Our link was traded away (REWIRE): link with `to`, which lost one the same way.
    /// The smaller address of the two dials; the other keeps its slot for it a while.
    fn rewired_to(&mut self, to: Address, now: Time) {
        if self.members.is_self(&self.config, &to) || self.link(&to).is_some() {
            return;
        }
        if self.config.address < to {
            // Not held to `MAX_DIALS`: the trade only keeps both views' size if this
            // link is made, and only a link of ours can ask for it (and loses its link).
            if !self.ov().dials.values().any(|(a, _)| *a == to) {
                return self.overlay_dial(to, Ask::Neighbor { high: true }, now);
            }
        }
        let every = self.overlay_config().repair_every;
        self.ov().next_repair = Some(now + every);
        self.add_passive(to);
    }

    /// Swaps a few addresses with a random link; in its first `rewire_rounds`, also
    /// trades a link for a random passive address (SWAP).
    fn shuffle(&mut self, now: Time) {
        let config = self.overlay_config();
        self.ov().shuffles += 1;
        let every = if self.ov().shuffles < config.rewire_rounds {
            config.rewire_every
        } else {
            config.shuffle_every
        };
        let next = now + super::membership::jitter(every, &mut self.rng) + every / 2;
        self.ov().next_shuffle = next;
        if self.ov().shuffles <= config.rewire_rounds {
            self.try_swap(now);
        }
        self.rejoin_if_apart(now);
        let links: Vec<(Address, ConnId)> = self
            .ov()
            .links
            .iter()
            .map(|(a, l)| (a.clone(), l.conn))
            .collect();
        if links.is_empty() {
            return;
        }
        let (to, conn) = links[self.pick(links.len())].clone();
        let mut list = vec![self.config.address.clone()];
        let mut actives: Vec<Address> = links
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| *a != to)
            .collect();
        let mut passive = self.ov().passive.clone();
        for (from, count) in [
            (&mut actives, config.shuffle_active),
            (&mut passive, config.shuffle_passive),
        ] {
            for _ in 0..count {
                if from.is_empty() {
                    break;
                }
                let i = pick(&mut self.rng, from.len());
                list.push(from.swap_remove(i));
            }
        }
        let frame: Payload = frame::shuffle("SHUFFLE", &list).into();
        self.send_overlay(conn, &frame, now);
    }

    /// A known peer with a smaller address than our tree's root is not in our part of
    /// the overlay (in one connected overlay the root is the smallest address of all):
    /// two parts formed apart (during a partition, or full cliques that refuse low
    /// NEIGHBORs). JOIN it: it must link us, and its walks spread our part into its own.
    /// Once joined, the root falls to it or lower and this stops.
    fn rejoin_if_apart(&mut self, now: Time) {
        let smallest = self
            .config
            .known_peers
            .iter()
            .filter(|a| !self.members.is_self(&self.config, a))
            .min()
            .cloned();
        let Some(contact) = smallest else {
            return;
        };
        let state = self.ov();
        let apart = contact < state.root
            && !state.links.contains_key(&contact)
            && !state.is_reaching(&contact)
            && state.dials.len() < MAX_DIALS;
        if apart {
            self.overlay_dial(contact, Ask::Join, now);
        }
    }

    /// With a full view, offers a random link for a link to a random passive address.
    fn try_swap(&mut self, now: Time) {
        let active = self.overlay_config().active;
        let state = self.ov();
        if state.links.len() < active || state.dials.len() >= MAX_DIALS {
            return;
        }
        let candidates: Vec<Address> = state
            .passive
            .iter()
            .filter(|a| !state.is_reaching(a))
            .cloned()
            .collect();
        if candidates.is_empty() {
            return;
        }
        let links: Vec<Address> = state.links.keys().cloned().collect();
        let to = candidates[self.pick(candidates.len())].clone();
        let drop = links[self.pick(links.len())].clone();
        self.overlay_dial(to, Ask::Swap { drop }, now);
    }

    /// Relay in the overlay: `tx` is new here. Made here or pushed to us, it goes on
    /// over the tree's links (but the one it came on) and is announced on the rest;
    /// brought by catch-up (its pushes missed us, and may have missed our neighbours),
    /// it is announced on every link but the one it came on.
    pub(super) fn overlay_relay(
        &mut self,
        tx: &Transaction,
        source: Option<ConnId>,
        via: Via,
        now: Time,
    ) {
        let Some(state) = self.overlay.as_mut() else {
            return;
        };
        state.missing.remove(tx.hash());
        let mut targets = std::mem::take(&mut state.scratch);
        targets.clear();
        targets.extend(
            state
                .links
                .values()
                .filter(|l| Some(l.conn) != source)
                .map(|l| (l.conn, l.eager && via == Via::Push)),
        );
        let mut frame = None;
        for &(conn, push) in &targets {
            if push {
                self.push(conn, tx, &mut frame, now);
            } else {
                let state = self.ov();
                state.announce_at.get_or_insert(now + ANNOUNCE_DELAY);
                let gathered = state.announce.entry(conn).or_default();
                // One past the bound is kept, to say the bound was passed.
                if gathered.len() <= MAX_ANNOUNCED {
                    gathered.push(tx.shared_hash());
                }
            }
        }
        self.ov().scratch = targets;
    }

    /// Takes the parent that offers the smallest root, then the shortest distance (not
    /// a link whose parent we are), marks the tree's links eager, and tells the links
    /// that need to know: all of them if our root or distance changed, else the old
    /// and the new parent if only the parent did.
    fn retree(&mut self, now: Time) {
        let me = self.config.address.clone();
        let state = self.ov();
        let mut best: (Address, u16, Option<Address>) = (me, 0, None);
        for (address, link) in &state.links {
            let Some((root, dist)) = &link.tree else {
                continue;
            };
            let dist = dist.saturating_add(1);
            if link.child || dist > MAX_DIST {
                continue;
            }
            if (root, dist) < (&best.0, best.1) {
                best = (root.clone(), dist, Some(address.clone()));
            }
        }
        let (root, dist, parent) = best;
        let moved = root != state.root || dist != state.dist;
        let better = (&root, dist) < (&state.root, state.dist);
        let old_parent = std::mem::replace(&mut state.parent, parent);
        state.root = root;
        state.dist = dist;
        for (address, link) in state.links.iter_mut() {
            link.eager = link.child || state.parent.as_ref() == Some(address);
        }
        let tell: Vec<Address> = if moved {
            state.links.keys().cloned().collect()
        } else if old_parent != state.parent {
            old_parent.into_iter().chain(state.parent.clone()).collect()
        } else {
            Vec::new()
        };
        if !tell.is_empty() {
            state.tree_dirty.extend(tell);
            let at = now + if better { TREE_DELAY } else { TREE_HOLD };
            match state.tree_at {
                Some(t) if t <= at => {}
                _ => state.tree_at = Some(at),
            }
        }
    }

    /// Sends `address`'s link our place in the tree (TREE).
    fn tell_tree(&mut self, address: &Address, now: Time) {
        let state = self.ov();
        let Some(link) = state.links.get(address) else {
            return;
        };
        let told = (
            state.root.clone(),
            state.dist,
            state.parent.as_ref() == Some(address),
        );
        if link.told.as_ref() == Some(&told) {
            return;
        }
        let conn = link.conn;
        if !self.has_room(conn) {
            return;
        }
        let frame = frame::tree(&told.0, told.1, told.2);
        if let Some(link) = self.ov().links.get_mut(address) {
            link.told = Some(told);
        }
        self.sent.tree += 1;
        self.send(conn, frame.into(), now);
    }

    /// Hashes announced on link `conn`: those we lack are awaited, and grafted if they
    /// do not come by push in time.
    fn on_ihave(&mut self, conn: ConnId, hashes: &[&str], now: Time) {
        let config = self.overlay_config();
        for &hash in hashes.iter().take(MAX_HASHES) {
            if self.broadcast.pool.contains(hash) {
                continue;
            }
            let state = self.ov();
            let room = state.missing.len() < config.max_missing;
            match state.missing.get_mut(hash) {
                Some(announcers)
                    if announcers.len() < MAX_ANNOUNCERS && !announcers.contains(&conn) =>
                {
                    announcers.push(conn);
                }
                Some(_) => {}
                None if room => {
                    state.missing.insert(hash.to_owned(), vec![conn]);
                    state
                        .graft_timers
                        .insert((now + config.graft_after, hash.to_owned()));
                }
                None => {}
            }
        }
    }

    /// Grafts the awaited hashes whose time has come, each from the next link that
    /// announced it.
    fn grafts_due(&mut self, now: Time) {
        let graft_after = self.overlay_config().graft_after;
        let mut grafts: BTreeMap<ConnId, Vec<String>> = BTreeMap::new();
        while let Some((at, _)) = self.ov().graft_timers.first() {
            if *at > now {
                break;
            }
            let (_, hash) = self.ov().graft_timers.pop_first().expect("first exists");
            if self.broadcast.pool.contains(&hash) {
                self.ov().missing.remove(&hash);
                continue;
            }
            let Some(mut announcers) = self.ov().missing.remove(&hash) else {
                continue;
            };
            let chosen = loop {
                if announcers.is_empty() {
                    break None;
                }
                let conn = announcers.remove(0);
                if self.link_on(conn).is_some() {
                    break Some(conn);
                }
            };
            let Some(conn) = chosen else {
                continue;
            };
            if !announcers.is_empty() {
                let state = self.ov();
                state.graft_timers.insert((now + graft_after, hash.clone()));
                state.missing.insert(hash.clone(), announcers);
            }
            grafts.entry(conn).or_default().push(hash);
        }
        for (conn, hashes) in grafts {
            for chunk in hash_chunks(hashes.iter().map(String::as_str)) {
                if self.has_room(conn) {
                    self.sent.graft += 1;
                    self.send(conn, frame::hashes_frame("GRAFT", chunk).into(), now);
                }
            }
        }
    }

    /// Sends the announcements gathered (see `ANNOUNCE_DELAY`); a link without room
    /// loses them, and so does one that gathered more than `MAX_ANNOUNCED` (catch-up
    /// covers what it then misses).
    fn flush_announcements(&mut self, now: Time) {
        let state = self.ov();
        state.announce_at = None;
        let gathered = std::mem::take(&mut state.announce);
        for (conn, hashes) in gathered {
            if hashes.len() > MAX_ANNOUNCED {
                continue;
            }
            for chunk in hash_chunks(hashes.iter().map(|h| &**h)) {
                if self.has_room(conn) {
                    self.sent.ihave += 1;
                    self.send(conn, frame::hashes_frame("IHAVE", chunk).into(), now);
                }
            }
        }
    }
}

/// A random index below `len` (which is not zero).
fn pick(rng: &mut crate::rng::Rng, len: usize) -> usize {
    (rng.next_u64() % len as u64) as usize
}

/// The name of an overlay frame's type, for notices.
fn overlay_kind(message: &OverlayFrame<'_>) -> &'static str {
    match message {
        OverlayFrame::Join => "JOIN",
        OverlayFrame::ForwardJoin { .. } => "FORWARD_JOIN",
        OverlayFrame::Neighbor { .. } => "NEIGHBOR",
        OverlayFrame::NeighborReply { .. } => "NEIGHBOR_REPLY",
        OverlayFrame::Disconnect => "DISCONNECT",
        OverlayFrame::Swap { .. } => "SWAP",
        OverlayFrame::SwapReply { .. } => "SWAP_REPLY",
        OverlayFrame::Rewire { .. } => "REWIRE",
        OverlayFrame::Shuffle(_) => "SHUFFLE",
        OverlayFrame::ShuffleReply(_) => "SHUFFLE_REPLY",
        OverlayFrame::IHave(_) => "IHAVE",
        OverlayFrame::Graft(_) => "GRAFT",
        OverlayFrame::Tree { .. } => "TREE",
    }
}

/// `hashes` cut into runs that fit one frame of at most `HASHES_FRAME_BYTES`.
fn hash_chunks<'a>(hashes: impl Iterator<Item = &'a str>) -> Vec<Vec<&'a str>> {
    let mut chunks = vec![Vec::new()];
    let mut bytes = 0;
    for hash in hashes {
        if bytes + hash.len() + 3 > HASHES_FRAME_BYTES && !chunks.last().is_some_and(Vec::is_empty)
        {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += hash.len() + 3;
        chunks.last_mut().expect("one at least").push(hash);
    }
    chunks.retain(|c| !c.is_empty());
    chunks
}
