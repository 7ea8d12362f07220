//! The vocabulary of runs: a [`Command`] changes the network (start, crash, restart,
//! partition, heal, a new transaction), and a [`Scenario`] plans a whole run from a
//! handful of numbers (what the `simulate` example runs, kept here so that tests and the
//! browser demo run the very same thing) and sums it up in a [`Summary`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::{Latency, NodeId, Outcome, Sim, SimConfig, SimError};
use crate::address::Address;
use crate::config::Overlay;
use crate::rng::Rng;
use crate::time::Time;

/// A change to the network, applied now with [`Sim::apply`] or later with
/// [`Sim::schedule`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start a node for the first time.
    Start(NodeId),
    /// Crash a running node.
    Crash(NodeId),
    /// Start a crashed node again, with its stored pool.
    Restart(NodeId),
    /// Split the nodes into these groups; nodes in none form one more group.
    Partition(Vec<Vec<NodeId>>),
    /// Undo the partition.
    Heal,
    /// Make a new transaction at this node or, if it is not running, at the next running
    /// node after it.
    AddTransaction(NodeId),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Start(id) => write!(f, "start {id}"),
            Command::Crash(id) => write!(f, "crash {id}"),
            Command::Restart(id) => write!(f, "restart {id}"),
            Command::Partition(groups) => {
                f.write_str("partition into ")?;
                for (i, group) in groups.iter().enumerate() {
                    f.write_str(if i == 0 { "[" } else { " | [" })?;
                    for (j, id) in group.iter().enumerate() {
                        write!(f, "{}{}", if j == 0 { "" } else { " " }, id.0)?;
                    }
                    f.write_str("]")?;
                }
                Ok(())
            }
            Command::Heal => f.write_str("heal the partition"),
            Command::AddTransaction(id) => write!(f, "add a transaction at {id}"),
        }
    }
}

/// Mixed into the seed for the plan, so that the plan's random numbers and the
/// simulator's are not the same sequence.
const PLAN_SALT: u64 = 0x706c_616e_5f73_616c;

/// Mixed into the seed to choose the nodes of a mass crash, apart from the plan's other
/// draws (so that a run without one plans exactly as before).
const CRASH_SALT: u64 = 0x6372_6173_685f_7361;

/// A run: nodes start at random times, then (after a settling time, if any) transactions
/// enter at random nodes while some nodes crash and restart and the network may split in
/// two for a while; then it runs until quiet (the full mesh) or until converged (the
/// overlay, whose periodic shuffles never let it go quiet).
///
/// Everything, the plan included, follows from [`Scenario::seed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// How many nodes (ports 4001 on).
    pub nodes: usize,
    /// How many transactions enter, each at a random node.
    pub transactions: usize,
    /// The one seed of the run.
    pub seed: u64,
    /// One-way latency of the network.
    pub latency: Latency,
    /// How many distinct random nodes crash, each restarting a little later (at most
    /// `nodes`).
    pub churn: usize,
    /// Whether the network splits in two halves for a while during the traffic.
    pub partition: bool,
    /// Nodes start at random times in `[0, start_window]`.
    pub start_window: Duration,
    /// Transactions, crashes and the partition happen at random times in the
    /// `traffic_window` after the start window.
    pub traffic_window: Duration,
    /// After the plan is done, how much longer the run may take to go quiet.
    pub quiet_limit: Duration,
    /// Story lines kept (see [`SimConfig::log_capacity`]); 0 by default, for speed.
    pub log_capacity: usize,
    /// Check every HANDSHAKE sent (see [`SimConfig::check_frames`]); off by default.
    pub check_frames: bool,
    /// Record how transactions spread (see [`SimConfig::measure_spread`]), for the
    /// summary's `rmr` and `ldh_max`; on by default.
    pub measure_spread: bool,
    /// Every node in overlay mode with these settings (see `Config::overlay`); `None`,
    /// the default, is the full mesh.
    pub overlay: Option<Overlay>,
    /// Time between the start window and the traffic window, for the network to settle
    /// before what is measured; zero by default.
    pub settle: Duration,
    /// How many distinct random nodes crash at once, for good, as the traffic window
    /// opens (after `settle`); `delivered` then counts among the survivors, and the
    /// summary's `reconnect_ms` says when their overlay was connected again.
    pub crash_at_once: usize,
    /// Instead of `transactions` at random nodes and times, every running node makes one
    /// transaction at the same instant, as the traffic window opens.
    pub all_send: bool,
    /// Overlay runs: how long to run on after converging, so that copies still on their
    /// way count in `rmr`.
    pub tail: Duration,
}

impl Scenario {
    /// `nodes` nodes and `transactions` transactions, no churn and no partition, 1–20 ms
    /// latency, starts within 1 s and traffic within the 5 s after.
    pub fn new(nodes: usize, transactions: usize, seed: u64) -> Scenario {
        Scenario {
            nodes,
            transactions,
            seed,
            latency: Latency::default(),
            churn: 0,
            partition: false,
            start_window: Duration::from_secs(1),
            traffic_window: Duration::from_secs(5),
            quiet_limit: Duration::from_secs(600),
            log_capacity: 0,
            check_frames: false,
            measure_spread: true,
            overlay: None,
            settle: Duration::ZERO,
            crash_at_once: 0,
            all_send: false,
            tail: Duration::from_secs(5),
        }
    }

