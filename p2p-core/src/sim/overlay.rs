//! The overlay as the simulator sees it: the graph of active-view links among running
//! nodes (`Node::active_view`). Each node's view is noted after every input it takes (a
//! few addresses: the cost per event does not grow with the network); whether the graph
//! is connected, a pass over every node, is sampled at most every
//! [`SimConfig::overlay_sample_every`] of virtual time, and only when a view changed or
//! a node started or stopped since the last sample.
//!
//! [`SimConfig::overlay_sample_every`]: super::SimConfig::overlay_sample_every

use std::time::Duration;

use super::driver::node_among;
use super::{NodeId, Outcome, RunReport, Sim};
use crate::node::Node;
use crate::time::Time;

/// What the samples of the overlay saw, kept as changes only.
#[derive(Debug, Default)]
pub(super) struct OverlayWatch {
    /// Hosts made with `Config::overlay` set: sampling is on while any is.
    pub(super) nodes: usize,
    /// When the next sample is due (at the first event at or after it).
    pub(super) next_sample: Time,
    /// `(when, connected)` at the first sample and at every sample that saw a change.
    pub(super) changes: Vec<(Time, bool)>,
    /// The first sample that found every node added running in one connected overlay.
    pub(super) first_formed: Option<Time>,
    /// Each node's active view as last noted: the port of each address and the node it
    /// names (empty while the node is not running).
    pub(super) views: Vec<Vec<(u16, Option<NodeId>)>>,
    /// Which nodes run in overlay mode now.
    pub(super) running: Vec<bool>,
    /// A view changed, or a node started or stopped, since the last sample.
    dirty: bool,
}

impl OverlayWatch {
    fn connected(&self) -> Option<bool> {
        self.changes.last().map(|&(_, connected)| connected)
    }

    fn slot(&mut self, id: NodeId) {
        if self.views.len() <= id.0 {
            self.views.resize_with(id.0 + 1, Vec::new);
            self.running.resize(id.0 + 1, false);
        }
    }

    /// Notes the active view of `node` (node `id` of `count`) as it is after an input.
    /// Compares ports first, which the view's addresses hold inline: the addresses of the
    /// simulated network differ by port alone.
    pub(super) fn note_view(&mut self, id: NodeId, node: &Node, count: usize) {
        self.slot(id);
        let noted = &mut self.views[id.0];
        let mut ports = node.active_view().map(|a| a.port());
        let same =
            noted.iter().all(|&(port, _)| ports.next() == Some(port)) && ports.next().is_none();
        if !same {
            noted.clear();
            noted.extend(node.active_view().map(|a| (a.port(), node_among(a, count))));
            self.dirty = true;
        }
    }

    /// A node started (`overlay`: in overlay mode) or stopped: its view is empty.
    pub(super) fn started_or_stopped(&mut self, id: NodeId, overlay: bool) {
        self.slot(id);
        self.views[id.0].clear();
        self.running[id.0] = overlay;
        self.dirty = true;
    }
}

impl Sim {
    // ----- what it sees ----------------------------------------------------------------

    /// The nodes a running node's active view names, in its order (empty in the full
    /// mesh, or if it is not running). Addresses that name no node are left out.
    pub fn active_view(&self, id: NodeId) -> Vec<NodeId> {
        self.node(id)
            .map(|node| node.active_view().filter_map(|a| self.node_at(a)).collect())
            .unwrap_or_default()
    }

    /// The longest active view of any running node (0 in the full mesh).
    pub fn active_view_max(&self) -> usize {
        self.live_nodes()
            .filter_map(|id| self.node(id))
            .map(|node| node.active_view().count())
            .max()
            .unwrap_or(0)
    }

    /// Whether the running overlay nodes form one connected graph of active-view links
    /// now (a link counts when both ends list each other; links to nodes that are not
    /// running do not count). True with fewer than two of them. A pass over every node.
    pub fn is_overlay_connected(&self) -> bool {
        let watch = &self.overlay;
        let running = |i: usize| watch.running.get(i).copied().unwrap_or(false);
        let mut parent: Vec<u32> = (0..watch.running.len() as u32).collect();
        let mut members = 0usize;
        for (i, view) in watch.views.iter().enumerate() {
            if !running(i) {
                continue;
            }
            members += 1;
            for peer in view.iter().filter_map(|&(_, peer)| peer) {
                // A link counts once both ends hold it (each end links on its own
                // frame, so for a moment only one may).
                let held_back = || {
                    watch.views[peer.0]
                        .iter()
                        .any(|&(_, back)| back == Some(NodeId(i)))
                };
                if peer.0 < i && running(peer.0) && held_back() {
                    union(&mut parent, i, peer.0);
                }
            }
        }
        if members < 2 {
            return true;
        }
        let mut root = None;
        for i in (0..parent.len()).filter(|&i| running(i)) {
            let r = find(&mut parent, i);
            match root {
                None => root = Some(r),
                Some(first) if first != r => return false,
                Some(_) => {}
            }
        }
        true
    }

