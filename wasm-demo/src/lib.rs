//! p2p-core for a web page: wasm-bindgen glue and nothing else. Two faces: [`Demo`],
//! the simulator, and [`LivePeer`], a real node in the page joining the real network
//! (see the `live` module).
//!
//! [`Demo`] wraps one [`Sim`] and forwards every call to it; there is no protocol here.
//! JavaScript drives virtual time ([`Demo::advance`], [`Demo::step`]) and draws what
//! [`Demo::snapshot`] and [`Demo::node`] report as JSON text. Whatever the simulator
//! refuses (a node that is down, an address that does not parse, a negative time) is
//! thrown as a JavaScript `Error`; nothing here panics on input.
//!
//! Nodes are named by their index: node `i` serves `ws://localhost:<4001 + i>`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::Duration;

use p2p_core::sim::{
    Command, Counters, Event, FrameCounts, FrameKind, Latency, NodeId, NodeState, Scenario, Sim,
    SimConfig,
};
use p2p_core::{Address, Time};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wasm_bindgen::prelude::*;

mod live;
pub use live::LivePeer;

/// Story lines kept for the page's log.
const LOG_LINES: usize = 2000;

/// A simulated network, for a page to drive and draw.
#[wasm_bindgen]
pub struct Demo(Sim);

#[wasm_bindgen]
impl Demo {
    /// An empty network whose every choice follows from `seed` (a whole number up to
    /// 2^53), with one-way latencies drawn between `latencyMinMs` and `latencyMaxMs`.
    #[wasm_bindgen(constructor)]
    pub fn new(seed: f64, latency_min_ms: f64, latency_max_ms: f64) -> Result<Demo, JsValue> {
        let mut config = SimConfig::new(whole(seed, "seed")?);
        config.latency = latency(latency_min_ms, latency_max_ms)?;
        config.log_capacity = LOG_LINES;
        Ok(Demo(Sim::new(config)))
    }

    /// The simulator's own random run ([`Scenario`]): `nodes` nodes started within the
    /// first second, then over five seconds `transactions` transactions, `churn` crashes
    /// and restarts and, if `partition`, a split in two that heals.
    pub fn scenario(
        seed: f64,
        nodes: u32,
        transactions: u32,
        churn: u32,
        partition: bool,
        latency_min_ms: f64,
        latency_max_ms: f64,
    ) -> Result<Demo, JsValue> {
        let mut scenario = Scenario::new(nodes as usize, transactions as usize, 0);
        scenario.seed = whole(seed, "seed")?;
        scenario.latency = latency(latency_min_ms, latency_max_ms)?;
        scenario.churn = churn as usize;
        scenario.partition = partition;
        scenario.log_capacity = LOG_LINES;
        scenario.check_frames = true;
        scenario.build().map(Demo).map_err(js)
    }