    /// When the traffic window opens: after the start window and the settling time.
    pub fn traffic_starts(&self) -> Time {
        Time::ZERO + self.start_window + self.settle
    }

    /// The nodes the mass crash takes (see [`Scenario::crash_at_once`]), in order.
    pub fn crashed(&self) -> Vec<NodeId> {
        let mut rng = Rng::new(self.seed ^ CRASH_SALT);
        let mut order: Vec<usize> = (0..self.nodes).collect();
        shuffle(&mut order, &mut rng);
        let mut chosen: Vec<NodeId> = order
            .into_iter()
            .take(self.crash_at_once)
            .map(NodeId)
            .collect();
        chosen.sort_unstable();
        chosen
    }

    /// The plan: every command and when, by time.
    pub fn plan(&self) -> Vec<(Time, Command)> {
        let mut rng = Rng::new(self.seed ^ PLAN_SALT);
        let n = self.nodes;
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let (start, window) = (micros(self.start_window), micros(self.traffic_window));
        let at = |offset: u64| Time::from_micros(offset);
        let mut plan = Vec::new();
        for i in 0..n {
            plan.push((at(rng.range(0, start)), Command::Start(NodeId(i))));
        }
        if n == 0 {
            return plan;
        }
        // The traffic window opens here (`start` itself unless there is a settling time).
        let start = start + micros(self.settle);
        let crashed = self.crashed();
        for &id in &crashed {
            plan.push((at(start), Command::Crash(id)));
        }
        let last = n as u64 - 1;
        if self.all_send {
            for i in 0..n {
                if crashed.binary_search(&NodeId(i)).is_err() {
                    plan.push((at(start), Command::AddTransaction(NodeId(i))));
                }
            }
        } else {
            for _ in 0..self.transactions {
                let when = at(start + rng.range(0, window));
                let node = NodeId(rng.range(0, last) as usize);
                plan.push((when, Command::AddTransaction(node)));
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, &mut rng);
        for &i in order.iter().take(self.churn) {
            let crash = start + rng.range(0, window);
            let down = rng.range(window / 20, window / 4);
            plan.push((at(crash), Command::Crash(NodeId(i))));
            plan.push((at(crash + down), Command::Restart(NodeId(i))));
        }
        if self.partition && n >= 2 {
            let split = start + rng.range(0, window / 2);
            let lasting = rng.range(window / 5, window / 2);
            shuffle(&mut order, &mut rng);
            let (a, b) = order.split_at(n / 2);
            let mut groups = [a.to_vec(), b.to_vec()];
            for group in &mut groups {
                group.sort_unstable();
            }
            let groups = groups
                .into_iter()
                .map(|g| g.into_iter().map(NodeId).collect())
                .collect();
            plan.push((at(split), Command::Partition(groups)));
            plan.push((at(split + lasting), Command::Heal));
        }
        plan.sort_by_key(|(when, _)| *when);
        plan
    }

    /// The simulator with every node added and the plan scheduled, at time zero. Every
    /// node knows the curriculum's peers 4001 and 4003, those of them that exist.
    pub fn build(&self) -> Result<Sim, SimError> {
        let mut config = SimConfig::new(self.seed);
        config.latency = self.latency;
        config.log_capacity = self.log_capacity;
        config.check_frames = self.check_frames;
        config.measure_spread = self.measure_spread;
        config.overlay = self.overlay.clone();
        config.known_peers = [4001, 4003]
            .into_iter()
            .filter(|&port| usize::from(port - super::FIRST_PORT) < self.nodes)
            .map(Address::localhost)
            .collect();
        let mut sim = Sim::new(config);
        sim.add_nodes(self.nodes)?;
        for (when, command) in self.plan() {
            sim.schedule(when, command);
        }
        Ok(sim)
    }

    /// Builds the simulator, runs the plan and then until quiet (or the quiet limit), and
    /// sums it up. In overlay mode, instead of until quiet: until converged (every running
    /// node holds every transaction and the overlay is connected), then for
    /// [`Scenario::tail`] more, then (links come and go) until converged again.
    pub fn run(&self) -> Result<(Sim, Summary), SimError> {
        let mut sim = self.build()?;
        let end = self.plan().last().map_or(Time::ZERO, |(when, _)| *when);
        if self.overlay.is_none() {
            sim.run_until_quiet(end.since(Time::ZERO) + self.quiet_limit);
        } else {
            sim.run_until(end);
            let report = sim.run_until_overlay_converged(self.quiet_limit);
            sim.run_for(self.tail);
            if report.outcome == Outcome::Converged {
                // Links are traded and replaced all the time: the tail may end on one
                // being made. End on a converged state again, if one comes.
                sim.run_until_overlay_converged(self.quiet_limit);
            }
            sim.sample_overlay();
        }
        let summary = self.summary(&sim);
        Ok((sim, summary))
    }

    /// [`Summary::of`] the run of this scenario: after a mass crash, `delivered` counts
    /// among the survivors and `reconnect_ms` is set.
    pub fn summary(&self, sim: &Sim) -> Summary {
        let mut summary = Summary::of(sim, self.seed);
        if self.crash_at_once > 0 {
            summary.delivered = round(sim.delivered_among_running(), 1e6);
            if self.overlay.is_some() {
                let crash = self.traffic_starts();
                summary.reconnect_ms = Some(
                    sim.overlay_reconnected_after(crash)
                        .map(|at| at.since(crash).as_millis() as u64),
                );
            }
        }
        summary
    }
}

/// Fisher–Yates, driven by the run's generator.
fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        items.swap(i, j);
    }
}