    /// Whether the last sample of the overlay found it connected; `None` before the first
    /// sample (or when no node runs in overlay mode).
    pub fn overlay_sampled_connected(&self) -> Option<bool> {
        self.overlay.connected()
    }

    /// The samples of the overlay that saw a change, `(when, connected)`, the first
    /// sample included.
    pub fn overlay_changes(&self) -> &[(Time, bool)] {
        &self.overlay.changes
    }

    /// When a sample first found every node added running and the overlay connected.
    pub fn first_overlay_formed(&self) -> Option<Time> {
        self.overlay.first_formed
    }

    /// When the samples first found the overlay connected again after `at` (an event
    /// such as a mass crash at that instant): `Some(at)` if no sample after `at` saw it
    /// split (samples at `at` itself count as before it), `None` if it has not joined
    /// up since. Only as precise as the sampling period.
    pub fn overlay_reconnected_after(&self, at: Time) -> Option<Time> {
        let changes = &self.overlay.changes;
        let split = changes.partition_point(|&(when, _)| when <= at);
        let before = split.checked_sub(1).map(|i| changes[i].1);
        match changes[split..].first() {
            None => (before == Some(true)).then_some(at),
            Some(&(when, true)) => Some(when),
            Some(&(_, false)) => changes[split..]
                .iter()
                .find(|&&(_, connected)| connected)
                .map(|&(when, _)| when),
        }
    }

    /// Samples the overlay now, whether or not a sample is due (see
    /// [`Sim::overlay_changes`]).
    pub fn sample_overlay(&mut self) {
        self.overlay.dirty = false;
        let connected = self.is_overlay_connected();
        if self.overlay.connected() != Some(connected) {
            self.overlay.changes.push((self.now, connected));
        }
        if connected && self.overlay.first_formed.is_none() && self.live == self.hosts.len() {
            self.overlay.first_formed = Some(self.now);
            self.log.write(
                self.now,
                None,
                format_args!("all {} nodes form one connected overlay", self.live),
            );
        }
        self.overlay.next_sample = self.now + self.config.overlay_sample_every;
    }

    /// Whether every running node holds every transaction added and a sample taken since
    /// the last change of any view found the overlay connected: what ends an overlay run
    /// ([`Sim::run_until_overlay_converged`]). Cheap: counters and the last sample.
    pub fn is_overlay_converged(&self) -> bool {
        self.every_running_node_has_every_transaction()
            && self.overlay.connected() == Some(true)
            && !self.overlay.dirty
    }

    /// Whether every running node holds every transaction added (a counter, not a pass
    /// over the pools).
    pub fn every_running_node_has_every_transaction(&self) -> bool {
        self.live_stored == self.live * self.transactions.len()
    }

    /// The share of (transaction added, running node) pairs where the node holds the
    /// transaction; 1.0 when no transaction was added or no node runs. What `delivered`
    /// counts after a mass crash: the survivors.
    pub fn delivered_among_running(&self) -> f64 {
        self.delivered_to(self.live_nodes())
    }

    /// Runs until every running node holds every transaction added and a sample taken
    /// since the last change of any view found the overlay connected, for at most `limit` of virtual time and
    /// [`SimConfig::max_events_per_run`] events, or until nothing is left to happen. What
    /// ends an overlay run, which never goes quiet: its shuffles go on.
    ///
    /// [`SimConfig::max_events_per_run`]: super::SimConfig::max_events_per_run
    pub fn run_until_overlay_converged(&mut self, limit: Duration) -> RunReport {
        if self.overlay.connected().is_none() {
            self.sample_overlay();
        }
        self.run_until_done(limit, |sim| {
            sim.is_overlay_converged().then_some(Outcome::Converged)
        })
    }

    // ----- the simulator's work --------------------------------------------------------

    /// Samples the overlay if a sample is due; called after every change.
    pub(super) fn overlay_after_change(&mut self) {
        if self.overlay.nodes > 0 && self.overlay.dirty && self.now >= self.overlay.next_sample {
            self.sample_overlay();
        }
    }
}

fn find(parent: &mut [u32], mut i: usize) -> u32 {
    while parent[i] as usize != i {
        let up = parent[parent[i] as usize];
        parent[i] = up;
        i = up as usize;
    }
    i as u32
}

fn union(parent: &mut [u32], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb) as usize] = ra.min(rb);
    }
}