    /// Adds a node, not started, and returns its index. `knownPeers` is its
    /// `known-peers.json` (addresses such as `"ws://localhost:4002"`); without it, the
    /// curriculum's `ws://localhost:4001` and `ws://localhost:4003`.
    #[wasm_bindgen(js_name = addNode)]
    pub fn add_node(&mut self, known_peers: Option<Vec<String>>) -> Result<u32, JsValue> {
        let id = match known_peers {
            None => self.0.add_node(),
            Some(peers) => {
                let peers = peers
                    .iter()
                    .map(|p| {
                        p.trim()
                            .parse::<Address>()
                            .map_err(|e| js(format!("{p:?}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.0.add_node_with(|config| config.known_peers = peers)
            }
        };
        index(id.map_err(js)?)
    }

    /// Starts a node for the first time.
    pub fn start(&mut self, node: u32) -> Result<(), JsValue> {
        self.0.start(id(node)).map_err(js)
    }

    /// Crashes a running node: its connections close and frames to it are lost; its
    /// stored pool stays.
    pub fn crash(&mut self, node: u32) -> Result<(), JsValue> {
        self.0.crash(id(node)).map_err(js)
    }

    /// Starts a crashed node again, with the pool it stored.
    pub fn restart(&mut self, node: u32) -> Result<(), JsValue> {
        self.0.restart(id(node)).map_err(js)
    }

    /// Cuts the nodes in `group` off from all the others until [`Demo::heal`].
    pub fn partition(&mut self, group: Vec<u32>) -> Result<(), JsValue> {
        let group = group.into_iter().map(id).collect();
        self.0.partition(&[group]).map_err(js)
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.0.heal()
    }

    /// Makes a new transaction at a running node, as `add-transaction` does, and returns
    /// its hash.
    #[wasm_bindgen(js_name = addTransaction)]
    pub fn add_transaction(&mut self, node: u32) -> Result<String, JsValue> {
        let tx = self.0.add_new_transaction(id(node)).map_err(js)?;
        Ok(tx.hash().to_owned())
    }

    /// Schedules `command` (`"start"`, `"crash"`, `"restart"`, `"addTransaction"` at
    /// `node`, or `"heal"`) at virtual time `atMs`; a command that cannot be carried out
    /// then is logged and skipped.
    pub fn schedule(
        &mut self,
        at_ms: f64,
        command: &str,
        node: Option<u32>,
    ) -> Result<(), JsValue> {
        let at = Time::from_micros(micros(at_ms)?);
        let node = || {
            node.map(id)
                .ok_or_else(|| js(format!("{command} needs a node")))
        };
        let command = match command {
            "start" => Command::Start(node()?),
            "crash" => Command::Crash(node()?),
            "restart" => Command::Restart(node()?),
            "addTransaction" => Command::AddTransaction(node()?),
            "heal" => Command::Heal,
            other => return Err(js(format!("unknown command {other:?}"))),
        };
        self.0.schedule(at, command);
        Ok(())
    }

    /// Runs every event of the next `ms` milliseconds of virtual time; returns how many
    /// there were.
    pub fn advance(&mut self, ms: f64) -> Result<f64, JsValue> {
        Ok(self.0.run_for(Duration::from_micros(micros(ms)?)) as f64)
    }

    /// Processes the next event alone, moving the clock to it, and says what it was, as
    /// JSON: `kind`, the nodes involved (`from`, `to`, `node`, by index) and `text`, a
    /// sentence for people naming nodes by their port; `undefined` when nothing is left
    /// to happen.
    pub fn step(&mut self) -> Result<Option<String>, JsValue> {
        let Some(event) = self.0.step() else {
            return Ok(None);
        };
        let view = StepView::of(&self.0, &event);
        serde_json::to_string(&view).map(Some).map_err(js)
    }

    /// The virtual time, in milliseconds.
    #[wasm_bindgen(js_name = nowMs)]
    pub fn now_ms(&self) -> f64 {
        ms(self.0.now())
    }

    /// How many nodes were added.
    #[wasm_bindgen(js_name = nodeCount)]
    pub fn node_count(&self) -> u32 {
        self.0.len() as u32
    }

    /// Everything the page draws, as JSON: time, nodes (state, whom they are connected to
    /// and dialling, pool size, side of the partition), frames in flight (type,
    /// endpoints, progress), counters, and whether the mesh is full.
    pub fn snapshot(&self) -> Result<String, JsValue> {
        serde_json::to_string(&Snapshot::of(&self.0)).map_err(js)
    }

    /// One node in full, as JSON: its `connectedAddresses`, the addresses it is
    /// dialling, its pool (transactions in arrival order) and its story lines.
    pub fn node(&self, node: u32) -> Result<String, JsValue> {
        let detail = NodeDetail::of(&self.0, id(node)).map_err(js)?;
        serde_json::to_string(&detail).map_err(js)
    }

    /// The last `lines` lines of the story, oldest first.
    pub fn log(&self, lines: u32) -> Vec<String> {
        let all: Vec<&str> = self.0.log().collect();
        let skip = all.len().saturating_sub(lines as usize);
        all[skip..].iter().map(|line| (*line).to_owned()).collect()
    }

    /// The last `lines` lines of the story, oldest first, as JSON: a list of `atMs`,
    /// `node` (its index; `null` for the simulator's own lines), `violation` (a broken
    /// invariant) and `text`, for a page to show without reading the words.
    pub fn story(&self, lines: u32) -> Result<String, JsValue> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Entry<'a> {
            at_ms: f64,
            node: Option<usize>,
            violation: bool,
            text: &'a str,
        }
        let all: Vec<Entry<'_>> = self
            .0
            .log_entries()
            .map(|e| Entry {
                at_ms: ms(e.at),
                node: e.node.map(|n| n.0),
                violation: e.violation,
                text: e.text,
            })
            .collect();
        let skip = all.len().saturating_sub(lines as usize);
        serde_json::to_string(&all[skip..]).map_err(js)
    }

    /// Every broken invariant of the protocol seen so far or true now; empty when all is
    /// well.
    pub fn check(&self) -> Vec<String> {
        self.0.check().iter().map(ToString::to_string).collect()
    }
}

fn js(error: impl Display) -> JsValue {
    JsError::new(&error.to_string()).into()
}

fn id(node: u32) -> NodeId {
    NodeId(node as usize)
}

fn index(id: NodeId) -> Result<u32, JsValue> {
    u32::try_from(id.0).map_err(js)
}

fn ms(time: Time) -> f64 {
    time.as_micros() as f64 / 1000.0
}

/// A whole number that JavaScript holds exactly.
fn whole(value: f64, what: &str) -> Result<u64, JsValue> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if value.is_finite() && (0.0..=MAX_SAFE).contains(&value) && value.fract() == 0.0 {
        Ok(value as u64)
    } else {
        Err(js(format!(
            "{what} must be a whole number from 0 to 2^53, not {value}"
        )))
    }
}

/// Milliseconds, to the microsecond.
fn micros(ms: f64) -> Result<u64, JsValue> {
    whole((ms * 1000.0).round(), "a time in ms")
        .map_err(|_| js(format!("{ms} is not a time in ms")))
}

fn latency(min_ms: f64, max_ms: f64) -> Result<Latency, JsValue> {
    let (min, max) = (micros(min_ms)?, micros(max_ms)?);
    Ok(Latency::new(
        Duration::from_micros(min),
        Duration::from_micros(max),
    ))
}

fn state_name(state: Option<NodeState>) -> &'static str {
    match state {
        Some(NodeState::NotStarted) | None => "notStarted",
        Some(NodeState::Up) => "up",
        Some(NodeState::Down) => "down",
    }
}

/// The `type` of a frame's text, or `"?"` if it has none.
fn frame_type(text: &str) -> Cow<'_, str> {
    #[derive(Deserialize)]
    struct TypeOnly<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
    }
    serde_json::from_str::<TypeOnly<'_>>(text).map_or(Cow::Borrowed("?"), |t| t.kind)
}

