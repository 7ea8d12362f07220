//! What the simulator checks and measures: the protocol's invariants (as they are broken,
//! and of the running nodes now, the overlay mode's among them), whether and when the
//! nodes form one full mesh, and how much of what was added reached every pool.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{NodeId, Sim, Violation};
use crate::address::Address;
use crate::frame::{self, Frame};
use crate::time::Time;

/// Violations kept word for word; past this only their number grows.
const MAX_VIOLATIONS: usize = 1000;

/// In overlay mode, how long a connection between two overlay nodes may stay open
/// without being a link of the active view (a dial waiting for its NEIGHBOR_REPLY, a
/// link being dropped) before it counts as leaked.
const LINK_GRACE: Duration = Duration::from_secs(10);

impl Sim {
    // ----- what it sees ----------------------------------------------------------------

    /// Violations seen as they happened (a dial to itself, a second dial to one server, a
    /// HANDSHAKE that lists a closed connection, a frame on a connection the node does not
    /// hold, a transaction persisted twice).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// [`Sim::violations`], and what is wrong with the running nodes now: for each, its
    /// `connectedAddresses` must be exactly its open dialled connections, one per server,
    /// never itself; it must not dial itself or a server it holds a connection to; its
    /// pool must not hold a transaction twice. In overlay mode, dialled connections to
    /// overlay nodes are links instead: its active view holds at most `Overlay::active`
    /// peers, never itself or one twice, each one it holds an open connection with; and
    /// a connection with an overlay node open longer than `LINK_GRACE` (10 s) is a link
    /// of its view, one per peer. Empty when all is well.
    pub fn check(&self) -> Vec<Violation> {
        let mut found = self.violations.clone();
        for id in self.live_nodes() {
            let host = &self.hosts[id.0];
            let Some(node) = host.node() else { continue };
            let mut fault = |what: String| {
                found.push(Violation {
                    at: self.now,
                    node: id,
                    what,
                })
            };
            let mut connected = BTreeSet::new();
            for address in node.connected_addresses() {
                let target = self.node_at(address);
                if !connected.insert(target) {
                    fault(format!("connectedAddresses lists {address} twice"));
                }
                if target == Some(id) {
                    fault(format!("connectedAddresses lists itself ({address})"));
                }
                if !target.is_some_and(|t| host.out.contains_key(&t)) {
                    fault(format!(
                        "connectedAddresses lists {address}, but it holds no open dialled connection there"
                    ));
                }
            }
            let overlay = node.config().overlay.is_some();
            for (&target, &count) in &host.out {
                if count > 1 {
                    fault(format!("holds {count} dialled connections to {target}"));
                }
                // Between overlay nodes a dialled connection is a link or on its way to
                // be one, not a `connectedAddresses` entry: the link checks below.
                if overlay && self.runs_overlay(target) {
                    continue;
                }
                if !connected.contains(&Some(target)) {
                    fault(format!(
                        "holds a dialled connection to {target}, missing from connectedAddresses"
                    ));
                }
            }
            let mut dialling = BTreeSet::new();
            for address in node.dialling() {
                let target = self.node_at(address);
                if target == Some(id) {
                    fault(format!("is dialling itself ({address})"));
                }
                if target.is_some() && connected.contains(&target) {
                    fault(format!("is dialling {address}, which it is connected to"));
                }
                if !dialling.insert(address) {
                    fault(format!("is dialling {address} twice"));
                }
            }
            if let Some(overlay) = &node.config().overlay {
                // A link is one connection, used both ways: past a grace period, every
                // connection this node holds with an overlay node is a link of its view,
                // and there is one per peer.
                let mut settled: BTreeMap<NodeId, usize> = BTreeMap::new();
                for link in host.ends.iter().filter_map(|&l| self.link(l)) {
                    let side = usize::from(link.nodes[0] != id);
                    let peer = link.nodes[1 - side];
                    if link.is_open(side)
                        && peer != id
                        && self.runs_overlay(peer)
                        && self.now.since(link.opened) > LINK_GRACE
                    {
                        *settled.entry(peer).or_insert(0) += 1;
                    }
                }
                let view: BTreeSet<NodeId> =
                    node.active_view().filter_map(|a| self.node_at(a)).collect();
                for (peer, count) in settled {
                    if count > 1 {
                        fault(format!(
                            "holds {count} connections with {peer}, open over {LINK_GRACE:?}: a link is one"
                        ));
                    }
                    if !view.contains(&peer) && !connected.contains(&Some(peer)) {
                        fault(format!(
                            "holds a connection with {peer}, open over {LINK_GRACE:?}, that is not a link of its active view"
                        ));
                    }
                }
                let linked: BTreeSet<NodeId> = host
                    .ends
                    .iter()
                    .filter_map(|&link| self.link(link))
                    .flat_map(|link| link.nodes)
                    .filter(|&peer| peer != id)
                    .collect();
                let mut viewed = BTreeSet::new();
                for address in node.active_view() {
                    let target = self.node_at(address);
                    if target == Some(id) {
                        fault(format!("its active view lists itself ({address})"));
                    } else if !viewed.insert(address) {
                        fault(format!("its active view lists {address} twice"));
                    } else if !target.is_some_and(|t| linked.contains(&t)) {
                        fault(format!(
                            "its active view lists {address}, but it holds no open connection there"
                        ));
                    }
                }
                if viewed.len() > overlay.active {
                    fault(format!(
                        "its active view holds {} peers, over its bound of {}",
                        viewed.len(),
                        overlay.active
                    ));
                }
            }
            let mut hashes = BTreeSet::new();
            for tx in node.pool() {
                if !hashes.insert(tx.hash()) {
                    fault(format!("pool holds {} twice", tx.short_hash()));
                }
            }
        }
        found
    }