/// The outcome of a run, as the `simulate` example prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Nodes in the run.
    pub nodes: usize,
    /// Its seed.
    pub seed: u64,
    /// Whether every running node was connected to every other at the end. In overlay
    /// mode: whether every running node held every transaction and the running nodes'
    /// overlay was connected.
    pub converged: bool,
    /// Virtual ms until every node first ran in one full mesh (overlay mode: in one
    /// connected overlay, as sampled); `None` if never.
    pub mesh_ms: Option<u64>,
    /// The share of (transaction, node) pairs where the node held the transaction at the
    /// end; 1.0 is all.
    pub delivered: f64,
    /// TRANSACTION frames sent, divided by the number of transactions.
    pub tx_frames_per_tx: f64,
    /// Overlay mode only (else left out of the JSON): every frame that carried
    /// transaction bodies (TRANSACTION, TXS, and the `TRANSACTIONS` frames all overlay
    /// pushes are), divided by the number of transactions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_frames_per_tx: Option<f64>,
    /// Frames of every type sent.
    pub frames_total: u64,
    /// Virtual time at the end, in ms.
    pub virtual_ms: u64,
    /// Relative message redundancy: copies of a transaction delivered per node it reached
    /// (its origin aside), minus one, averaged over the transactions; 0 is no duplicate.
    /// 0 when spread was not measured.
    pub rmr: f64,
    /// Last delivery hop: the most hops any transaction took to reach a node.
    pub ldh_max: u32,
    /// The most peers any running node holds open dials to (a full mesh: N - 1); in
    /// overlay mode, the longest active view.
    pub active_view_max: usize,
    /// Open connection ends per running node, on average (a full mesh: 2(N - 1)).
    pub connections_per_node: f64,
    /// After a mass crash in overlay mode: virtual ms from the crash until the
    /// survivors' overlay was (sampled) connected again, 0 if no sample saw it split;
    /// `Some(None)` (`null`) if it never joined up again. `None` without a mass crash,
    /// and then left out of the JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_ms: Option<Option<u64>>,
}

impl Summary {
    /// The summary of `sim` as it is now; `seed` is only reported.
    pub fn of(sim: &Sim, seed: u64) -> Summary {
        let counters = sim.counters();
        let transactions = sim.transactions().len();
        let per_tx = |frames: u64| {
            if transactions == 0 {
                0.0
            } else {
                frames as f64 / transactions as f64
            }
        };
        let overlay = sim.config().overlay.is_some();
        let (converged, formed, active_view_max) = if overlay {
            (
                sim.is_overlay_connected() && sim.every_running_node_has_every_transaction(),
                sim.first_overlay_formed(),
                sim.active_view_max(),
            )
        } else {
            (
                sim.is_full_mesh(),
                sim.first_full_mesh(),
                sim.connected_max(),
            )
        };
        Summary {
            nodes: sim.len(),
            seed,
            converged,
            mesh_ms: formed.map(Time::as_millis),
            delivered: round(sim.delivered(), 1e6),
            tx_frames_per_tx: round(per_tx(counters.sent.transaction), 1e3),
            body_frames_per_tx: overlay
                .then(|| round(per_tx(counters.sent.transaction + counters.packed), 1e3)),
            frames_total: counters.sent.total(),
            virtual_ms: sim.now().as_millis(),
            rmr: round(sim.spread().rmr(), 1e3),
            ldh_max: sim.spread().ldh_max(),
            active_view_max,
            connections_per_node: round(sim.connections_per_node(), 1e2),
            reconnect_ms: None,
        }
    }

    /// One JSON line, keys in the order of the fields.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// One JSON line with `wall_ms` (the real time the run took, which only the caller
    /// can measure) after the other keys.
    pub fn to_json_with_wall_ms(&self, wall_ms: u64) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            #[serde(flatten)]
            summary: &'a Summary,
            wall_ms: u64,
        }
        serde_json::to_string(&Line {
            summary: self,
            wall_ms,
        })
        .unwrap_or_default()
    }
}

fn round(value: f64, scale: f64) -> f64 {
    (value * scale).round() / scale
}