/// What one step did, for the page.
#[derive(Serialize)]
struct StepView {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<usize>,
    text: String,
}

impl StepView {
    fn of(sim: &Sim, event: &Event) -> StepView {
        // A node by its port, as the picture labels it.
        let name = |id: NodeId| match sim.address(id) {
            Some(address) => format!(":{}", address.port()),
            None => format!("node {}", id.0),
        };
        let view = |kind, from: Option<NodeId>, to: Option<NodeId>, text: String| StepView {
            kind,
            from: from.map(|n| n.0),
            to: to.map(|n| n.0),
            node: None,
            text,
        };
        match event {
            Event::Command { command, error } => {
                let mut text = match command {
                    Command::Start(id) => format!("start {}", name(*id)),
                    Command::Crash(id) => format!("crash {}", name(*id)),
                    Command::Restart(id) => format!("restart {}", name(*id)),
                    Command::AddTransaction(id) => format!("add a transaction at {}", name(*id)),
                    Command::Heal => "heal the partition".to_owned(),
                    Command::Partition(groups) => {
                        let groups: Vec<String> = groups
                            .iter()
                            .map(|g| g.iter().map(|&id| name(id)).collect::<Vec<_>>().join(" "))
                            .collect();
                        format!("partition into [{}]", groups.join("] | ["))
                    }
                };
                if let Some(error) = error {
                    text = format!("{text}: refused ({error})");
                }
                view("command", None, None, text)
            }
            Event::DialOpened { from, to } => view(
                "dialOpened",
                Some(*from),
                Some(*to),
                format!("{}'s dial to {} opened", name(*from), name(*to)),
            ),
            Event::DialFailed { from, address } => view(
                "dialFailed",
                Some(*from),
                None,
                format!("{}'s dial to {address} failed", name(*from)),
            ),
            Event::Delivered { from, to, kind } => view(
                "delivered",
                Some(*from),
                Some(*to),
                format!("{kind} from {} reached {}", name(*from), name(*to)),
            ),
            Event::Dropped { from, to, kind } => view(
                "dropped",
                Some(*from),
                Some(*to),
                format!("{kind} from {} to {} was lost", name(*from), name(*to)),
            ),
            Event::Closed { node, peer } => view(
                "closed",
                Some(*node),
                Some(*peer),
                format!(
                    "{} saw its connection with {} close",
                    name(*node),
                    name(*peer)
                ),
            ),
            Event::Timeout { node } => StepView {
                node: Some(node.0),
                ..view(
                    "timeout",
                    None,
                    None,
                    format!("{}'s timer fired", name(*node)),
                )
            },
            Event::Moot => view("moot", None, None, "news for a node that is gone".into()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    now_ms: f64,
    nodes: Vec<NodeView<'a>>,
    frames: Vec<FrameView<'a>>,
    counters: CountersView,
    /// Distinct transactions added at any node.
    transactions: usize,
    /// The share of (transaction, node) pairs where the node holds the transaction.
    delivered: f64,
    full_mesh: bool,
    first_full_mesh_ms: Option<f64>,
    violations: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeView<'a> {
    id: usize,
    address: Option<&'a Address>,
    state: &'static str,
    /// The nodes its `connectedAddresses` reach.
    connected: Vec<usize>,
    /// The nodes it is dialling (addresses that reach no node are left out).
    dialling: Vec<usize>,
    pool: usize,
    group: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FrameView<'a> {
    from: usize,
    to: usize,
    #[serde(rename = "type")]
    kind: Cow<'a, str>,
    sent_ms: f64,
    arrives_ms: f64,
    /// How far along it is, from 0 (sent) to 1 (arrives).
    progress: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CountersView {
    sent: BTreeMap<String, u64>,
    delivered: BTreeMap<String, u64>,
    dropped: BTreeMap<String, u64>,
    dials: u64,
    dials_failed: u64,
    connections: u64,
    closes: u64,
    events: u64,
}

impl<'a> Snapshot<'a> {
    fn of(sim: &'a Sim) -> Snapshot<'a> {
        let now = sim.now();
        let nodes = sim
            .nodes()
            .map(|id| {
                let dialling = sim.node(id).into_iter().flat_map(|n| n.dialling());
                NodeView {
                    id: id.0,
                    address: sim.address(id),
                    state: state_name(sim.state(id)),
                    connected: sim.connected_to(id).iter().map(|n| n.0).collect(),
                    dialling: dialling
                        .filter_map(|a| sim.node_at(a))
                        .map(|n| n.0)
                        .collect(),
                    pool: sim.pool(id).len(),
                    group: sim.partition_group(id).unwrap_or(0),
                }
            })
            .collect();
        let frames = sim
            .frames_in_flight_with_text()
            .into_iter()
            .map(|(f, text)| {
                let whole = f.arrives.since(f.sent).as_secs_f64();
                let done = now.since(f.sent).as_secs_f64();
                FrameView {
                    from: f.from.0,
                    to: f.to.0,
                    kind: frame_type(text),
                    sent_ms: ms(f.sent),
                    arrives_ms: ms(f.arrives),
                    progress: if whole > 0.0 {
                        (done / whole).min(1.0)
                    } else {
                        1.0
                    },
                }
            })
            .collect();
        Snapshot {
            now_ms: ms(now),
            nodes,
            frames,
            counters: CountersView::of(sim.counters()),
            transactions: sim.transactions().len(),
            delivered: sim.delivered(),
            full_mesh: sim.is_full_mesh(),
            first_full_mesh_ms: sim.first_full_mesh().map(ms),
            violations: sim.violation_count(),
        }
    }
}

impl CountersView {
    fn of(c: &Counters) -> CountersView {
        let by_kind = |counts: &FrameCounts| {
            [
                FrameKind::Handshake,
                FrameKind::Transaction,
                FrameKind::Other,
            ]
            .into_iter()
            .map(|kind| (kind.to_string(), counts.get(kind)))
            .collect()
        };
        CountersView {
            sent: by_kind(&c.sent),
            delivered: by_kind(&c.delivered),
            dropped: by_kind(&c.dropped),
            dials: c.dials,
            dials_failed: c.dials_failed,
            connections: c.connections,
            closes: c.closes,
            events: c.events,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeDetail<'a> {
    id: usize,
    address: Option<&'a Address>,
    state: &'static str,
    connected_addresses: &'a [Address],
    dialling: Vec<&'a Address>,
    /// The transactions as their JSON objects, in arrival order.
    pool: Vec<&'a RawValue>,
    log: Vec<&'a str>,
}

impl<'a> NodeDetail<'a> {
    fn of(sim: &'a Sim, id: NodeId) -> Result<NodeDetail<'a>, String> {
        let state = sim
            .state(id)
            .ok_or_else(|| format!("there is no node {}", id.0))?;
        let pool = sim
            .pool(id)
            .iter()
            .map(|tx| serde_json::from_str::<&RawValue>(tx.body()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        Ok(NodeDetail {
            id: id.0,
            address: sim.address(id),
            state: state_name(Some(state)),
            connected_addresses: sim.connected_addresses(id),
            dialling: sim
                .node(id)
                .into_iter()
                .flat_map(|n| n.dialling())
                .collect(),
            pool,
            log: sim.node_log(id).collect(),
        })
    }
}