    /// How many violations were seen as they happened (only the first 1000 are kept).
    pub fn violation_count(&self) -> u64 {
        self.violation_count
    }

    /// The share of (transaction added, node) pairs where the node holds the transaction
    /// (running) or stored it (down); 1.0 when no transaction was added.
    pub fn delivered(&self) -> f64 {
        self.delivered_to(self.nodes())
    }

    /// The share of (transaction added, node of `nodes`) pairs where the node holds the
    /// transaction; 1.0 when there are none.
    pub(super) fn delivered_to(&self, nodes: impl Iterator<Item = NodeId>) -> f64 {
        let nodes: Vec<NodeId> = nodes.collect();
        let pairs = self.transactions.len() * nodes.len();
        if pairs == 0 {
            return 1.0;
        }
        let held: usize = nodes
            .iter()
            .map(|&id| {
                self.transactions
                    .iter()
                    .filter(|tx| self.has_transaction(id, tx.hash()))
                    .count()
            })
            .sum();
        held as f64 / pairs as f64
    }

    /// Whether every running node's `connectedAddresses` holds every other running node
    /// (vacuously true with fewer than two).
    pub fn is_full_mesh(&self) -> bool {
        let live = self.live_nodes().count();
        self.live_nodes().all(|id| {
            let reached: BTreeSet<NodeId> = self
                .connected_addresses(id)
                .iter()
                .filter_map(|a| self.node_at(a))
                .filter(|&peer| peer != id && self.is_live(peer))
                .collect();
            reached.len() + 1 == live
        })
    }

    /// When every node added was first running and in one full mesh, if ever.
    pub fn first_full_mesh(&self) -> Option<Time> {
        self.first_full_mesh
    }

    /// Whether a node is made to run in overlay mode (running or not).
    fn runs_overlay(&self, id: NodeId) -> bool {
        self.hosts
            .get(id.0)
            .is_some_and(|h| h.config.overlay.is_some())
    }

    // ----- violations as they happen ---------------------------------------------------

    pub(super) fn violation(&mut self, node: NodeId, what: String) {
        self.violation_count += 1;
        self.log.write_violation(self.now, node, &what);
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                at: self.now,
                node,
                what,
            });
        }
    }

    /// A node must not dial itself (by any of its names), a server it holds a dialled
    /// connection to, or one it is dialling already.
    pub(super) fn check_dial(&mut self, id: NodeId, address: &Address) {
        let target = self.node_at(address);
        let host = &self.hosts[id.0];
        let mut faults = Vec::new();
        if target == Some(id) || *address == host.address || host.config.aliases.contains(address) {
            faults.push(format!("dials itself ({address})"));
        } else {
            if target.is_some_and(|t| host.out.contains_key(&t)) {
                faults.push(format!("dials {address}, which it is connected to"));
            }
            let twice = host
                .dialling
                .values()
                .any(|a| a == address || (target.is_some() && self.node_at(a) == target));
            if twice {
                faults.push(format!("dials {address} a second time at once"));
            }
        }
        for fault in faults {
            self.violation(id, fault);
        }
    }

    /// A HANDSHAKE must list the sender first, then only servers it holds an open
    /// dialled connection to, among them the one it is sent on (`server`). A dial-only
    /// node's lists nothing and says it is dial-only.
    pub(super) fn check_handshake(&mut self, id: NodeId, server: Option<NodeId>, text: &str) {
        let host = &self.hosts[id.0];
        let mut faults = Vec::new();
        match frame::decode(text, usize::MAX) {
            Ok(Frame::Handshake {
                addresses,
                dial_only,
                ..
            }) if host.config.dial_only => {
                if !addresses.is_empty() || !dial_only {
                    faults.push(format!(
                        "a dial-only node sent a HANDSHAKE that lists addresses or does not say it is dial-only: {text}"
                    ));
                }
            }
            Ok(Frame::Handshake {
                addresses: list, ..
            }) => {
                match list.first().map(|first| first.parse::<Address>()) {
                    Some(Ok(first)) if first == host.address => {}
                    _ => faults.push(format!(
                        "sent a HANDSHAKE that does not list its own address first: {text}"
                    )),
                }
                let mut listed = BTreeSet::new();
                for entry in list.iter().skip(1) {
                    let target = entry.parse::<Address>().ok().and_then(|a| self.node_at(&a));
                    match target {
                        Some(t) if host.out.contains_key(&t) => {
                            listed.insert(t);
                        }
                        _ => faults.push(format!(
                            "sent a HANDSHAKE listing {entry}, which is not an open connection of it"
                        )),
                    }
                }
                // An overlay node's HANDSHAKE asks for no dial back: it need not list
                // the connection it goes on (that may be a link being made).
                if let Some(server) = server.filter(|_| host.config.overlay.is_none()) {
                    if !listed.contains(&server) {
                        faults.push(format!(
                            "sent a HANDSHAKE to {server} that does not list the connection it is sent on"
                        ));
                    }
                }
            }
            _ => faults.push(format!("sent a HANDSHAKE that does not decode: {text}")),
        }
        for fault in faults {
            self.violation(id, fault);
        }
    }

    // ----- who is connected to whom, kept up to date for `first_full_mesh` --------------

    fn counts_in_mesh(&self, a: NodeId, b: NodeId) -> bool {
        a != b && self.hosts[a.0].is_up() && self.hosts[b.0].is_up()
    }

    pub(super) fn view_add(&mut self, from: NodeId, to: NodeId) {
        let count = self.hosts[from.0].out.entry(to).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.hosts[to.0].dialled_by.insert(from);
            if self.counts_in_mesh(from, to) {
                self.mesh_pairs += 1;
            }
        }
    }

    pub(super) fn view_remove(&mut self, from: NodeId, to: NodeId) {
        let Some(count) = self.hosts[from.0].out.get_mut(&to) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.hosts[from.0].out.remove(&to);
            self.hosts[to.0].dialled_by.remove(&from);
            if self.counts_in_mesh(from, to) {
                self.mesh_pairs -= 1;
            }
        }
    }

    /// Call with the node just made `Up`: its view is empty, but others may still hold
    /// connections to its previous life they were not yet told about.
    pub(super) fn go_live(&mut self, id: NodeId) {
        self.live += 1;
        self.live_stored += self.hosts[id.0].store.len();
        let pairs = self.hosts[id.0]
            .dialled_by
            .iter()
            .filter(|&&peer| self.counts_in_mesh(peer, id))
            .count();
        self.mesh_pairs += pairs;
    }

    /// Call while the node is still `Up`.
    pub(super) fn go_down(&mut self, id: NodeId) {
        let incoming = self.hosts[id.0]
            .dialled_by
            .iter()
            .filter(|&&peer| self.counts_in_mesh(peer, id))
            .count();
        let out = std::mem::take(&mut self.hosts[id.0].out);
        let outgoing = out
            .keys()
            .filter(|&&peer| self.counts_in_mesh(id, peer))
            .count();
        for peer in out.keys() {
            self.hosts[peer.0].dialled_by.remove(&id);
        }
        self.mesh_pairs -= incoming + outgoing;
        self.live -= 1;
        self.live_stored -= self.hosts[id.0].store.len();
    }

    pub(super) fn after_change(&mut self) {
        self.overlay_after_change();
        if self.first_full_mesh.is_none()
            && self.live == self.hosts.len()
            && self.live > 0
            && self.mesh_pairs == self.live * (self.live - 1)
        {
            self.first_full_mesh = Some(self.now);
            self.log.write(
                self.now,
                None,
                format_args!("all {} nodes form one full mesh", self.live),
            );
        }
    }
}
