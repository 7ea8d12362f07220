//! `bench`: real `p2p-node` processes (release build) on loopback beside the JavaScript test
//! node (`tests/interop/node.js`, which rewrites its whole pool file per transaction as the
//! curriculum's `writeTransactions` does), measured in the same run.
//!
//! Run it as `cargo run --release -p tests --bin bench -- --help`. It is a program, not a
//! test: nothing here fails on a figure, it reports what it measured, and says so plainly when
//! something did not finish in time.
//!
//! A transaction is "in the pool" when it is in the node's `transactions.json`, as a reader
//! polling the files sees it (the curriculum's users open that file): the headline figures
//! are taken on the files (see [`pool_files`]); the pools in memory (STATUS pool counts, an
//! observer peer the nodes push to) are a second column.
//!
//! What one run does for N nodes, each network in its own scratch folders, on ports 21000 to
//! 21999 (the `bench` block of the harness' port table):
//! - ours, started all at once (node i knows node i-1, a ring): time to full mesh;
//! - ours, started one after another (each knowing all earlier ones, the next started once
//!   the previous one listens): time to full mesh; then single transactions into node 1,
//!   timed until every pool file holds them, and by an observer peer until every node has
//!   passed them on;
//! - ours, a fresh network started the same way: a burst of the JavaScript node's size and
//!   the big burst into node 1 from one client connection (pre-serialised TRANSACTION
//!   frames), timed until every pool file holds them, and by STATUS pool counts; frames per
//!   transaction from the STATUS `sent` counters; peak resident memory; then single
//!   transactions again, with the pools full;
//! - the JavaScript node the same way, where it can (its pool files only: it writes its file
//!   as it takes each transaction in).
//!
//! With `--watchers reading` or `stalled`, each of our nodes in the networks of the single
//! trials and of the bursts also has a watcher (see [`Watchers`]) from the moment its mesh is
//! up, and the report says what the watchers saw.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_std::net::{TcpListener, TcpStream};
use async_std::task::{self, JoinHandle};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use clap::Parser;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tests::{
    address, ports, transactions, JsNode, Node, NodeSpec, Scratch, Status, TestTransaction,
};

use pool_files::PoolFiles;

/// The sweep: (N, our big burst, the burst both implementations get, single trials). Sized
/// so that the whole sweep, JavaScript node included, takes about ten minutes on a 2-core
/// machine: the JavaScript node floods (N x (N-1) frames per transaction) and rewrites its
/// whole pool file per transaction, so its burst shrinks as N grows.
const SWEEP: [SweepPoint; 4] = [
    SweepPoint {
        nodes: 3,
        burst: 50_000,
        js_burst: 2_000,
        single: 50,
    },
    SweepPoint {
        nodes: 10,
        burst: 50_000,
        js_burst: 2_000,
        single: 50,
    },
    SweepPoint {
        nodes: 30,
        burst: 20_000,
        js_burst: 1_000,
        single: 30,
    },
    SweepPoint {
        nodes: 50,
        burst: 20_000,
        js_burst: 400,
        single: 30,
    },
];

/// Time between single-transaction trials (each one ends when every pool file holds it), as
/// when a person adds transactions by hand.
const TRIAL_GAP: Duration = Duration::from_millis(50);
/// How long our nodes get for anything before a measurement counts as timed out.
const OURS_LIMIT: Duration = Duration::from_secs(120);
/// How long a JavaScript network started all at once gets to form its mesh (it never will
/// unless every first dial happens to succeed: JavaScript nodes do not retry).
const JS_ALL_AT_ONCE_LIMIT: Duration = Duration::from_secs(10);
/// How often the mesh and our pools in memory (STATUS) are polled; the pool files are
/// polled every [`pool_files::POLL`].
const POLL: Duration = Duration::from_millis(2);
/// How long a node may take to write what it pooled before a burst into its file.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// The tag of the single-transaction trials' transactions (bursts are tagged 1, 2, ...).
const SINGLE_TAG: u32 = 9;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "bench",
    about = "Benchmark p2p-node against the JavaScript test node on loopback",
    long_about = "Benchmark p2p-node against the JavaScript test node (tests/interop), on loopback, \
        in scratch folders, with the release build of p2p-node (built first).\n\n\
        For N nodes it measures, for ours and for the JavaScript node in the same run:\n\
        - time from start to full mesh, nodes started one after another (each knowing all \
        earlier ones) and all at once (node i knowing node i-1, a ring);\n\
        - one transaction into one node: time until it is in every node's transactions.json \
        (the files polled every 1 ms), p50 and p99 over --single trials; beside it, in memory: \
        until an observer peer every node pushes new transactions to has it from all;\n\
        - a burst of transactions into one node, sent as fast as one client connection can: \
        time until every node's transactions.json holds them all, transactions/s; beside it, \
        ours in memory (STATUS pool counts);\n\
        - transaction frames sent per transaction (ours: STATUS `sent` counters; JavaScript: \
        frames its logs say arrived);\n\
        - peak resident memory per node (max VmHWM), at the end.\n\n\
        The headline figures are taken on the pool files, as a reader polling them sees \
        them; the in-memory ones are a second column. It prints a table and one JSON line \
        per N, and the ratios ours/JavaScript.",
    after_help = "Examples:\n  \
        cargo run --release -p tests --bin bench -- --nodes 10 --write BENCHMARKS.md\n  \
        cargo run --release -p tests --bin bench -- --sweep --write BENCHMARKS.md\n  \
        cargo run --release -p tests --bin bench -- --nodes 5 --burst 10000 --no-js\n\n\
        Ports 21000-21999 must be free. The sweep (N = 3, 10, 30, 50) ignores --nodes, \
        --burst, --js-burst and --single and uses its own sizes, printed with its results."
)]
struct Args {
    /// Nodes in each network (2 to 99).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..=99))]
    nodes: u16,
    /// Transactions in the big burst into one of our nodes.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    burst: u64,
    /// Transactions in the burst that both implementations get, for the ratio (the
    /// JavaScript node's cost grows with the square of it).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    js_burst: u64,
    /// Single-transaction trials (their p50 and p99 are reported).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    single: u64,
    /// Sweep N = 3, 10, 30, 50 (about ten minutes) and chart it (with --write).
    #[arg(long)]
    sweep: bool,
    /// Measure the JavaScript node too (the default).
    #[arg(long, overrides_with = "no_js")]
    js: bool,
    /// Measure only our node.
    #[arg(long, overrides_with = "js")]
    no_js: bool,
    /// Give up on a JavaScript measurement after this many seconds (reported as timed out).
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    js_timeout: u64,
    /// Write the results into this Markdown file (e.g. BENCHMARKS.md), replacing only the
    /// bench's own section (between `<!-- bench:figures:begin/end -->` for a run,
    /// `<!-- bench:sweep:begin/end -->` for a sweep); the file is made if missing.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Where a written sweep's SVG chart goes, relative to the Markdown file's folder.
    #[arg(long, default_value = "docs/bench-sweep.svg", value_name = "PATH")]
    chart: PathBuf,
    /// Watchers on our nodes while they are measured (one per node, attached once the mesh
    /// is up, in the networks of the single trials and of the bursts): `none`; `reading`,
    /// reading every EVENT frame as the live page does (what each saw is reported and
    /// checked against the transactions pooled); `stalled`, never reading (after the
    /// measurements, transactions are sent in small writes until every node drops its
    /// watcher: what it left unread is reported).
    #[arg(long, value_enum, default_value_t = WatcherMode::None, value_name = "MODE")]
    watchers: WatcherMode,
    /// Instead of the usual run: the full mesh against the overlay mode (`P2P_OVERLAY=on`),
    /// in the same run. Two fresh networks of --nodes of our nodes, started one after
    /// another (each knowing all earlier ones), the first in the full mesh, the second in
    /// the overlay (ready once every node has a link and the links form one connected
    /// graph; then until its tree settles, then 2 s more); each gets one burst of --burst into node 1, timed until
    /// every transactions.json holds it (and in memory). Reports both, overlay tx/s over
    /// mesh tx/s, connections per node, frames per transaction and peak memory; with
    /// --write, into the `<!-- bench:overlay:begin/end -->` section.
    #[arg(long, conflicts_with_all = ["sweep", "watchers", "js", "js_burst", "single"])]
    overlay: bool,
}

#[derive(Debug, Clone, Copy)]
struct SweepPoint {
    nodes: u16,
    burst: u64,
    js_burst: u64,
    single: u64,
}

fn main() {
    let args = Args::parse();
    let command = command_line();
    let bin = build_release_node();
    // The harness starts whatever P2P_NODE_BIN names: the release build, for the bench.
    std::env::set_var("P2P_NODE_BIN", &bin);
    eprintln!("bench: p2p-node is {}", bin.display());
    // The overlay comparison runs only nodes of ours.
    let js = !args.no_js && !args.overlay && js_available();
    let machine = Machine::read();
    let js_timeout = Duration::from_secs(args.js_timeout);
    if args.overlay {
        let report = task::block_on(run_overlay(args.nodes, args.burst));
        print_overlay(&report);
        if let Some(path) = &args.write {
            write_overlay(path, &command, &machine, &report);
        }
    } else if args.sweep {
        let mut reports = Vec::new();
        for point in SWEEP {
            let report = task::block_on(run(point, js, js_timeout, args.watchers));
            print_report(&report);
            reports.push(report);
        }
        print_sweep(&reports);
        if let Some(path) = &args.write {
            write_sweep(path, &args.chart, &command, &machine, &reports);
        }
    } else {
        let point = SweepPoint {
            nodes: args.nodes,
            burst: args.burst,
            js_burst: args.js_burst,
            single: args.single,
        };
        let report = task::block_on(run(point, js, js_timeout, args.watchers));
        print_report(&report);
        if let Some(path) = &args.write {
            write_figures(path, &command, &machine, &report);
        }
    }
}

/// The command as a person would type it again.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut line = "cargo run --release -p tests --bin bench --".to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(&arg);
    }
    line
}

/// Builds `p2p-node` in release mode (a no-op when up to date) and returns its path.
fn build_release_node() -> PathBuf {
    tests::build_p2p_node(true).unwrap_or_else(|message| panic!("{message}"))
}

fn js_available() -> bool {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("bench: `node` not found: the JavaScript node is left out");
        return false;
    }
    // Installs tests/interop/node_modules from its lockfile if missing; panics saying why not.
    tests::ensure_interop_installed();
    true
}

// ---------------------------------------------------------------------------------------
// Results

/// A figure, or why there is none (timed out, did not form, ...).
type Measured = Result<f64, String>;

#[derive(Debug, Clone)]
struct Latency {
    /// Until it was in every node's transactions.json: the headline.
    files: Spread,
    /// Until the observer had it from every node: in every pool in memory, plus the hop to
    /// the observer.
    pushed: Spread,
    trials: usize,
    /// Transactions pooled per node when the trials ran.
    pooled: u64,
}

/// Single-transaction times over the trials.
#[derive(Debug, Clone, Copy)]
struct Spread {
    p50_ms: f64,
    p99_ms: f64,
    /// In the node it was sent to.
    origin_p50_ms: f64,
}

impl Spread {
    /// From each trial's time until in all nodes, and until in the node it was sent to.
    fn of(all: &mut [f64], origin: &mut [f64]) -> Spread {
        Spread {
            p50_ms: percentile(all, 0.50),
            p99_ms: percentile(all, 0.99),
            origin_p50_ms: percentile(origin, 0.50),
        }
    }
}

#[derive(Debug, Clone)]
struct Burst {
    size: u64,
    /// Time the client took to write every frame.
    send_ms: f64,
    /// When every node's transactions.json held them all: the headline; an error if some
    /// file did not within the limit, or held something else than it should.
    files: Result<Reached, String>,
    /// When every node held them all in memory (STATUS pool counts); ours only, as the
    /// JavaScript node writes its file as it takes each transaction in.
    memory: Option<Reached>,
    frames_per_tx: Measured,
    /// SYNC and TXS frames sent by all nodes over the burst (ours).
    catch_up: Option<(u64, u64)>,
}

/// When a burst was complete, from the first frame sent.
#[derive(Debug, Clone, Copy)]
struct Reached {
    /// In the node it was sent to.
    origin_ms: f64,
    /// In every node.
    all_ms: f64,
}

impl Reached {
    /// From each node's time, the node the burst was sent to first.
    fn of(times: &[Duration]) -> Reached {
        Reached {
            origin_ms: times.first().copied().map_or(f64::NAN, ms),
            all_ms: times.iter().max().copied().map_or(f64::NAN, ms),
        }
    }

    fn tx_per_s(&self, size: u64) -> f64 {
        size as f64 / (self.all_ms / 1000.0)
    }
}

impl Burst {
    /// Transactions/s into every pool file: the headline.
    fn files_tx_per_s(&self) -> Option<f64> {
        self.files.as_ref().ok().map(|r| r.tx_per_s(self.size))
    }

    /// Transactions/s into every pool in memory (ours).
    fn memory_tx_per_s(&self) -> Option<f64> {
        self.memory.map(|r| r.tx_per_s(self.size))
    }
}

#[derive(Debug, Clone)]
struct Memory {
    /// Largest VmHWM of any node, KiB.
    max_hwm_kib: u64,
    /// VmHWM of node 1, the one the bursts went into, KiB.
    first_hwm_kib: u64,
    /// Largest VmRSS now, KiB.
    max_rss_kib: u64,
    /// Transactions each node held.
    pooled: u64,
}

#[derive(Debug, Default, Clone)]
struct ImplReport {
    mesh_sequential: Option<Measured>,
    mesh_all_at_once: Option<Measured>,
    single: Option<Result<Latency, String>>,
    single_loaded: Option<Result<Latency, String>>,
    bursts: Vec<(u64, Result<Burst, String>)>,
    memory: Option<Result<Memory, String>>,
    /// What the watchers (`--watchers`) of each network saw, ours only.
    watched: Vec<Result<Watched, String>>,
}

impl ImplReport {
    fn burst(&self, size: u64) -> Option<&Result<Burst, String>> {
        self.bursts.iter().find(|(k, _)| *k == size).map(|(_, b)| b)
    }

    /// The burst of `size`, if it ran to the end.
    fn burst_ok(&self, size: u64) -> Option<&Burst> {
        self.burst(size).and_then(|b| b.as_ref().ok())
    }
}

#[derive(Debug, Clone)]
struct Report {
    point: SweepPoint,
    ours: ImplReport,
    js: Option<ImplReport>,
    seconds: f64,
    /// /proc/loadavg before and after: other work on the machine shows here.
    load: (String, String),
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

// ---------------------------------------------------------------------------------------
// One run

/// The port blocks of one run, inside the bench's 21000-21999.
mod block {
    pub(super) const OURS_ALL_AT_ONCE: u16 = 0;
    pub(super) const OURS_SEQUENTIAL: u16 = 100;
    pub(super) const OURS_BURST: u16 = 200;
    pub(super) const JS_ALL_AT_ONCE: u16 = 300;
    pub(super) const JS_SEQUENTIAL: u16 = 400;
    pub(super) const JS_BURST: u16 = 500;
    /// `--overlay`: the full mesh, then the overlay.
    pub(super) const OVERLAY_MESH: u16 = 600;
    pub(super) const OVERLAY: u16 = 700;
    pub(super) const OBSERVERS: u16 = 900;
}

fn port(block: u16, index: u16) -> u16 {
    ports::BENCH + block + index
}

async fn run(point: SweepPoint, js: bool, js_timeout: Duration, mode: WatcherMode) -> Report {
    let started = Instant::now();
    let load_before = load_average();
    let n = point.nodes;
    eprintln!(
        "bench: N = {n}, bursts {} and {}, {} single trials",
        point.js_burst, point.burst, point.single
    );
    let mut ours = ImplReport::default();

    eprintln!("bench: ours, all at once");
    {
        let (cluster, mesh) = OursCluster::start(n, block::OURS_ALL_AT_ONCE, Layout::Ring).await;
        ours.mesh_all_at_once = Some(mesh);
        drop(cluster);
    }

    eprintln!("bench: ours, one after another; single transactions");
    {
        let (mut cluster, mesh) =
            OursCluster::start(n, block::OURS_SEQUENTIAL, Layout::Sequential).await;
        let meshed = mesh.is_ok();
        ours.mesh_sequential = Some(mesh);
        if meshed {
            let mut watchers = Watchers::attach(mode, &cluster).await;
            let before = counted(&watchers);
            let pooled = cluster.min_pool().await;
            ours.single = Some(
                single_trials(
                    &cluster.addresses(),
                    &cluster.dirs(),
                    cluster.ports[0],
                    port(block::OBSERVERS, 0),
                    point.single as usize,
                    Duration::from_secs(5),
                    pooled,
                )
                .await,
            );
            if let Ok(w) = &mut watchers {
                w.check("single trials", &before, point.single).await;
            }
            ours.watched
                .extend(finish(watchers, "single trials", false, &mut cluster).await);
        }
    }

    eprintln!("bench: ours, bursts");
    {
        let (mut cluster, mesh) =
            OursCluster::start(n, block::OURS_BURST, Layout::Sequential).await;
        if let Err(e) = mesh {
            ours.bursts
                .push((point.js_burst, Err(format!("no mesh to burst into: {e}"))));
        } else {
            let mut watchers = Watchers::attach(mode, &cluster).await;
            let mut sizes = vec![point.js_burst];
            if point.burst != point.js_burst {
                sizes.push(point.burst);
            }
            for (index, size) in sizes.into_iter().enumerate() {
                let before = counted(&watchers);
                let result = cluster.burst(size, index as u32 + 1).await;
                ours.bursts.push((size, result));
                if let Ok(w) = &mut watchers {
                    w.check(
                        &format!("burst of {}", fmt_count(size as f64)),
                        &before,
                        size,
                    )
                    .await;
                }
            }
            let pooled = cluster.min_pool().await;
            ours.memory = Some(memory(&cluster.pids(), pooled));
            ours.single_loaded = Some(
                single_trials(
                    &cluster.addresses(),
                    &cluster.dirs(),
                    cluster.ports[0],
                    port(block::OBSERVERS, 1),
                    (point.single as usize).min(50),
                    Duration::from_secs(5),
                    pooled,
                )
                .await,
            );
            ours.watched
                .extend(finish(watchers, "bursts", true, &mut cluster).await);
        }
    }

    let js = if js {
        Some(run_js(point, js_timeout).await)
    } else {
        None
    };
    Report {
        point,
        ours,
        js,
        seconds: started.elapsed().as_secs_f64(),
        load: (load_before, load_average()),
    }
}

async fn run_js(point: SweepPoint, limit: Duration) -> ImplReport {
    let n = point.nodes;
    let mut report = ImplReport::default();

    eprintln!("bench: JavaScript, all at once");
    {
        let (cluster, mesh) = JsCluster::start(
            n,
            block::JS_ALL_AT_ONCE,
            Layout::Ring,
            JS_ALL_AT_ONCE_LIMIT.min(limit),
        )
        .await;
        report.mesh_all_at_once = Some(mesh);
        drop(cluster);
    }

    eprintln!("bench: JavaScript, one after another; single transactions");
    {
        let (cluster, mesh) =
            JsCluster::start(n, block::JS_SEQUENTIAL, Layout::Sequential, limit).await;
        let meshed = mesh.is_ok();
        report.mesh_sequential = Some(mesh);
        if meshed {
            report.single = Some(
                single_trials(
                    &cluster.addresses(),
                    &cluster.dirs(),
                    cluster.ports[0],
                    port(block::OBSERVERS, 2),
                    point.single as usize,
                    limit.min(Duration::from_secs(10)),
                    0,
                )
                .await,
            );
        }
    }

    eprintln!("bench: JavaScript, burst of {}", point.js_burst);
    {
        let (cluster, mesh) = JsCluster::start(n, block::JS_BURST, Layout::Sequential, limit).await;
        if let Err(e) = mesh {
            report
                .bursts
                .push((point.js_burst, Err(format!("no mesh to burst into: {e}"))));
        } else {
            let result = cluster.burst(point.js_burst, limit).await;
            let complete = result.is_ok();
            report.bursts.push((point.js_burst, result));
            let pooled = cluster.min_pool();
            report.memory = Some(memory(&cluster.pids(), pooled));
            if complete {
                report.single_loaded = Some(
                    single_trials(
                        &cluster.addresses(),
                        &cluster.dirs(),
                        cluster.ports[0],
                        port(block::OBSERVERS, 3),
                        (point.single as usize).min(20),
                        limit.min(Duration::from_secs(10)),
                        pooled,
                    )
                    .await,
                );
            }
        }
    }
    report
}

// ---------------------------------------------------------------------------------------
// Networks

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Started one after another, each once the previous one listens, each knowing all the
    /// earlier ones (as a person following the curriculum starts them).
    Sequential,
    /// Started all at once, node i knowing only node i-1 (node 1 knowing node N).
    Ring,
}

fn specs(n: u16, block: u16, layout: Layout) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| {
            let known: Vec<u16> = match layout {
                Layout::Sequential => (0..i).map(|j| port(block, j)).collect(),
                Layout::Ring => vec![port(block, (i + n - 1) % n)],
            };
            NodeSpec::new(port(block, i)).knowing(&known)
        })
        .collect()
}

/// Waits until something accepts TCP connections on `port`.
async fn wait_listening(port: u16, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing listens on port {port} after {limit:?}"));
        }
        task::sleep(Duration::from_millis(1)).await;
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn ws_connect(port: u16) -> Result<Ws, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot connect to port {port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (ws, _) = async_tungstenite::client_async(address(port), stream)
        .await
        .map_err(|e| format!("no WebSocket handshake with port {port}: {e}"))?;
    Ok(ws)
}

/// A connection kept open to one of our nodes to ask it for its STATUS again and again (it
/// is an accepted, unnamed connection: the node sends nothing else on it).
struct Probe {
    port: u16,
    ws: Ws,
}

impl Probe {
    async fn connect(port: u16, limit: Duration) -> Result<Probe, String> {
        let deadline = Instant::now() + limit;
        loop {
            match ws_connect(port).await {
                Ok(ws) => return Ok(Probe { port, ws }),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => task::sleep(Duration::from_millis(2)).await,
            }
        }
    }

    async fn status(&mut self) -> Result<Status, String> {
        let port = self.port;
        self.ws
            .send(Message::text(r#"{"type":"STATUS_REQUEST"}"#))
            .await
            .map_err(|e| format!("cannot ask port {port} for its status: {e}"))?;
        while let Some(message) = self.ws.next().await {
            let message = message.map_err(|e| format!("port {port}: {e}"))?;
            if let Message::Text(text) = message {
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if frame["type"] == "STATUS" {
                    return Status::parse(&frame);
                }
            }
        }
        Err(format!("port {port} closed the status connection"))
    }
}

async fn statuses(probes: &mut [Probe]) -> Vec<Result<Status, String>> {
    futures::future::join_all(probes.iter_mut().map(Probe::status)).await
}

fn others(addresses: &[String], own: &str) -> BTreeSet<String> {
    addresses
        .iter()
        .filter(|a| a.as_str() != own)
        .cloned()
        .collect()
}

/// N of our nodes, with a status probe to each.
struct OursCluster {
    nodes: Vec<Node>,
    probes: Vec<Probe>,
    ports: Vec<u16>,
    // Dropped last: the nodes are killed before their folders go.
    _scratch: Scratch,
}

impl OursCluster {
    /// Starts the network and times it from the first start to full mesh.
    async fn start(n: u16, block: u16, layout: Layout) -> (OursCluster, Measured) {
        OursCluster::start_in(n, block, layout, false).await
    }

    /// [`OursCluster::start`], with every node in the overlay mode (`P2P_OVERLAY=on`) if
    /// `overlay`: then timed until the overlay is connected ([`OursCluster::wait_overlay`]).
    async fn start_in(
        n: u16,
        block: u16,
        layout: Layout,
        overlay: bool,
    ) -> (OursCluster, Measured) {
        let scratch = Scratch::new();
        let mut specs = specs(n, block, layout);
        if overlay {
            specs = specs
                .into_iter()
                .map(|spec| spec.env("P2P_OVERLAY", "on"))
                .collect();
        }
        let dirs: Vec<PathBuf> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| scratch.node_folder(&format!("node-{}", i + 1), spec))
            .collect();
        let ports: Vec<u16> = specs.iter().map(|s| s.port).collect();
        let mut cluster = OursCluster {
            nodes: Vec::new(),
            probes: Vec::new(),
            ports,
            _scratch: scratch,
        };
        let started = Instant::now();
        let mut failed = None;
        match layout {
            Layout::Sequential => {
                for (dir, &port) in dirs.iter().zip(&cluster.ports) {
                    cluster.nodes.push(Node::start(dir));
                    if let Err(e) = wait_listening(port, Duration::from_secs(10)).await {
                        failed = Some(e);
                        break;
                    }
                }
            }
            Layout::Ring => {
                cluster.nodes = dirs.iter().map(|dir| Node::start(dir)).collect();
            }
        }
        if let Some(e) = failed {
            return (cluster, Err(e));
        }
        for &port in &cluster.ports {
            match Probe::connect(port, Duration::from_secs(10)).await {
                Ok(probe) => cluster.probes.push(probe),
                Err(e) => return (cluster, Err(e)),
            }
        }
        let mesh = if overlay {
            cluster.wait_overlay(started, OURS_LIMIT).await
        } else {
            cluster.wait_mesh(started, OURS_LIMIT).await
        };
        (cluster, mesh)
    }

    fn addresses(&self) -> Vec<String> {
        self.ports.iter().map(|&p| address(p)).collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Node::pid).collect()
    }

    fn dirs(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.dir().to_owned()).collect()
    }

    async fn wait_mesh(&mut self, started: Instant, limit: Duration) -> Measured {
        let addresses = self.addresses();
        let mut meshed = 0;
        loop {
            let all = statuses(&mut self.probes).await;
            let elapsed = started.elapsed();
            meshed = all
                .iter()
                .zip(&addresses)
                .filter(|(s, own)| {
                    s.as_ref()
                        .is_ok_and(|s| s.connected == others(&addresses, own))
                })
                .count()
                .max(meshed);
            if all.iter().zip(&addresses).all(|(s, own)| {
                s.as_ref()
                    .is_ok_and(|s| s.connected == others(&addresses, own))
            }) {
                return Ok(ms(elapsed));
            }
            if elapsed > limit {
                return Err(format!(
                    "no full mesh after {} s ({meshed} of {} nodes connected to all others)",
                    limit.as_secs(),
                    addresses.len()
                ));
            }
            task::sleep(POLL).await;
        }
    }

    /// Waits until every node reports (STATUS `overlay`) an active view that is not empty
    /// and the links (both directions together) join all nodes into one graph.
    async fn wait_overlay(&mut self, started: Instant, limit: Duration) -> Measured {
        let addresses = self.addresses();
        loop {
            let all = statuses(&mut self.probes).await;
            let elapsed = started.elapsed();
            let views: Vec<Option<Vec<String>>> = all
                .iter()
                .map(|s| s.as_ref().ok().and_then(active_view))
                .collect();
            let linked = views
                .iter()
                .filter(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
                .count();
            let components = overlay_components(&addresses, &views);
            if linked == addresses.len() && components == 1 {
                return Ok(ms(elapsed));
            }
            if elapsed > limit {
                return Err(format!(
                    "no connected overlay after {} s ({linked} of {} nodes with a link, {components} \
                     parts)",
                    limit.as_secs(),
                    addresses.len()
                ));
            }
            task::sleep(POLL.max(Duration::from_millis(20))).await;
        }
    }

    async fn min_pool(&mut self) -> u64 {
        statuses(&mut self.probes)
            .await
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.pool))
            .min()
            .unwrap_or(0)
    }

    /// Sends `size` transactions into node 1 on one client connection and waits until every
    /// node's transactions.json holds them, and meanwhile until every pool in memory does
    /// (STATUS pool counts).
    async fn burst(&mut self, size: u64, tag: u32) -> Result<Burst, String> {
        let before: Vec<Status> = statuses(&mut self.probes)
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let pooled: Vec<u64> = before.iter().map(|s| s.pool).collect();
        let mut sending = Sending::start(self.ports[0], &self.dirs(), &pooled, size, tag).await?;
        let (memory, files) = futures::join!(
            self.wait_pools(&before, size, sending.started),
            sending.files_complete(OURS_LIMIT)
        );
        let (memory, send) = sending.finish(memory).await?;
        let (frames_per_tx, catch_up) = self.settled_frames(&before, size).await;
        Ok(Burst {
            size,
            send_ms: ms(send),
            files,
            memory: Some(memory),
            frames_per_tx,
            catch_up,
        })
    }

    /// Waits until every node's pool in memory holds `size` more than `before` (STATUS pool
    /// counts).
    async fn wait_pools(
        &mut self,
        before: &[Status],
        size: u64,
        started: Instant,
    ) -> Result<Reached, String> {
        let mut done: Vec<Option<Duration>> = vec![None; self.probes.len()];
        loop {
            let now = statuses(&mut self.probes).await;
            let elapsed = started.elapsed();
            for ((slot, status), base) in done.iter_mut().zip(&now).zip(before) {
                if slot.is_none() && status.as_ref().is_ok_and(|s| s.pool >= base.pool + size) {
                    *slot = Some(elapsed);
                }
            }
            if done.iter().all(Option::is_some) {
                return Ok(Reached::of(&done.into_iter().flatten().collect::<Vec<_>>()));
            }
            if elapsed > OURS_LIMIT {
                let held: Vec<u64> = now
                    .iter()
                    .zip(before)
                    .map(|(s, b)| s.as_ref().map_or(0, |s| s.pool.saturating_sub(b.pool)))
                    .collect();
                return Err(format!(
                    "timed out after {} s: the pools held {held:?} of {size}",
                    OURS_LIMIT.as_secs()
                ));
            }
            task::sleep(POLL).await;
        }
    }

    /// TRANSACTION, TRANSACTIONS and TXS frames sent since `before`, per transaction of the burst, once
    /// the counters stop moving (catch-up rounds follow a lull of 500 ms).
    /// Also says how many SYNC and TXS frames were sent.
    async fn settled_frames(
        &mut self,
        before: &[Status],
        size: u64,
    ) -> (Measured, Option<(u64, u64)>) {
        let count = |all: &[Result<Status, String>]| -> Result<(u64, u64, u64), String> {
            let (mut total, mut sync, mut txs) = (0, 0, 0);
            for (status, base) in all.iter().zip(before) {
                let status = status.as_ref().map_err(Clone::clone)?;
                let (Some(now), Some(then)) = (status.sent, base.sent) else {
                    return Err("this p2p-node reports no `sent` counters".to_owned());
                };
                total += now.carrying_transactions() - then.carrying_transactions();
                sync += now.sync - then.sync;
                txs += now.txs - then.txs;
            }
            Ok((total, sync, txs))
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = match count(&statuses(&mut self.probes).await) {
            Ok(counts) => counts,
            Err(e) => return (Err(e), None),
        };
        loop {
            task::sleep(Duration::from_millis(800)).await;
            let now = match count(&statuses(&mut self.probes).await) {
                Ok(counts) => counts,
                Err(e) => return (Err(e), None),
            };
            if now == last || Instant::now() > deadline {
                return (Ok(now.0 as f64 / size as f64), Some((now.1, now.2)));
            }
            last = now;
        }
    }
}

/// N JavaScript nodes.
struct JsCluster {
    nodes: Vec<JsNode>,
    ports: Vec<u16>,
    _scratch: Scratch,
}

impl JsCluster {
    async fn start(n: u16, block: u16, layout: Layout, limit: Duration) -> (JsCluster, Measured) {
        let scratch = Scratch::new();
        let specs = specs(n, block, layout);
        let dirs: Vec<PathBuf> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| scratch.node_folder(&format!("node-{}", i + 1), spec))
            .collect();
        let mut cluster = JsCluster {
            nodes: Vec::new(),
            ports: specs.iter().map(|s| s.port).collect(),
            _scratch: scratch,
        };
        let started = Instant::now();
        match layout {
            Layout::Sequential => {
                for (dir, &port) in dirs.iter().zip(&cluster.ports) {
                    cluster.nodes.push(JsNode::start(dir));
                    if let Err(e) = wait_listening(port, Duration::from_secs(20)).await {
                        return (cluster, Err(e));
                    }
                }
            }
            Layout::Ring => {
                cluster.nodes = dirs.iter().map(|dir| JsNode::start(dir)).collect();
            }
        }
        let mesh = cluster.wait_mesh(started, limit, layout).await;
        (cluster, mesh)
    }

    fn addresses(&self) -> Vec<String> {
        self.ports.iter().map(|&p| address(p)).collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(JsNode::pid).collect()
    }

    fn dirs(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.dir().to_owned()).collect()
    }

    /// Full mesh as the nodes' logs tell it: each logs its `connectedAddresses` whenever a
    /// dial opens or a dialled connection closes.
    async fn wait_mesh(&mut self, started: Instant, limit: Duration, layout: Layout) -> Measured {
        let addresses = self.addresses();
        loop {
            let meshed = self
                .nodes
                .iter()
                .zip(&addresses)
                .filter(|(node, own)| {
                    js_connected(&node.log_path()).is_some_and(|c| c == others(&addresses, own))
                })
                .count();
            let elapsed = started.elapsed();
            if meshed == addresses.len() {
                return Ok(ms(elapsed));
            }
            for node in &mut self.nodes {
                if !node.is_running() {
                    return Err(format!("{} exited", node.name()));
                }
            }
            if elapsed > limit {
                let why = if layout == Layout::Ring {
                    " (JavaScript nodes never retry a failed dial)"
                } else {
                    ""
                };
                return Err(format!(
                    "no full mesh after {} s: {meshed} of {} nodes connected to all others{why}",
                    limit.as_secs(),
                    addresses.len()
                ));
            }
            task::sleep(Duration::from_millis(5)).await;
        }
    }

    fn min_pool(&self) -> u64 {
        self.nodes
            .iter()
            .map(|node| pool_count(node.dir()))
            .min()
            .unwrap_or(0)
    }

    /// Sends `size` transactions into node 1 on one client connection and waits until
    /// every node's transactions.json holds them.
    async fn burst(&self, size: u64, limit: Duration) -> Result<Burst, String> {
        let pooled: Vec<u64> = self.nodes.iter().map(|n| pool_count(n.dir())).collect();
        let mut sending = Sending::start(self.ports[0], &self.dirs(), &pooled, size, 1).await?;
        let files = sending.files_complete(limit).await;
        let (files, send) = sending.finish(files).await?;
        // Frames between nodes, from the logs: each one arriving is logged as new or as a
        // duplicate; the burst's own frames from the client are taken off.
        let deadline = Instant::now() + limit;
        let mut last = self.logged_arrivals();
        let frames_per_tx = loop {
            task::sleep(Duration::from_millis(1000)).await;
            let now = self.logged_arrivals();
            if now == last {
                break Ok(now.saturating_sub(size) as f64 / size as f64);
            }
            if Instant::now() > deadline {
                break Err(format!(
                    "still passing duplicates on after {} s",
                    limit.as_secs()
                ));
            }
            last = now;
        };
        Ok(Burst {
            size,
            send_ms: ms(send),
            files: Ok(files),
            memory: None,
            frames_per_tx,
            catch_up: None,
        })
    }

    fn logged_arrivals(&self) -> u64 {
        self.nodes
            .iter()
            .map(|node| {
                let log = fs::read_to_string(node.log_path()).unwrap_or_default();
                (log.matches("] new transaction ").count()
                    + log.matches("] dropped duplicate transaction ").count())
                    as u64
            })
            .sum()
    }
}

/// The `connectedAddresses` a JavaScript node last logged.
fn js_connected(log: &Path) -> Option<BTreeSet<String>> {
    const MARK: &str = "connectedAddresses: ";
    let text = fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|line| line.contains(MARK))?;
    let list = &line[line.find(MARK)? + MARK.len()..];
    serde_json::from_str::<Vec<String>>(list.trim())
        .ok()
        .map(|list| list.into_iter().collect())
}

/// How many transactions `dir/transactions.json` holds, counted by their `"hash"` keys (a
/// file caught mid-rewrite counts low, never high).
fn pool_count(dir: &Path) -> u64 {
    fs::read(dir.join("transactions.json"))
        .map(|bytes| count_occurrences(&bytes, b"\"hash\"") as u64)
        .unwrap_or(0)
}

fn count_occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| *window == needle)
        .count()
}

/// A burst on its way: written by one client connection in the background, with what each
/// node's pool file will be once it holds the burst.
struct Sending {
    /// When the first frame went.
    started: Instant,
    /// Says how long the client took to write every frame.
    sender: JoinHandle<Result<Duration, String>>,
    files: PoolFiles,
    /// Each pool file's length once it holds the burst.
    expected: Vec<u64>,
    hashes: Vec<String>,
}

impl Sending {
    /// Once every pool file in `dirs` holds what its node pooled (`pooled`), starts sending
    /// `size` new transactions into the node at `port`, the node of `dirs[0]`.
    async fn start(
        port: u16,
        dirs: &[PathBuf],
        pooled: &[u64],
        size: u64,
        tag: u32,
    ) -> Result<Sending, String> {
        let burst = transactions(size as usize, tag);
        let files = PoolFiles::new(dirs);
        let added = pool_files::added_length(&burst);
        let expected = files
            .settled_lengths(pooled, SETTLE_LIMIT)
            .await?
            .into_iter()
            .map(|len| len + added)
            .collect();
        let hashes = burst.iter().map(|tx| tx.hash.clone()).collect();
        let frames = burst.iter().map(TestTransaction::frame).collect();
        let ws = ws_connect(port).await?;
        Ok(Sending {
            started: Instant::now(),
            sender: send_all(ws, frames),
            files,
            expected,
            hashes,
        })
    }

    /// Waits until every pool file is as long as it is once it holds the burst, then checks
    /// by reading each once that it does.
    async fn files_complete(&mut self, limit: Duration) -> Result<Reached, String> {
        let times = self
            .files
            .wait_for_lengths(&self.expected, self.started, limit)
            .await?;
        self.files.verify(&self.hashes, &self.expected)?;
        Ok(Reached::of(&times))
    }

    /// Stops the client if what was waited for failed; else waits until it has written
    /// every frame, and says how long that took.
    async fn finish<T>(self, waited: Result<T, String>) -> Result<(T, Duration), String> {
        match waited {
            Ok(value) => {
                let send = self
                    .sender
                    .await
                    .map_err(|e| format!("the client could not send the burst: {e}"))?;
                Ok((value, send))
            }
            Err(e) => {
                self.sender.cancel().await;
                Err(e)
            }
        }
    }
}

/// Writes every frame on `ws` as fast as it goes (one flush at the end; tungstenite writes
/// out whenever its buffer fills), in the background; returns how long it took.
fn send_all(mut ws: Ws, frames: Vec<String>) -> JoinHandle<Result<Duration, String>> {
    task::spawn(async move {
        let started = Instant::now();
        for frame in frames {
            ws.feed(Message::text(frame))
                .await
                .map_err(|e| e.to_string())?;
        }
        ws.flush().await.map_err(|e| e.to_string())?;
        let took = started.elapsed();
        // Kept open a moment: some servers drop what is unread when the client closes.
        task::spawn(async move {
            task::sleep(Duration::from_secs(30)).await;
            let _ = ws.close(None).await;
        });
        Ok(took)
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------
// Pool files: the headline figures

/// Each node's `transactions.json`, looked at as a reader polling the files sees it: a
/// transaction is in the pool once it is in the file (the curriculum's users open it).
///
/// Polling every millisecond must cost the nodes next to nothing, even at 50,000 pooled (a
/// 16 MB file) and with ten nodes on two cores. A node appends each new transaction at the
/// end of its file, before the closing `\n]`, so a single transaction is looked for in the
/// last few KiB only, and only in a file that changed since it was last read. A burst is
/// looked for by the file's length alone: `JSON.stringify(pool, null, 2)` prints each
/// transaction the same wherever it stands, so a file's length is set by the transactions it
/// holds, whatever their order, and the length a file will have once it holds the burst is
/// known before the first frame goes. Once reached, each file is read whole once to check
/// that it holds the burst and nothing twice.
mod pool_files {
    use std::collections::HashSet;
    use std::fs::{self, File};
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use async_std::task;
    use tests::{pool_hashes, pool_text, TestTransaction};

    /// How often the files are looked at.
    pub(super) const POLL: Duration = Duration::from_millis(1);
    /// How much of a file's end is read to find a new transaction: about a dozen of them.
    const TAIL: u64 = 4096;

    /// How many bytes `transactions` add to a pool file, whatever it held before: a file of
    /// n transactions is `[]` plus, for each one, its pretty-printed text and two bytes (the
    /// `,\n` between two, or the newlines after `[` and before `]`).
    pub(super) fn added_length(transactions: &[TestTransaction]) -> u64 {
        pool_text(transactions).len() as u64 - "[]".len() as u64
    }

    /// The pool files of one network.
    pub(super) struct PoolFiles {
        files: Vec<PoolFile>,
    }

    struct PoolFile {
        dir: PathBuf,
        path: PathBuf,
        /// The file as it was when its end was last read.
        read: Option<Stamp>,
    }

    /// What changes whenever a pool file's text does: our node replaces the file (a new
    /// inode), the JavaScript node rewrites it in place, and a pool only grows.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Stamp {
        inode: u64,
        len: u64,
        modified: (i64, i64),
    }

    impl PoolFile {
        fn len(&self) -> u64 {
            fs::metadata(&self.path).map_or(0, |m| m.len())
        }

        /// Whether the end of the file holds `needle`; a file unchanged since its end was
        /// last read is not read again.
        fn tail_holds(&mut self, needle: &[u8]) -> bool {
            let Ok(mut file) = File::open(&self.path) else {
                return false;
            };
            let Ok(meta) = file.metadata() else {
                return false;
            };
            let stamp = Stamp {
                inode: meta.ino(),
                len: meta.len(),
                modified: (meta.mtime(), meta.mtime_nsec()),
            };
            if self.read == Some(stamp) {
                return false;
            }
            let mut tail = Vec::with_capacity(TAIL as usize);
            let read = file
                .seek(SeekFrom::Start(stamp.len.saturating_sub(TAIL)))
                .and_then(|_| file.take(TAIL).read_to_end(&mut tail));
            if read.is_err() {
                return false;
            }
            self.read = Some(stamp);
            tail.windows(needle.len()).any(|window| window == needle)
        }
    }

    impl PoolFiles {
        /// The `transactions.json` of each of `dirs`.
        pub(super) fn new(dirs: &[PathBuf]) -> PoolFiles {
            let files = dirs
                .iter()
                .map(|dir| PoolFile {
                    dir: dir.clone(),
                    path: dir.join("transactions.json"),
                    read: None,
                })
                .collect();
            PoolFiles { files }
        }

        /// Waits until every file holds the transaction `hash`; says when each did, since
        /// `started`.
        pub(super) async fn wait_for_hash(
            &mut self,
            hash: &str,
            started: Instant,
            limit: Duration,
        ) -> Result<Vec<Duration>, String> {
            let needle = format!("\"{hash}\"");
            self.wait_each(started, limit, |file, _| file.tail_holds(needle.as_bytes()))
                .await
                .map_err(|short| {
                    format!(
                        "the transaction was in {} of {} pool files after {} s",
                        self.files.len() - short.len(),
                        self.files.len(),
                        limit.as_secs()
                    )
                })
        }

        /// Waits until each file is `expected[i]` bytes long or more; says when each was,
        /// since `started`.
        pub(super) async fn wait_for_lengths(
            &mut self,
            expected: &[u64],
            started: Instant,
            limit: Duration,
        ) -> Result<Vec<Duration>, String> {
            self.wait_each(started, limit, |file, i| file.len() >= expected[i])
                .await
                .map_err(|short| {
                    let shares: Vec<String> = short
                        .iter()
                        .map(|&i| {
                            format!(
                                "{:.0}%",
                                self.files[i].len() as f64 / expected[i] as f64 * 100.0
                            )
                        })
                        .collect();
                    format!(
                        "timed out after {} s: {} of {} pool files complete; the others at {} \
                         of their final length",
                        limit.as_secs(),
                        self.files.len() - short.len(),
                        self.files.len(),
                        shares.join(", ")
                    )
                })
        }

        /// Polls every [`POLL`] until `done` holds for every file (given the file and its
        /// index; not asked again once it held); says when each did, or which did not
        /// within `limit` of `started`.
        async fn wait_each(
            &mut self,
            started: Instant,
            limit: Duration,
            mut done: impl FnMut(&mut PoolFile, usize) -> bool,
        ) -> Result<Vec<Duration>, Vec<usize>> {
            let mut at: Vec<Option<Duration>> = vec![None; self.files.len()];
            loop {
                for (i, (slot, file)) in at.iter_mut().zip(&mut self.files).enumerate() {
                    if slot.is_none() && done(file, i) {
                        *slot = Some(started.elapsed());
                    }
                }
                if at.iter().all(Option::is_some) {
                    return Ok(at.into_iter().flatten().collect());
                }
                if started.elapsed() > limit {
                    return Err((0..at.len()).filter(|&i| at[i].is_none()).collect());
                }
                task::sleep(POLL).await;
            }
        }

        /// Each file's length once it holds exactly the `pooled[i]` transactions its node
        /// pooled (it may still be writing them).
        pub(super) async fn settled_lengths(
            &self,
            pooled: &[u64],
            limit: Duration,
        ) -> Result<Vec<u64>, String> {
            let deadline = Instant::now() + limit;
            let mut lengths = Vec::with_capacity(self.files.len());
            for (file, &want) in self.files.iter().zip(pooled) {
                loop {
                    // The same length before and after the read: the read saw that file, as
                    // a pool file that changes grows.
                    let len = file.len();
                    let held = pool_hashes(&file.dir).map(|hashes| hashes.len() as u64);
                    if held == Ok(want) && file.len() == len {
                        lengths.push(len);
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{} did not hold the {want} transactions its node pooled within \
                             {} s: {}",
                            file.path.display(),
                            limit.as_secs(),
                            held.map_or_else(|e| e, |n| format!("it holds {n}"))
                        ));
                    }
                    task::sleep(POLL * 10).await;
                }
            }
            Ok(lengths)
        }

        /// Reads each file whole: it must hold every one of `hashes`, no transaction twice,
        /// and be `expected[i]` bytes long (else its length did not mean what the wait took
        /// it to mean).
        pub(super) fn verify(&self, hashes: &[String], expected: &[u64]) -> Result<(), String> {
            for (file, &want) in self.files.iter().zip(expected) {
                let held = pool_hashes(&file.dir)?;
                let distinct: HashSet<&str> = held.iter().map(String::as_str).collect();
                let path = file.path.display();
                if distinct.len() != held.len() {
                    return Err(format!(
                        "{path} holds {} duplicate transactions",
                        held.len() - distinct.len()
                    ));
                }
                let missing = hashes
                    .iter()
                    .filter(|hash| !distinct.contains(hash.as_str()))
                    .count();
                if missing > 0 {
                    return Err(format!(
                        "{path} lacks {missing} of the burst's {} transactions",
                        hashes.len()
                    ));
                }
                let len = file.len();
                if len != want {
                    return Err(format!(
                        "{path} is {len} bytes long where its transactions make {want}"
                    ));
                }
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod unit {
        use super::*;
        use std::path::Path;
        use tests::{transactions, write_pool};

        /// A folder holding a pool file of `pool`, and the file watched.
        fn watched(pool: &[TestTransaction]) -> (tempfile::TempDir, PathBuf, PoolFiles) {
            let keep = tempfile::tempdir().unwrap();
            let dir = keep.path().to_owned();
            write_pool(&dir, pool);
            let files = PoolFiles::new(std::slice::from_ref(&dir));
            (keep, dir, files)
        }

        fn len(dir: &Path) -> u64 {
            fs::metadata(dir.join("transactions.json")).unwrap().len()
        }

        #[test]
        fn a_pool_file_grows_by_the_added_length_of_new_transactions_in_any_order() {
            let old = transactions(3, 1);
            let mut new = transactions(5, 2);
            let whole = |old: &[TestTransaction], new: &[TestTransaction]| {
                pool_text(&[old, new].concat()).len() as u64
            };
            assert_eq!(whole(&[], &new), "[]".len() as u64 + added_length(&new));
            assert_eq!(
                whole(&old, &new),
                pool_text(&old).len() as u64 + added_length(&new)
            );
            new.reverse();
            let mixed = [&new[..2], &old[..], &new[2..]].concat();
            assert_eq!(pool_text(&mixed).len() as u64, whole(&old, &new));
            assert_eq!(added_length(&[]), 0);
        }

        #[test]
        fn a_new_transaction_is_found_at_the_end_of_a_large_pool_file() {
            let pool = transactions(2_000, 1);
            let (_keep, _, mut files) = watched(&pool);
            let file = &mut files.files[0];
            let quoted = |tx: &TestTransaction| format!("\"{}\"", tx.hash);
            assert!(file.tail_holds(quoted(&pool[1_999]).as_bytes()));
            assert!(!file.tail_holds(quoted(&pool[0]).as_bytes()));
        }

        #[test]
        fn an_unchanged_file_is_not_read_again_and_a_replaced_one_is() {
            let pool = transactions(3, 1);
            let (_keep, dir, mut files) = watched(&pool[..2]);
            let needle = format!("\"{}\"", pool[2].hash);
            assert!(!files.files[0].tail_holds(needle.as_bytes()));
            let read = files.files[0].read;
            assert!(read.is_some());
            assert!(!files.files[0].tail_holds(needle.as_bytes()));
            assert_eq!(files.files[0].read, read);
            write_pool(&dir, &pool);
            assert!(files.files[0].tail_holds(needle.as_bytes()));
        }

        #[test]
        fn a_settled_file_gives_its_length_and_a_complete_one_passes_the_check() {
            let old = transactions(4, 1);
            let burst = transactions(6, 2);
            let (_keep, dir, files) = watched(&old);
            let settled = task::block_on(files.settled_lengths(&[4], Duration::from_secs(5)));
            assert_eq!(settled, Ok(vec![len(&dir)]));
            let expected = [len(&dir) + added_length(&burst)];
            write_pool(&dir, &[&burst[..3], &old[..], &burst[3..]].concat());
            let hashes: Vec<String> = burst.iter().map(|tx| tx.hash.clone()).collect();
            assert_eq!(files.verify(&hashes, &expected), Ok(()));
        }

        #[test]
        fn the_check_names_a_missing_or_doubled_transaction() {
            let burst = transactions(3, 2);
            let hashes: Vec<String> = burst.iter().map(|tx| tx.hash.clone()).collect();
            let (_keep, dir, files) = watched(&burst[..2]);
            let expected = ["[]".len() as u64 + added_length(&burst)];
            let missing = files.verify(&hashes, &expected).unwrap_err();
            assert!(missing.contains("lacks 1 of the burst's 3"), "{missing}");
            write_pool(&dir, &[&burst[..], &burst[..1]].concat());
            let twice = files.verify(&hashes, &expected).unwrap_err();
            assert!(twice.contains("1 duplicate"), "{twice}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The observer

/// A peer that every node dials and pushes new transactions to, and that notes when each
/// arrives: it introduces itself to each node with a plain HANDSHAKE naming itself, so our
/// nodes take it for a JavaScript node and the JavaScript nodes dial it as any peer.
struct Observer {
    names: Arc<Mutex<HashMap<usize, String>>>,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    listener: Option<JoinHandle<()>>,
}

struct Arrival {
    conn: usize,
    hash: String,
    at: Instant,
}

impl Observer {
    async fn bind(port: u16) -> Result<Observer, String> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("observer cannot listen on {port}: {e}"))?;
        // A node may resolve `localhost` to ::1 first.
        let v6 = TcpListener::bind(("::1", port)).await.ok();
        let names: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (tx, rx) = mpsc::unbounded();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accept = |listener: TcpListener| {
            let (names, tasks, tx, next) = (names.clone(), tasks.clone(), tx.clone(), next.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let conn = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let handle = task::spawn(observe(stream, conn, names.clone(), tx.clone()));
                    lock(&tasks).push(handle);
                }
            }
        };
        let v4_task = task::spawn(accept(listener));
        if let Some(v6) = v6 {
            lock(&tasks).push(task::spawn(accept(v6)));
        }
        Ok(Observer {
            names,
            arrivals: rx,
            tasks,
            listener: Some(v4_task),
        })
    }

    /// Hands every node at `ports` the observer's address and waits until all of them
    /// dialled it and said who they are.
    async fn attach(&self, own_port: u16, nodes: &[String]) -> Result<(), String> {
        let hello = json!({"type": "HANDSHAKE", "data": [address(own_port)]}).to_string();
        for node in nodes {
            let port: u16 = node
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("no port in {node}"))?;
            let mut ws = ws_connect(port).await?;
            ws.send(Message::text(hello.clone()))
                .await
                .map_err(|e| format!("cannot introduce the observer to {node}: {e}"))?;
            let _ = ws.close(None).await;
        }
        let wanted: BTreeSet<&String> = nodes.iter().collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let named: BTreeSet<String> = lock(&self.names).values().cloned().collect();
            if wanted.iter().all(|n| named.contains(*n)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {} nodes dialled the observer within 20 s",
                    named.len(),
                    nodes.len()
                ));
            }
            task::sleep(Duration::from_millis(5)).await;
        }
    }

    fn name(&self, conn: usize) -> Option<String> {
        lock(&self.names).get(&conn).cloned()
    }

    /// Drops what arrived so far (late copies of earlier transactions).
    fn forget_arrivals(&mut self) {
        while self.arrivals.try_recv().is_ok() {}
    }

    /// Waits until every node in `nodes` has pushed the transaction `hash`; says when each
    /// did.
    async fn wait_for(
        &mut self,
        hash: &str,
        nodes: &[String],
        started: Instant,
        limit: Duration,
    ) -> Result<HashMap<String, Instant>, String> {
        let mut seen: HashMap<String, Instant> = HashMap::new();
        while seen.len() < nodes.len() {
            let left = limit.saturating_sub(started.elapsed());
            let next = async_std::future::timeout(left, self.arrivals.next()).await;
            let Ok(Some(arrival)) = next else {
                return Err(format!(
                    "the observer had the transaction from only {} of {} nodes after {} s",
                    seen.len(),
                    nodes.len(),
                    limit.as_secs()
                ));
            };
            if arrival.hash == hash {
                if let Some(name) = self.name(arrival.conn) {
                    seen.entry(name).or_insert(arrival.at);
                }
            }
        }
        Ok(seen)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        let mut handles: Vec<JoinHandle<()>> = lock(&self.tasks).drain(..).collect();
        handles.extend(self.listener.take());
        task::block_on(async {
            for handle in handles {
                handle.cancel().await;
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

async fn observe(
    stream: TcpStream,
    conn: usize,
    names: Arc<Mutex<HashMap<usize, String>>>,
    arrivals: mpsc::UnboundedSender<Arrival>,
) {
    let Ok(mut ws) = async_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        let at = Instant::now();
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        match frame["type"].as_str() {
            Some("HANDSHAKE") => {
                if let Some(own) = frame["data"][0].as_str() {
                    lock(&names).entry(conn).or_insert_with(|| own.to_owned());
                }
            }
            Some("TRANSACTION") => {
                if let Some(hash) = frame["data"]["hash"].as_str() {
                    let _ = arrivals.unbounded_send(Arrival {
                        conn,
                        hash: hash.to_owned(),
                        at,
                    });
                }
            }
            _ => {}
        }
    }
}

/// Sends `trials` transactions, one at a time, into the node at `inject` (an unnamed
/// client, as `add-transaction` is) and times each until every pool file in `dirs` holds it
/// (`dirs[0]` is the folder of the node at `inject`), and until the observer has it from
/// every node in `nodes`.
async fn single_trials(
    nodes: &[String],
    dirs: &[PathBuf],
    inject: u16,
    observer_port: u16,
    trials: usize,
    limit: Duration,
    pooled: u64,
) -> Result<Latency, String> {
    let mut observer = Observer::bind(observer_port).await?;
    observer.attach(observer_port, nodes).await?;
    let mut files = PoolFiles::new(dirs);
    let origin = address(inject);
    let mut ws = ws_connect(inject).await?;
    let (mut files_all, mut files_first) = (Vec::new(), Vec::new());
    let (mut pushed_all, mut pushed_first) = (Vec::new(), Vec::new());
    for (trial, tx) in transactions(trials, SINGLE_TAG).iter().enumerate() {
        task::sleep(TRIAL_GAP).await;
        observer.forget_arrivals();
        let started = Instant::now();
        ws.send(Message::text(tx.frame()))
            .await
            .map_err(|e| format!("cannot send to port {inject}: {e}"))?;
        let (in_files, pushed) = futures::join!(
            files.wait_for_hash(&tx.hash, started, limit),
            observer.wait_for(&tx.hash, nodes, started, limit)
        );
        let trial = |e: String| format!("trial {} of {trials}: {e}", trial + 1);
        let in_files = in_files.map_err(trial)?;
        let pushed = pushed.map_err(trial)?;
        let reached = Reached::of(&in_files);
        files_all.push(reached.all_ms);
        files_first.push(reached.origin_ms);
        let last = pushed.values().max().copied().unwrap_or(started);
        pushed_all.push(ms(last - started));
        pushed_first.push(pushed.get(&origin).map_or(f64::NAN, |at| ms(*at - started)));
    }
    let _ = ws.close(None).await;
    Ok(Latency {
        files: Spread::of(&mut files_all, &mut files_first),
        pushed: Spread::of(&mut pushed_all, &mut pushed_first),
        trials,
        pooled,
    })
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

// ---------------------------------------------------------------------------------------
// Watchers (`--watchers`)

/// What watches our nodes while they are measured.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum WatcherMode {
    /// No watcher.
    None,
    /// One watcher per node, reading every EVENT frame as it comes, as the live page does.
    Reading,
    /// One watcher per node that sends WATCH and never reads: the node should drop it.
    Stalled,
}

impl WatcherMode {
    fn name(self) -> &'static str {
        match self {
            WatcherMode::None => "none",
            WatcherMode::Reading => "reading",
            WatcherMode::Stalled => "stalled",
        }
    }
}

/// How long a stalled watcher, read at the end, may stay silent before it counts as still
/// open (not dropped).
const STALLED_IDLE: Duration = Duration::from_secs(2);
/// A burst's events are few (one per batch the node handles, 32 hashes at most): the
/// measured ones leave a stalled watcher far under its budget, the more so as the kernel's
/// socket buffers (up to `tcp_wmem`'s 4 MiB) hold what it leaves unread before the node's
/// queue does. Once everything in the network of the bursts is measured, transactions go
/// into node 1 in writes of [`PROVOKE_WRITE`], [`PROVOKE_GAP`] apart (about one `pooled`
/// event naming them, 2.3 KB, per node and write), until every node logged that it closed
/// its stalled watcher (see [`closed_watcher`]), or this many went, or [`PROVOKE_FOR`]
/// passed: by then native-host's TCP user timeout (20 s) has had the kernel close any
/// connection whose receiver kept its window shut, whatever the node's queue.
const PROVOKE_LIMIT: usize = 200_000;
const PROVOKE_FOR: Duration = Duration::from_secs(25);
const PROVOKE_WRITE: usize = 32;
const PROVOKE_GAP: Duration = Duration::from_millis(3);
/// The tag of those transactions.
const PROVOKE_TAG: u32 = 7;

/// What one watcher read.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// EVENT frames, and their bytes.
    events: u64,
    bytes: u64,
    /// `pooled` events, the hashes they named and the transactions they only counted
    /// (`more`).
    pooled: u64,
    named: u64,
    more: u64,
    /// `pool` in the `state` event, and in the latest `state` or `pooled` event.
    start_pool: Option<u64>,
    pool: Option<u64>,
    /// `pooled` events whose `pool` is not the one before plus what they name and count.
    gaps: u64,
    /// Hashes named by more than one event.
    doubled: u64,
    /// The node closed the connection.
    closed: bool,
}

impl Seen {
    /// Transactions the `pooled` events named or counted.
    fn counted(&self) -> u64 {
        self.named + self.more
    }
}

/// What each node's watcher counted for something of known size, and that size.
#[derive(Debug, Clone)]
struct Check {
    what: String,
    expected: Vec<u64>,
    counted: Vec<u64>,
}

/// What the watchers of one network saw, per node.
#[derive(Debug, Clone)]
struct Watched {
    network: &'static str,
    mode: WatcherMode,
    /// Stalled watchers: what the bench read once it was done with the network.
    seen: Vec<Seen>,
    checks: Vec<Check>,
    /// Why each node logged that it closed its watcher, and the bytes it had queued for it
    /// then (on top of what the kernel's socket buffers held).
    closed_by: Vec<Option<(&'static str, u64)>>,
    /// Stalled: the transactions sent after the measurements to make the nodes drop them.
    provoked: Option<Result<(u64, Duration), String>>,
}

/// One watcher per node of a network: a connection of its own that sends WATCH, then reads
/// on a task of its own (reading) or is left unread (stalled).
struct Watchers {
    mode: WatcherMode,
    seen: Vec<Arc<Mutex<Seen>>>,
    readers: Vec<JoinHandle<()>>,
    stalled: Vec<Ws>,
    checks: Vec<Check>,
}

impl Watchers {
    /// Attaches them (none in mode `none`), and waits until every node logged that it is
    /// watched.
    async fn attach(mode: WatcherMode, cluster: &OursCluster) -> Result<Watchers, String> {
        let mut watchers = Watchers {
            mode,
            seen: Vec::new(),
            readers: Vec::new(),
            stalled: Vec::new(),
            checks: Vec::new(),
        };
        if mode == WatcherMode::None {
            return Ok(watchers);
        }
        for &port in &cluster.ports {
            let mut ws = ws_connect(port).await?;
            ws.send(Message::text(r#"{"type":"WATCH"}"#))
                .await
                .map_err(|e| format!("cannot send WATCH to port {port}: {e}"))?;
            let seen = Arc::<Mutex<Seen>>::default();
            match mode {
                WatcherMode::Reading => {
                    watchers
                        .readers
                        .push(task::spawn(read_events(ws, seen.clone(), None)))
                }
                _ => watchers.stalled.push(ws),
            }
            watchers.seen.push(seen);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster
            .nodes
            .iter()
            .all(|n| n.log().contains("watches this node"))
        {
            if Instant::now() > deadline {
                return Err("not every node logged its watcher within 10 s".to_owned());
            }
            task::sleep(Duration::from_millis(10)).await;
        }
        Ok(watchers)
    }

    /// Reading: waits (up to 10 s) until each watcher counted `size` more than `before`,
    /// and keeps what they counted.
    async fn check(&mut self, what: &str, before: &[u64], size: u64) {
        self.check_each(what, before, vec![size; before.len()])
            .await;
    }

    /// Reading: waits (up to 10 s) until each watcher counted its `expected` more than
    /// `before`, and keeps what they counted.
    async fn check_each(&mut self, what: &str, before: &[u64], expected: Vec<u64>) {
        if self.mode != WatcherMode::Reading {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let counted = loop {
            let now = self.seen.iter().map(|s| lock(s).counted());
            let counted: Vec<u64> = now.zip(before).map(|(n, b)| n - b).collect();
            let reached = counted.iter().zip(&expected).all(|(c, e)| c >= e);
            if reached || Instant::now() > deadline {
                break counted;
            }
            task::sleep(Duration::from_millis(10)).await;
        };
        self.checks.push(Check {
            what: what.to_owned(),
            expected,
            counted,
        });
    }

    /// Done with the network: reading watchers are checked against every node's pool
    /// (STATUS) and stopped; stalled ones are read until the node closed them or nothing
    /// came for [`STALLED_IDLE`].
    /// Stalled ones are first made to be dropped if `provoke` (see [`PROVOKE_LIMIT`]).
    async fn finish(
        mut self,
        network: &'static str,
        provoke: bool,
        cluster: &mut OursCluster,
    ) -> Watched {
        if self.mode == WatcherMode::Reading {
            let pools = statuses(&mut cluster.probes).await;
            let grown: Vec<u64> = pools
                .iter()
                .zip(&self.seen)
                .map(|(s, seen)| {
                    let start = lock(seen).start_pool.unwrap_or(0);
                    s.as_ref().map_or(0, |s| s.pool.saturating_sub(start))
                })
                .collect();
            let before = vec![0; grown.len()];
            self.check_each("all since WATCH", &before, grown).await;
        }
        for reader in self.readers.drain(..) {
            reader.cancel().await;
        }
        let provoked = if self.stalled.is_empty() || !provoke {
            None
        } else {
            Some(provoke_drops(cluster).await)
        };
        let drained = self.stalled.drain(..).zip(&self.seen);
        futures::future::join_all(
            drained.map(|(ws, seen)| read_events(ws, seen.clone(), Some(STALLED_IDLE))),
        )
        .await;
        let closed_by = cluster.nodes.iter().map(closed_watcher).collect();
        Watched {
            network,
            mode: self.mode,
            seen: self.seen.iter().map(|s| *lock(s)).collect(),
            checks: self.checks,
            closed_by,
            provoked,
        }
    }
}

/// Sends transactions into node 1, [`PROVOKE_WRITE`] a write [`PROVOKE_GAP`] apart, until
/// every node logged that it closed its watcher, [`PROVOKE_LIMIT`] went or [`PROVOKE_FOR`]
/// passed; says how many went, and for how long.
async fn provoke_drops(cluster: &OursCluster) -> Result<(u64, Duration), String> {
    let port = cluster.ports[0];
    let mut ws = ws_connect(port).await?;
    let all_dropped = || cluster.nodes.iter().all(|n| closed_watcher(n).is_some());
    let (started, mut sent) = (Instant::now(), 0);
    for (i, write) in transactions(PROVOKE_LIMIT, PROVOKE_TAG)
        .chunks(PROVOKE_WRITE)
        .enumerate()
    {
        if i % 50 == 0 && (all_dropped() || started.elapsed() > PROVOKE_FOR) {
            break;
        }
        for tx in write {
            ws.feed(Message::text(tx.frame()))
                .await
                .map_err(|e| format!("cannot send to port {port}: {e}"))?;
        }
        ws.flush()
            .await
            .map_err(|e| format!("cannot send to port {port}: {e}"))?;
        sent += write.len() as u64;
        task::sleep(PROVOKE_GAP).await;
    }
    let took = started.elapsed();
    task::sleep(Duration::from_millis(200)).await;
    Ok((sent, took))
}

/// Whether `node` logged that it closed a watcher, why, and the bytes it had queued then:
/// dropped over `Limits::max_watch_buffer`, or (the only connection the bench leaves
/// unread) closed as stalled, its queue unwritten for `P2P_STALL_TIMEOUT`.
fn closed_watcher(node: &Node) -> Option<(&'static str, u64)> {
    let log = node.log();
    let (why, line) = log.lines().find_map(|l| {
        if l.contains("dropping watcher") {
            Some(("over the watcher budget", l))
        } else if l.contains("an unnamed peer") && l.contains("nothing read for") {
            Some(("as stalled", l))
        } else {
            None
        }
    })?;
    let bytes = line.rsplit(": ").next()?.split(' ').next()?;
    Some((why, bytes.parse().ok()?))
}

/// What each watcher counted so far (none if there are none).
fn counted(watchers: &Result<Watchers, String>) -> Vec<u64> {
    watchers.as_ref().map_or(Vec::new(), |w| {
        w.seen.iter().map(|s| lock(s).counted()).collect()
    })
}

/// Ends the watchers of a network: what they saw, unless there were none.
async fn finish(
    watchers: Result<Watchers, String>,
    network: &'static str,
    provoke: bool,
    cluster: &mut OursCluster,
) -> Option<Result<Watched, String>> {
    match watchers {
        Ok(w) if w.mode == WatcherMode::None => None,
        Ok(w) => Some(Ok(w.finish(network, provoke, cluster).await)),
        Err(e) => Some(Err(e)),
    }
}

/// Reads EVENT frames from `ws` into `seen`, as the live page does (each parsed), until the
/// node closes the connection or, with `idle`, nothing came for that long.
async fn read_events(mut ws: Ws, seen: Arc<Mutex<Seen>>, idle: Option<Duration>) {
    let mut named = HashSet::new();
    loop {
        let next = match idle {
            Some(idle) => match async_std::future::timeout(idle, ws.next()).await {
                Ok(next) => next,
                Err(_) => return,
            },
            None => ws.next().await,
        };
        let Some(Ok(message)) = next else {
            lock(&seen).closed = true;
            return;
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if frame["type"] != "EVENT" {
            continue;
        }
        let data = &frame["data"];
        let pool = data["pool"].as_u64();
        let mut seen = lock(&seen);
        seen.events += 1;
        seen.bytes += text.len() as u64;
        match data["kind"].as_str() {
            Some("state") => (seen.start_pool, seen.pool) = (pool, pool),
            Some("pooled") => {
                let hashes = data["hashes"].as_array().map_or(&[][..], Vec::as_slice);
                let more = data["more"].as_u64().unwrap_or(0);
                let new = hashes.len() as u64 + more;
                if pool.is_none() || seen.pool.map(|p| p + new) != pool {
                    seen.gaps += 1;
                }
                seen.pool = pool;
                seen.pooled += 1;
                seen.named += hashes.len() as u64;
                seen.more += more;
                for hash in hashes.iter().filter_map(Value::as_str) {
                    if !named.insert(hash.to_owned()) {
                        seen.doubled += 1;
                    }
                }
            }
            _ => {}
        }
    }
}

/// The smallest and largest of `values`, as `a - b` (or `a` if they are equal).
fn span(values: impl IntoIterator<Item = u64>, show: impl Fn(u64) -> String) -> String {
    let values: Vec<u64> = values.into_iter().collect();
    match (values.iter().min(), values.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => show(*lo),
        (Some(lo), Some(hi)) => format!("{} - {}", show(*lo), show(*hi)),
        _ => "-".to_owned(),
    }
}

/// What the watchers of one network saw, as lines to print.
fn watched_lines(watched: &Result<Watched, String>) -> Vec<String> {
    let w = match watched {
        Ok(w) => w,
        Err(e) => return vec![format!("watchers: {e}")],
    };
    let count = |v: u64| fmt_count(v as f64);
    let kib = |v: u64| match v {
        0..1_048_576 => format!("{:.1} KiB", v as f64 / 1024.0),
        _ => format!("{:.2} MiB", v as f64 / 1_048_576.0),
    };
    let of = |f: fn(&Seen) -> u64| span(w.seen.iter().map(f), count);
    let closed = w.seen.iter().filter(|s| s.closed).count();
    let logged: Vec<String> = ["over the watcher budget", "as stalled"]
        .iter()
        .filter_map(|why| {
            let closed = w.closed_by.iter().flatten().filter(|(w, _)| w == why);
            let unread: Vec<u64> = closed.map(|&(_, bytes)| bytes).collect();
            (!unread.is_empty()).then(|| {
                let n = unread.len();
                format!(
                    "{n} {why} ({} bytes queued in the node)",
                    span(unread, count)
                )
            })
        })
        .collect();
    let unlogged = closed.saturating_sub(w.closed_by.iter().flatten().count());
    let mut lines = vec![format!(
        "{} watchers, network of the {}: {} of {} closed by the node (logged: {}{}); per watcher \
         {} EVENT frames ({}){}, {} pooled events naming {} hashes and counting {} more",
        w.mode.name(),
        w.network,
        closed,
        w.seen.len(),
        if logged.is_empty() {
            "none".to_owned()
        } else {
            logged.join(", ")
        },
        if unlogged > 0 {
            format!("; {unlogged} closed with no line at info level")
        } else {
            String::new()
        },
        of(|s| s.events),
        span(w.seen.iter().map(|s| s.bytes), kib),
        if w.mode == WatcherMode::Stalled {
            ", read at the end"
        } else {
            ""
        },
        of(|s| s.pooled),
        of(|s| s.named),
        of(|s| s.more),
    )];
    for c in &w.checks {
        lines.push(if c.counted == c.expected {
            format!(
                "{}: every watcher counted what its node pooled ({})",
                c.what,
                span(c.expected.iter().copied(), count)
            )
        } else {
            format!(
                "{}: MISMATCH, watchers counted {:?} where their nodes pooled {:?}",
                c.what, c.counted, c.expected
            )
        });
    }
    match &w.provoked {
        Some(Ok((sent, took))) => lines.push(format!(
            "then, to make them drop it, {} transactions into node 1 in {:.1} s, \
             {PROVOKE_WRITE} a write {} ms apart (everything above counts them)",
            count(*sent),
            took.as_secs_f64(),
            PROVOKE_GAP.as_millis()
        )),
        Some(Err(e)) => lines.push(format!("could not provoke the drops: {e}")),
        None => {}
    }
    if w.mode == WatcherMode::Reading {
        lines.push(format!(
            "pooled events whose `pool` is not the previous one plus what they name and count: \
             {}; hashes named twice: {}",
            of(|s| s.gaps),
            of(|s| s.doubled)
        ));
    }
    lines
}

fn watched_json(watched: &[Result<Watched, String>]) -> Value {
    if watched.is_empty() {
        return Value::Null;
    }
    let all = |w: &Watched, f: fn(&Seen) -> Value| w.seen.iter().map(f).collect::<Vec<_>>();
    watched
        .iter()
        .map(|w| match w {
            Ok(w) => json!({
                "network": w.network,
                "mode": w.mode.name(),
                "events": all(w, |s| json!(s.events)),
                "event_bytes": all(w, |s| json!(s.bytes)),
                "pooled_events": all(w, |s| json!(s.pooled)),
                "counted": all(w, |s| json!(s.counted())),
                "gaps": all(w, |s| json!(s.gaps)),
                "named_twice": all(w, |s| json!(s.doubled)),
                "closed": all(w, |s| json!(s.closed)),
                "closed_by": w.closed_by.iter().map(|c| match c {
                    Some((why, unread)) => json!({ "why": why, "queued_bytes": unread }),
                    None => Value::Null,
                }).collect::<Vec<_>>(),
                "provoked_transactions": match &w.provoked {
                    Some(Ok((sent, _))) => json!(sent),
                    Some(Err(e)) => json!({ "error": e }),
                    None => Value::Null,
                },
                "checks": w.checks.iter().map(|c| json!({
                    "what": c.what,
                    "expected": c.expected,
                    "counted": c.counted,
                })).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "error": e }),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Memory

fn memory(pids: &[u32], pooled: u64) -> Result<Memory, String> {
    let field = |pid: u32, key: &str| -> Result<u64, String> {
        let status = fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/status has no {key}"))
    };
    let mut max_hwm_kib = 0;
    let mut max_rss_kib = 0;
    let mut first_hwm_kib = 0;
    for (index, &pid) in pids.iter().enumerate() {
        let hwm = field(pid, "VmHWM:")?;
        if index == 0 {
            first_hwm_kib = hwm;
        }
        max_hwm_kib = max_hwm_kib.max(hwm);
        max_rss_kib = max_rss_kib.max(field(pid, "VmRSS:")?);
    }
    Ok(Memory {
        max_hwm_kib,
        first_hwm_kib,
        max_rss_kib,
        pooled,
    })
}

// ---------------------------------------------------------------------------------------
// Reporting

fn fmt_ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0} ms")
    } else if value >= 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.2} ms")
    }
}

fn fmt_count(value: f64) -> String {
    let whole = value.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A cell: the figure, or why there is none.
fn cell<T>(value: Option<&Result<T, String>>, show: impl Fn(&T) -> String) -> String {
    match value {
        None => "not run".to_owned(),
        Some(Ok(v)) => show(v),
        Some(Err(e)) => e.clone(),
    }
}

fn value<T, U>(value: Option<&Result<T, String>>, get: impl Fn(&T) -> U) -> Option<U> {
    value.and_then(|v| v.as_ref().ok()).map(get)
}

/// ours / JS, with which way is better.
fn ratio(ours: Option<f64>, js: Option<f64>, higher_is_better: bool) -> String {
    match (ours, js) {
        (Some(o), Some(j)) if o > 0.0 && j > 0.0 && o.is_finite() && j.is_finite() => {
            let r = o / j;
            let better = if higher_is_better { r } else { 1.0 / r };
            let verdict = if better >= 1.0 {
                format!("ours {better:.1}x better")
            } else {
                format!("ours {:.1}x worse", 1.0 / better)
            };
            format!("{} ({verdict})", fmt_ratio(r))
        }
        _ => "-".to_owned(),
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 1.0 {
        format!("{r:.2}")
    } else {
        format!("{r:.4}")
    }
}

struct Row {
    label: String,
    ours: String,
    /// Ours in memory, where it differs from the pool files.
    memory: String,
    js: String,
    ratio: String,
}

/// A burst's figure on the pool files, or why there is none.
fn files_cell(
    burst: Option<&Result<Burst, String>>,
    show: impl Fn(&Burst, &Reached) -> String,
) -> String {
    cell(burst, |b| cell(Some(&b.files), |r| show(b, r)))
}

/// A burst's figure in memory (ours).
fn memory_cell(burst: Option<&Result<Burst, String>>, show: impl Fn(&Reached) -> String) -> String {
    cell(burst, |b| b.memory.as_ref().map_or("-".to_owned(), &show))
}

fn rows(report: &Report) -> Vec<Row> {
    let ours = &report.ours;
    let empty = ImplReport::default();
    let js = report.js.as_ref().unwrap_or(&empty);
    let js_cell = |s: String| {
        if report.js.is_some() {
            s
        } else {
            "not run".to_owned()
        }
    };
    let p = report.point;
    let mut rows = Vec::new();
    let mut push = |label: String, o: String, m: String, j: String, r: String| {
        rows.push(Row {
            label,
            ours: o,
            memory: m,
            js: js_cell(j),
            ratio: r,
        })
    };
    let none = || "-".to_owned();
    let ms_cell = |m: Option<&Measured>| cell(m, |v| fmt_ms(*v));
    push(
        format!("full mesh, {} nodes started one after another", p.nodes),
        ms_cell(ours.mesh_sequential.as_ref()),
        none(),
        ms_cell(js.mesh_sequential.as_ref()),
        ratio(
            value(ours.mesh_sequential.as_ref(), |v| *v),
            value(js.mesh_sequential.as_ref(), |v| *v),
            false,
        ),
    );
    push(
        format!("full mesh, {} nodes started all at once (ring)", p.nodes),
        ms_cell(ours.mesh_all_at_once.as_ref()),
        none(),
        ms_cell(js.mesh_all_at_once.as_ref()),
        ratio(
            value(ours.mesh_all_at_once.as_ref(), |v| *v),
            value(js.mesh_all_at_once.as_ref(), |v| *v),
            false,
        ),
    );
    for (label, o, j) in [
        (
            "1 transaction in every transactions.json, fresh pools",
            &ours.single,
            &js.single,
        ),
        (
            "1 transaction in every transactions.json, after the bursts",
            &ours.single_loaded,
            &js.single_loaded,
        ),
    ] {
        let show = |l: &Latency| {
            format!(
                "p50 {} / p99 {} ({} trials, {} pooled)",
                fmt_ms(l.files.p50_ms),
                fmt_ms(l.files.p99_ms),
                l.trials,
                fmt_count(l.pooled as f64)
            )
        };
        let pushed = |l: &Latency| {
            format!(
                "p50 {} / p99 {} (pushed to an observer)",
                fmt_ms(l.pushed.p50_ms),
                fmt_ms(l.pushed.p99_ms)
            )
        };
        push(
            label.to_owned(),
            cell(o.as_ref(), show),
            cell(o.as_ref(), pushed),
            cell(j.as_ref(), show),
            ratio(
                value(o.as_ref(), |l| l.files.p50_ms),
                value(j.as_ref(), |l| l.files.p50_ms),
                false,
            ),
        );
    }
    let mut sizes = vec![p.js_burst];
    if p.burst != p.js_burst {
        sizes.push(p.burst);
    }
    for size in sizes {
        let o = ours.burst(size);
        let j = js.burst(size);
        let k = fmt_count(size as f64);
        let all_ms = |_: &Burst, r: &Reached| fmt_ms(r.all_ms);
        push(
            format!("burst of {k}: time until every transactions.json holds all"),
            files_cell(o, all_ms),
            memory_cell(o, |r| fmt_ms(r.all_ms)),
            files_cell(j, all_ms),
            ratio(
                ours.burst_ok(size)
                    .and_then(|b| Some(b.files.as_ref().ok()?.all_ms)),
                js.burst_ok(size)
                    .and_then(|b| Some(b.files.as_ref().ok()?.all_ms)),
                false,
            ),
        );
        let tx_per_s = |b: &Burst, r: &Reached| fmt_count(r.tx_per_s(b.size));
        push(
            format!("burst of {k}: transactions/s into every transactions.json"),
            files_cell(o, tx_per_s),
            memory_cell(o, |r| fmt_count(r.tx_per_s(size))),
            files_cell(j, tx_per_s),
            ratio(
                ours.burst_ok(size).and_then(Burst::files_tx_per_s),
                js.burst_ok(size).and_then(Burst::files_tx_per_s),
                true,
            ),
        );
        let first =
            |b: &Burst, r: &Reached| format!("{} / {}", fmt_ms(r.origin_ms), fmt_ms(b.send_ms));
        push(
            format!("burst of {k}: time until in the first node / client done sending"),
            files_cell(o, first),
            memory_cell(o, |r| fmt_ms(r.origin_ms)),
            files_cell(j, first),
            none(),
        );
        let frames = |b: &Burst| match (&b.frames_per_tx, b.catch_up) {
            (Ok(f), Some((sync, txs))) => format!(
                "{f:.2} (N-1 = {}; {txs} TXS and {sync} SYNC frames in all)",
                p.nodes - 1
            ),
            (Ok(f), None) => format!("{f:.2} (N-1 = {})", p.nodes - 1),
            (Err(e), _) => e.clone(),
        };
        push(
            format!("burst of {k}: transaction frames sent per transaction"),
            cell(o, frames),
            none(),
            cell(j, frames),
            ratio(
                o.and_then(|b| b.as_ref().ok())
                    .and_then(|b| b.frames_per_tx.clone().ok()),
                j.and_then(|b| b.as_ref().ok())
                    .and_then(|b| b.frames_per_tx.clone().ok()),
                false,
            ),
        );
    }
    let mem = |m: &Memory| {
        format!(
            "{} (node 1: {}; largest VmRSS now {}; {} pooled)",
            fmt_mib(m.max_hwm_kib),
            fmt_mib(m.first_hwm_kib),
            fmt_mib(m.max_rss_kib),
            fmt_count(m.pooled as f64)
        )
    };
    push(
        "resident memory per node, max VmHWM at the end".to_owned(),
        cell(ours.memory.as_ref(), mem),
        none(),
        cell(js.memory.as_ref(), mem),
        ratio(
            value(ours.memory.as_ref(), |m| m.max_hwm_kib as f64),
            value(js.memory.as_ref(), |m| m.max_hwm_kib as f64),
            false,
        ),
    );
    rows
}

fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("| measure | ours (p2p-node) | ours, in memory | JavaScript node | ours / JS |\n");
    out.push_str("|---|---|---|---|---|\n");
    for row in rows(report) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.label, row.ours, row.memory, row.js, row.ratio
        );
    }
    out
}

const HOW: &str = "How it is measured: a transaction is in a node's pool when it is in the \
    node's transactions.json, as a reader polling the files sees it; the headline figures (the \
    \"ours\" and JavaScript columns) are taken so, and ours in memory are the column beside. \
    Full mesh = every node's connected set is all the others, polled every 2 ms (ours: STATUS \
    over a kept-open connection; JavaScript: the `connectedAddresses` each node logs), timed \
    from the first process start. \"One after another\": each node is started once the \
    previous one accepts connections, knowing all earlier ones; \"all at once\": every process \
    started at once, node i knowing node i-1 only. Single transactions: sent one at a time (50 \
    ms apart) into node 1 by an unnamed client; the time is until every node's \
    transactions.json holds it, each file polled every 1 ms (its last 4 KiB read when it \
    changed: a node appends new transactions at the end). In memory: an observer peer, \
    introduced to every node by a plain HANDSHAKE, gets each new transaction pushed from every \
    node; the time is until the last node's copy arrives (so it includes one loopback hop past \
    the last pool). Bursts: pre-serialised TRANSACTION frames written as fast as one client \
    connection goes into node 1, no observer attached; done when every transactions.json holds \
    them all: each file's length, polled every 1 ms, reaches the length its transactions make \
    (a pretty-printed transaction has the same length wherever it stands, so that length is \
    known before the burst), then each file is read whole once to check that it holds the \
    burst and no transaction twice; transactions/s = burst size / that time. In memory (ours): \
    STATUS pool counts, polled every 2 ms. Frames per transaction: TRANSACTION, TRANSACTIONS \
    (pushes to a peer of ours packed together, hundreds a frame in a burst) and TXS frames \
    sent by all nodes (STATUS `sent` counters) over the burst size; JavaScript: frames its logs \
    show arriving from other nodes. Memory: the largest VmHWM (peak resident set) of any \
    node's process after the bursts.";

fn json_line(report: &Report) -> Value {
    fn measured(m: &Option<Measured>) -> Value {
        match m {
            None => Value::Null,
            Some(Ok(v)) => json!((v * 100.0).round() / 100.0),
            Some(Err(e)) => json!({ "error": e }),
        }
    }
    fn latency(l: &Option<Result<Latency, String>>) -> Value {
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        match l {
            None => Value::Null,
            Some(Ok(l)) => json!({
                "p50_ms": round(l.pushed.p50_ms),
                "p99_ms": round(l.pushed.p99_ms),
                "origin_p50_ms": round(l.pushed.origin_p50_ms),
                "files_p50_ms": round(l.files.p50_ms),
                "files_p99_ms": round(l.files.p99_ms),
                "files_origin_p50_ms": round(l.files.origin_p50_ms),
                "trials": l.trials,
                "pooled": l.pooled,
            }),
            Some(Err(e)) => json!({ "error": e }),
        }
    }
    fn implementation(r: &ImplReport) -> Value {
        let bursts: Vec<Value> = r
            .bursts
            .iter()
            .map(|(size, b)| match b {
                Ok(b) => {
                    let round = |v: f64| (v * 10.0).round() / 10.0;
                    // The keys from before the file figures keep their meaning: ours in
                    // memory, the JavaScript node's on its files.
                    let earlier = b.memory.or(b.files.as_ref().ok().copied());
                    json!({
                        "size": size,
                        "all_pools_ms": earlier.map(|r| round(r.all_ms)),
                        "tx_per_s": earlier.map(|r| r.tx_per_s(b.size).round()),
                        "first_pool_ms": earlier.map(|r| round(r.origin_ms)),
                        "send_ms": round(b.send_ms),
                        "frames_per_tx": match &b.frames_per_tx {
                            Ok(f) => json!((f * 1000.0).round() / 1000.0),
                            Err(e) => json!({ "error": e }),
                        },
                        "pool_files_ms": match &b.files {
                            Ok(r) => json!(round(r.all_ms)),
                            Err(e) => json!({ "error": e }),
                        },
                        "files_tx_per_s": b.files_tx_per_s().map(f64::round),
                        "files_first_ms": b.files.as_ref().ok().map(|r| round(r.origin_ms)),
                        "sync_frames": b.catch_up.map(|(sync, _)| sync),
                        "txs_frames": b.catch_up.map(|(_, txs)| txs),
                    })
                }
                Err(e) => json!({ "size": size, "error": e }),
            })
            .collect();
        json!({
            "mesh_sequential_ms": measured(&r.mesh_sequential),
            "mesh_all_at_once_ms": measured(&r.mesh_all_at_once),
            "single": latency(&r.single),
            "single_after_bursts": latency(&r.single_loaded),
            "bursts": bursts,
            "memory": match &r.memory {
                None => Value::Null,
                Some(Ok(m)) => json!({
                    "max_vmhwm_kib": m.max_hwm_kib,
                    "node1_vmhwm_kib": m.first_hwm_kib,
                    "max_vmrss_kib": m.max_rss_kib,
                    "pooled": m.pooled,
                }),
                Some(Err(e)) => json!({ "error": e }),
            },
        })
    }
    let shared = |r: &ImplReport, tx_per_s: fn(&Burst) -> Option<f64>| {
        r.burst_ok(report.point.js_burst).and_then(tx_per_s)
    };
    let over = |o: Option<f64>, j: Option<f64>| match (o, j) {
        (Some(o), Some(j)) => json!((o / j * 100.0).round() / 100.0),
        _ => Value::Null,
    };
    let ratio = match &report.js {
        Some(js) => json!({
            // Ours in memory over the JavaScript node's files, as before the file figures.
            "tx_per_s": over(
                shared(&report.ours, Burst::memory_tx_per_s),
                shared(js, Burst::files_tx_per_s),
            ),
            "files_tx_per_s": over(
                shared(&report.ours, Burst::files_tx_per_s),
                shared(js, Burst::files_tx_per_s),
            ),
            "burst": report.point.js_burst,
        }),
        None => Value::Null,
    };
    json!({
        "bench": "p2p-node",
        "nodes": report.point.nodes,
        "burst": report.point.burst,
        "js_burst": report.point.js_burst,
        "single_trials": report.point.single,
        "ours": implementation(&report.ours),
        "javascript": report.js.as_ref().map_or(Value::Null, implementation),
        "ratio_ours_over_js": ratio,
        "watchers": watched_json(&report.ours.watched),
        "seconds": report.seconds.round(),
        "loadavg_before": report.load.0,
        "loadavg_after": report.load.1,
    })
}

/// The DESIGN.md figures, each with what was measured and whether it is met.
fn targets(report: &Report) -> Vec<String> {
    let p = report.point;
    let ours = &report.ours;
    let mut lines = Vec::new();
    let conditions = if p.nodes == 10 {
        String::new()
    } else {
        format!(" (the figure is for N = 10; this run has N = {})", p.nodes)
    };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let in_memory = |b: &Burst| {
        b.memory_tx_per_s().map_or(String::new(), |v| {
            format!(" (in memory: {} tx/s)", fmt_count(v))
        })
    };
    match ours.burst_ok(p.burst).map(|b| (b, &b.files)) {
        Some((b, Ok(r))) => lines.push(format!(
            "{}-transaction burst in every transactions.json at >= 50,000 tx/s: {} tx/s, {}{}{}{conditions}",
            fmt_count(p.burst as f64),
            fmt_count(r.tx_per_s(b.size)),
            verdict(r.tx_per_s(b.size) >= 50_000.0),
            in_memory(b),
            if p.burst < 50_000 {
                " (a smaller burst than the figure's 50,000)"
            } else {
                ""
            }
        )),
        Some((_, Err(e))) => lines.push(format!(
            "burst in every transactions.json at >= 50,000 tx/s: {e}"
        )),
        None => lines.push(format!(
            "burst in every transactions.json at >= 50,000 tx/s: {}",
            cell(ours.burst(p.burst), |_| String::new())
        )),
    }
    if let Some(js) = &report.js {
        let files_tx_per_s = |r: &ImplReport| r.burst_ok(p.js_burst)?.files_tx_per_s();
        let files_cell =
            |r: &ImplReport| files_cell(r.burst(p.js_burst), |b, r| fmt_count(r.tx_per_s(b.size)));
        lines.push(match (files_tx_per_s(ours), files_tx_per_s(js)) {
            (Some(o), Some(j)) => format!(
                "{}-transaction burst into every transactions.json >= 100x the JavaScript node: \
                 {:.0}x, {}{conditions}",
                fmt_count(p.js_burst as f64),
                o / j,
                verdict(o / j >= 100.0)
            ),
            _ => format!(
                "{}-transaction burst >= 100x the JavaScript node: no ratio (ours: {}; \
                 JavaScript: {})",
                fmt_count(p.js_burst as f64),
                files_cell(ours),
                files_cell(js)
            ),
        });
    }
    for (what, l, figure_ms, full) in [
        ("fresh pools", &ours.single, 2.0, 0),
        ("after the bursts", &ours.single_loaded, 40.0, 50_000),
    ] {
        if let Some(Ok(l)) = l {
            lines.push(format!(
                "one transaction in all {} transactions.json, p50 <= {figure_ms} ms ({what}, {} \
                 pooled): p50 {}, {} (in memory: p50 {}){}{conditions}",
                p.nodes,
                fmt_count(l.pooled as f64),
                fmt_ms(l.files.p50_ms),
                verdict(l.files.p50_ms <= figure_ms),
                fmt_ms(l.pushed.p50_ms),
                if l.pooled < full {
                    " (fewer pooled than the figure's 50,000)"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(Ok(m)) = &ours.memory {
        lines.push(format!(
            "resident memory <= 32 MiB per node with 50,000 pooled: max VmHWM {} with {} \
             pooled, {}{}",
            fmt_mib(m.max_hwm_kib),
            fmt_count(m.pooled as f64),
            verdict(m.max_hwm_kib <= 32 * 1024),
            if m.pooled < 50_000 {
                " (fewer pooled than the figure's 50,000)"
            } else {
                ""
            }
        ));
    }
    if let Some(mesh) = &ours.mesh_all_at_once {
        lines.push(match mesh {
            Ok(v) => format!(
                "{} nodes started all at once, full mesh <= 1.5 s: {}, {}{conditions}",
                p.nodes,
                fmt_ms(*v),
                verdict(*v <= 1500.0)
            ),
            Err(e) => format!("nodes started all at once, full mesh <= 1.5 s: {e}"),
        });
    }
    lines
}

fn print_report(report: &Report) {
    let p = report.point;
    println!();
    println!(
        "== N = {}: bursts of {} (both) and {} (ours), {} single trials; {:.0} s; load \
         average {} before, {} after ==",
        p.nodes,
        fmt_count(p.js_burst as f64),
        fmt_count(p.burst as f64),
        p.single,
        report.seconds,
        report.load.0,
        report.load.1
    );
    println!();
    print!("{}", table(report));
    println!();
    println!("DESIGN.md figures:");
    for line in targets(report) {
        println!("- {line}");
    }
    for watched in &report.ours.watched {
        println!();
        for (i, line) in watched_lines(watched).iter().enumerate() {
            println!("{}{line}", if i == 0 { "" } else { "- " });
        }
    }
    println!();
    println!("{HOW}");
    println!();
    println!("{}", json_line(report));
}

// ---------------------------------------------------------------------------------------
// The sweep

fn sweep_table(reports: &[Report]) -> String {
    let mut out = String::new();
    out.push_str(
        "| N | bursts (ours / both) | mesh, one after another: ours / JS | mesh, all at once: ours / JS \
         | tx/s into every transactions.json, big burst: ours (in memory) \
         | tx/s into every transactions.json, shared burst: ours / JS (ratio) | frames per tx: ours / JS \
         | 1 tx in every transactions.json, p50: ours (in memory) / JS | max VmHWM: ours / JS |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let empty = ImplReport::default();
    for r in reports {
        let p = r.point;
        let js = r.js.as_ref().unwrap_or(&empty);
        let m = |x: &Option<Measured>| cell(x.as_ref(), |v| fmt_ms(*v));
        let tps =
            |b: Option<&Result<Burst, String>>| files_cell(b, |b, r| fmt_count(r.tx_per_s(b.size)));
        let tps_memory = |b: Option<&Result<Burst, String>>| {
            format!(
                "{} ({})",
                tps(b),
                memory_cell(b, |r| fmt_count(r.tx_per_s(p.burst)))
            )
        };
        let frames = |b: Option<&Result<Burst, String>>| {
            value(b, |b| b.frames_per_tx.clone())
                .and_then(Result::ok)
                .map_or("-".to_owned(), |f| format!("{f:.2}"))
        };
        let shared = |i: &ImplReport| i.burst_ok(p.js_burst).and_then(Burst::files_tx_per_s);
        let ratio = match (shared(&r.ours), shared(js)) {
            (Some(o), Some(j)) => format!("{:.0}x", o / j),
            _ => "-".to_owned(),
        };
        let lat =
            |l: &Option<Result<Latency, String>>| cell(l.as_ref(), |l| fmt_ms(l.files.p50_ms));
        let lat_memory = |l: &Option<Result<Latency, String>>| {
            format!(
                "{} ({})",
                lat(l),
                cell(l.as_ref(), |l| fmt_ms(l.pushed.p50_ms))
            )
        };
        let mem = |x: &Option<Result<Memory, String>>| cell(x.as_ref(), |m| fmt_mib(m.max_hwm_kib));
        let _ = writeln!(
            out,
            "| {} | {} / {} | {} / {} | {} / {} | {} | {} / {} ({ratio}) | {} / {} | {} / {} | {} / {} |",
            p.nodes,
            fmt_count(p.burst as f64),
            fmt_count(p.js_burst as f64),
            m(&r.ours.mesh_sequential),
            m(&js.mesh_sequential),
            m(&r.ours.mesh_all_at_once),
            m(&js.mesh_all_at_once),
            tps_memory(r.ours.burst(p.burst)),
            tps(r.ours.burst(p.js_burst)),
            tps(js.burst(p.js_burst)),
            frames(r.ours.burst(p.burst)),
            frames(js.burst(p.js_burst)),
            lat_memory(&r.ours.single),
            lat(&js.single),
            mem(&r.ours.memory),
            mem(&js.memory),
        );
    }
    out
}

fn print_sweep(reports: &[Report]) {
    println!();
    println!("== sweep ==");
    println!();
    print!("{}", sweep_table(reports));
    println!();
    println!(
        "The JavaScript node gets smaller bursts as N grows (it floods N x (N-1) frames per \
         transaction and rewrites its whole pool file per transaction); ours runs both sizes."
    );
}

/// The chart: throughput and mesh time against N, ours and the JavaScript node's.
fn draw_chart(path: &Path, reports: &[Report]) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| err(&e))?;
    }
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(550);
    let empty = ImplReport::default();
    let js = |r: &Report| r.js.as_ref().unwrap_or(&empty).clone();
    let n = |r: &Report| f64::from(r.point.nodes);
    type Series = (String, RGBColor, Vec<(f64, f64)>);
    let throughput: Vec<Series> = vec![
        (
            "ours, big burst".to_owned(),
            RGBColor(31, 119, 180),
            reports
                .iter()
                .filter_map(|r| {
                    r.ours
                        .burst_ok(r.point.burst)?
                        .files_tx_per_s()
                        .map(|v| (n(r), v))
                })
                .collect(),
        ),
        (
            "ours, the JavaScript node's burst".to_owned(),
            RGBColor(44, 160, 44),
            reports
                .iter()
                .filter_map(|r| {
                    r.ours
                        .burst_ok(r.point.js_burst)?
                        .files_tx_per_s()
                        .map(|v| (n(r), v))
                })
                .collect(),
        ),
        (
            "JavaScript node".to_owned(),
            RGBColor(214, 39, 40),
            reports
                .iter()
                .filter_map(|r| {
                    js(r)
                        .burst_ok(r.point.js_burst)?
                        .files_tx_per_s()
                        .map(|v| (n(r), v))
                })
                .collect(),
        ),
    ];
    let mesh: Vec<Series> = vec![
        (
            "ours, one after another".to_owned(),
            RGBColor(31, 119, 180),
            reports
                .iter()
                .filter_map(|r| value(r.ours.mesh_sequential.as_ref(), |v| (n(r), *v)))
                .collect(),
        ),
        (
            "ours, all at once".to_owned(),
            RGBColor(255, 127, 14),
            reports
                .iter()
                .filter_map(|r| value(r.ours.mesh_all_at_once.as_ref(), |v| (n(r), *v)))
                .collect(),
        ),
        (
            "JavaScript, one after another".to_owned(),
            RGBColor(214, 39, 40),
            reports
                .iter()
                .filter_map(|r| value(js(r).mesh_sequential.as_ref(), |v| (n(r), *v)))
                .collect(),
        ),
    ];
    let max_n = reports.iter().map(n).fold(10.0, f64::max) + 5.0;
    for (area, title, unit, series, legend) in [
        (
            &left,
            "Burst into one node: transactions/s into every pool file",
            "transactions/s (log)",
            &throughput,
            SeriesLabelPosition::UpperRight,
        ),
        (
            &right,
            "Time from start to full mesh",
            "ms (log)",
            &mesh,
            SeriesLabelPosition::UpperLeft,
        ),
    ] {
        let values = series
            .iter()
            .flat_map(|(_, _, points)| points.iter().map(|p| p.1));
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo <= hi && lo > 0.0 {
            (lo / 2.0, hi * 2.0)
        } else {
            (1.0, 10.0)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..max_n, (lo..hi).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("nodes (N)")
            .y_desc(unit)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| fmt_count(*v))
            .draw()
            .map_err(|e| err(&e))?;
        for (label, color, points) in series.iter() {
            let color = *color;
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

// ---------------------------------------------------------------------------------------
// --overlay: the full mesh against the overlay mode

/// How long an overlay gets to settle before the burst, once its tree has.
const OVERLAY_SETTLE: Duration = Duration::from_secs(2);
/// How long a connected overlay's tree gets to settle (see [`wait_tree`]).
const TREE_LIMIT: Duration = Duration::from_secs(30);
/// A tree has settled when no TREE frame was sent and no link changed for this long.
const TREE_QUIET: Duration = Duration::from_millis(500);

/// Waits until every node of a connected overlay names the same root and no node has sent
/// a TREE frame or changed a link for [`TREE_QUIET`]; says how long that took.
async fn wait_tree(cluster: &mut OursCluster, limit: Duration) -> Measured {
    let started = Instant::now();
    let mut last: Option<(u64, Vec<Option<Vec<String>>>)> = None;
    loop {
        let all = statuses(&mut cluster.probes).await;
        let roots: BTreeSet<Option<&str>> = all
            .iter()
            .map(|s| {
                s.as_ref()
                    .ok()
                    .and_then(|s| s.raw["data"]["overlay"]["root"].as_str())
            })
            .collect();
        let tree: u64 = all
            .iter()
            .filter_map(|s| s.as_ref().ok())
            .map(|s| s.raw["data"]["sent"]["tree"].as_u64().unwrap_or(0))
            .sum();
        let views: Vec<Option<Vec<String>>> = all
            .iter()
            .map(|s| s.as_ref().ok().and_then(active_view))
            .collect();
        let now = (tree, views);
        let one_root = roots.len() == 1 && roots.iter().all(Option::is_some);
        if one_root && last.as_ref() == Some(&now) {
            return Ok(ms(started.elapsed().saturating_sub(TREE_QUIET)));
        }
        if started.elapsed() > limit {
            return Err(format!(
                "no settled tree after {} s ({} roots named)",
                limit.as_secs(),
                roots.len()
            ));
        }
        last = Some(now);
        task::sleep(TREE_QUIET).await;
    }
}

/// The addresses of a node's active view (STATUS `overlay.active`); `None` in the full mesh
/// or from a node that reports no overlay.
fn active_view(status: &Status) -> Option<Vec<String>> {
    let active = status.raw["data"]["overlay"]["active"].as_array()?;
    Some(
        active
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
    )
}

/// Into how many parts the links of `views` (node i's active view, by address; both
/// directions count) split the nodes of `addresses`.
fn overlay_components(addresses: &[String], views: &[Option<Vec<String>>]) -> usize {
    let index: HashMap<&str, usize> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i))
        .collect();
    let mut parent: Vec<usize> = (0..addresses.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, view) in views.iter().enumerate() {
        for peer in view.iter().flatten() {
            if let Some(&j) = index.get(peer.as_str()) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    (0..addresses.len())
        .filter(|&i| root(&mut parent, i) == i)
        .count()
}

/// CPU time (user and system) the processes `pids` have used so far, in seconds.
fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    // USER_HZ, 100 on Linux.
    let ticks = 100.0;
    let mut total = 0u64;
    for pid in pids {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command (in parentheses, which may hold spaces): state is 3rd,
        // utime the 14th and stime the 15th of the whole line.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        total += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(total as f64 / ticks)
}

/// Smallest, mean and largest of a count per node.
#[derive(Debug, Clone, Copy)]
struct PerNode {
    min: u64,
    mean: f64,
    max: u64,
}

impl PerNode {
    fn of(values: &[u64]) -> Option<PerNode> {
        Some(PerNode {
            min: *values.iter().min()?,
            mean: values.iter().sum::<u64>() as f64 / values.len() as f64,
            max: *values.iter().max()?,
        })
    }

    fn show(&self) -> String {
        if self.min == self.max {
            format!("{}", self.min)
        } else {
            format!("{} to {} (mean {:.1})", self.min, self.max, self.mean)
        }
    }

    fn json(&self) -> Value {
        json!({ "min": self.min, "mean": (self.mean * 100.0).round() / 100.0, "max": self.max })
    }
}

/// One network of the comparison.
#[derive(Debug, Clone)]
struct Side {
    overlay: bool,
    /// Time from the first start to full mesh, or to a connected overlay.
    ready: Measured,
    /// Overlay: time from connected to a settled tree ([`wait_tree`]).
    tree: Option<Measured>,
    /// Connections per node once ready: in the full mesh STATUS `connected` (dialled) plus
    /// `inbound` (accepted), the bench's status probe left out; in the overlay its links
    /// (STATUS `overlay.active` length: a link is one connection, used both ways).
    connections: Option<PerNode>,
    /// Overlay links per node after the burst.
    links_after: Option<PerNode>,
    /// Overlay nodes that said they were isolated after the burst.
    isolated: usize,
    burst: Result<Burst, String>,
    /// IHAVE, GRAFT and TREE frames sent by all nodes over the burst.
    control: Option<(u64, u64, u64)>,
    /// CPU time all nodes used over the burst (until the frame counters settled), seconds.
    cpu_s: Option<f64>,
    memory: Option<Result<Memory, String>>,
}

impl Side {
    fn files_tx_per_s(&self) -> Option<f64> {
        self.burst.as_ref().ok().and_then(Burst::files_tx_per_s)
    }

    fn memory_tx_per_s(&self) -> Option<f64> {
        self.burst.as_ref().ok().and_then(Burst::memory_tx_per_s)
    }
}

#[derive(Debug, Clone)]
struct OverlayReport {
    nodes: u16,
    burst: u64,
    mesh: Side,
    overlay: Side,
    seconds: f64,
    load: (String, String),
}

impl OverlayReport {
    /// Overlay tx/s over mesh tx/s, on the pool files and in memory.
    fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let r = |o: Option<f64>, m: Option<f64>| match (o, m) {
            (Some(o), Some(m)) if m > 0.0 && o.is_finite() && m.is_finite() => Some(o / m),
            _ => None,
        };
        (
            r(self.overlay.files_tx_per_s(), self.mesh.files_tx_per_s()),
            r(self.overlay.memory_tx_per_s(), self.mesh.memory_tx_per_s()),
        )
    }
}

async fn run_overlay(n: u16, size: u64) -> OverlayReport {
    let started = Instant::now();
    let load_before = load_average();
    eprintln!(
        "bench: N = {n}, the full mesh against the overlay, a burst of {} into node 1 each",
        fmt_count(size as f64)
    );
    eprintln!("bench: ours, full mesh, burst");
    let mesh = overlay_side(n, size, false).await;
    eprintln!("bench: ours, overlay, burst");
    let overlay = overlay_side(n, size, true).await;
    OverlayReport {
        nodes: n,
        burst: size,
        mesh,
        overlay,
        seconds: started.elapsed().as_secs_f64(),
        load: (load_before, load_average()),
    }
}

async fn overlay_side(n: u16, size: u64, overlay: bool) -> Side {
    let block = if overlay {
        block::OVERLAY
    } else {
        block::OVERLAY_MESH
    };
    let (mut cluster, ready) = OursCluster::start_in(n, block, Layout::Sequential, overlay).await;
    let mut side = Side {
        overlay,
        ready: ready.clone(),
        tree: None,
        connections: None,
        links_after: None,
        isolated: 0,
        burst: Err("not run".to_owned()),
        control: None,
        cpu_s: None,
        memory: None,
    };
    if let Err(e) = ready {
        side.burst = Err(format!(
            "no {} to burst into: {e}",
            if overlay { "overlay" } else { "mesh" }
        ));
        return side;
    }
    if overlay {
        side.tree = Some(wait_tree(&mut cluster, TREE_LIMIT).await);
        task::sleep(OVERLAY_SETTLE).await;
    }
    let views = |all: &[Result<Status, String>]| -> Option<PerNode> {
        let lengths: Option<Vec<u64>> = all
            .iter()
            .map(|s| {
                s.as_ref()
                    .ok()
                    .and_then(active_view)
                    .map(|v| v.len() as u64)
            })
            .collect();
        PerNode::of(&lengths?)
    };
    let before = statuses(&mut cluster.probes).await;
    side.connections = if overlay {
        views(&before)
    } else {
        let connections: Option<Vec<u64>> = before
            .iter()
            .map(|s| {
                s.as_ref()
                    .ok()
                    .map(|s| (s.connected.len() as u64 + s.inbound).saturating_sub(1))
            })
            .collect();
        connections.and_then(|c| PerNode::of(&c))
    };
    let cpu_before = cpu_seconds(&cluster.pids());
    side.burst = cluster.burst(size, 1).await;
    side.cpu_s = cpu_seconds(&cluster.pids())
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let after = statuses(&mut cluster.probes).await;
    side.links_after = views(&after);
    side.isolated = after
        .iter()
        .filter(|s| {
            s.as_ref()
                .is_ok_and(|s| s.raw["data"]["overlay"]["isolated"] == true)
        })
        .count();
    let sent = |all: &[Result<Status, String>], key: &str| -> u64 {
        all.iter()
            .filter_map(|s| s.as_ref().ok())
            .map(|s| s.raw["data"]["sent"][key].as_u64().unwrap_or(0))
            .sum()
    };
    let delta = |key: &str| sent(&after, key).saturating_sub(sent(&before, key));
    side.control = Some((delta("ihave"), delta("graft"), delta("tree")));
    let pooled = cluster.min_pool().await;
    side.memory = Some(memory(&cluster.pids(), pooled));
    side
}

/// The comparison's table: one row per measure, mesh and overlay side by side.
fn overlay_table(report: &OverlayReport) -> String {
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let both = |f: &dyn Fn(&Side) -> String| (f(&report.mesh), f(&report.overlay));
    let per_node = |p: Option<PerNode>| p.map_or("-".to_owned(), |p| p.show());
    let (m, o) = both(&|s| cell(Some(&s.ready), |v| fmt_ms(*v)));
    rows.push((
        "ready: from the first start to full mesh / to a connected overlay".to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let (m, o) = both(&|s| {
        s.tree
            .as_ref()
            .map_or("-".to_owned(), |t| cell(Some(t), |v| fmt_ms(*v)))
    });
    rows.push((
        "then until the tree settled (one root, no TREE frame and no link change for 0.5 s)"
            .to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let (m, o) = both(&|s| per_node(s.connections));
    rows.push((
        "connections per node once ready (mesh: STATUS connected + inbound; overlay: links, \
         STATUS overlay.active)"
            .to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let (m2, o2) = both(&|s| per_node(s.links_after));
    rows.push((
        "overlay links per node after the burst".to_owned(),
        m2,
        format!(
            "{o2}{}",
            if report.overlay.isolated > 0 {
                format!(", {} isolated", report.overlay.isolated)
            } else {
                String::new()
            }
        ),
        "-".to_owned(),
    ));
    let (files, memory) = report.ratios();
    let ratio_cell = |r: Option<f64>| {
        r.map_or("-".to_owned(), |r| {
            if r >= 1.0 {
                format!("{} (overlay {r:.1}x faster)", fmt_ratio(r))
            } else {
                format!("{} (overlay {:.1}x slower)", fmt_ratio(r), 1.0 / r)
            }
        })
    };
    let (m, o) = both(&|s| {
        cell(Some(&s.burst), |b| {
            cell(Some(&b.files), |r| {
                format!(
                    "{} ({} tx/s)",
                    fmt_ms(r.all_ms),
                    fmt_count(r.tx_per_s(b.size))
                )
            })
        })
    });
    rows.push((
        format!(
            "burst of {}: in every transactions.json",
            fmt_count(report.burst as f64)
        ),
        m,
        o,
        ratio_cell(files),
    ));
    let (m, o) = both(&|s| {
        cell(Some(&s.burst), |b| {
            b.memory.map_or("-".to_owned(), |r| {
                format!(
                    "{} ({} tx/s)",
                    fmt_ms(r.all_ms),
                    fmt_count(r.tx_per_s(b.size))
                )
            })
        })
    });
    rows.push((
        "burst: in every pool in memory (STATUS)".to_owned(),
        m,
        o,
        ratio_cell(memory),
    ));
    let (m, o) = both(&|s| {
        cell(Some(&s.burst), |b| {
            cell(Some(&b.files), |r| fmt_ms(r.origin_ms))
        })
    });
    rows.push((
        "burst: in node 1's transactions.json".to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let (m, o) = both(&|s| cell(Some(&s.burst), |b| fmt_ms(b.send_ms)));
    rows.push((
        "burst: the client's time to write every frame".to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let (m, o) = both(&|s| {
        cell(Some(&s.burst), |b| {
            cell(Some(&b.frames_per_tx), |v| format!("{v:.2}"))
        })
    });
    rows.push((
        "frames carrying transactions sent per transaction (TRANSACTION, TRANSACTIONS, TXS)"
            .to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let (m, o) = both(&|s| {
        s.control.map_or("-".to_owned(), |(ihave, graft, tree)| {
            format!(
                "{} / {} / {}",
                fmt_count(ihave as f64),
                fmt_count(graft as f64),
                fmt_count(tree as f64)
            )
        })
    });
    rows.push((
        "IHAVE / GRAFT / TREE frames sent over the burst".to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let (m, o) = both(&|s| {
        cell(Some(&s.burst), |b| {
            b.catch_up.map_or("-".to_owned(), |(sync, txs)| {
                format!("{} / {}", fmt_count(sync as f64), fmt_count(txs as f64))
            })
        })
    });
    rows.push((
        "catch-up SYNC / TXS frames sent over the burst".to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let (m, o) = both(&|s| s.cpu_s.map_or("-".to_owned(), |v| format!("{v:.1} s")));
    rows.push((
        format!(
            "CPU time of all nodes over the burst, until the counters settled (user + system; \
             {} cores)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        m,
        o,
        "-".to_owned(),
    ));
    let (m, o) = both(&|s| cell(s.memory.as_ref(), |m| fmt_mib(m.max_hwm_kib)));
    rows.push((
        "peak resident memory per node (max VmHWM)".to_owned(),
        m,
        o,
        "-".to_owned(),
    ));
    let mut out = String::new();
    out.push_str("| measure | full mesh | overlay | overlay / mesh |\n");
    out.push_str("|---|---|---|---|\n");
    for (label, mesh, overlay, ratio) in rows {
        let _ = writeln!(out, "| {label} | {mesh} | {overlay} | {ratio} |");
    }
    out
}

/// Issue 12's figure: at N = 50 the overlay carries a burst at least 5x faster.
fn overlay_target(report: &OverlayReport) -> String {
    let conditions = if report.nodes == 50 {
        String::new()
    } else {
        format!(
            " (the figure is for N = 50; this run has N = {})",
            report.nodes
        )
    };
    match report.ratios().0 {
        Some(r) => format!(
            "The overlay carries a burst at least 5x faster than the full mesh (into every \
             transactions.json): {}x, {}{conditions}.",
            fmt_ratio(r),
            if r >= 5.0 { "met" } else { "NOT met" }
        ),
        None => format!(
            "The overlay carries a burst at least 5x faster than the full mesh: no figure, a \
             burst did not complete{conditions}."
        ),
    }
}

const OVERLAY_HOW: &str = "How it is measured: two fresh networks of our nodes (release \
    build) on loopback, started one after another, each knowing all earlier ones; the first \
    in the full mesh (ready at full mesh), the second with P2P_OVERLAY=on (ready once every \
    node reports an active view that is not empty and the links, both directions together, \
    join all nodes; then until every node names the same root and no TREE frame was sent and \
    no link changed for 0.5 s; then 2 s more). Each gets the same burst into node 1 from one client \
    connection (pre-serialised TRANSACTION frames), timed from the first frame until every \
    node's transactions.json holds it (polled by length, then each read whole once to check), \
    and until every STATUS pool count does. Frames are the STATUS `sent` counters' growth \
    over the burst, once they stop moving (TRANSACTIONS frames pack many transactions, so \
    frames per transaction may be well below 1). Connections per node: in the full mesh \
    STATUS `connected` plus `inbound`, less the bench's status probe; in the overlay the \
    links (STATUS `overlay.active`), each one connection used both ways.";

fn overlay_json(report: &OverlayReport) -> Value {
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let side = |s: &Side| {
        let burst = match &s.burst {
            Ok(b) => json!({
                "send_ms": round(b.send_ms),
                "files_ms": b.files.as_ref().ok().map(|r| round(r.all_ms)),
                "files_tx_per_s": b.files_tx_per_s().map(|v| v.round()),
                "files_error": b.files.as_ref().err(),
                "origin_files_ms": b.files.as_ref().ok().map(|r| round(r.origin_ms)),
                "memory_ms": b.memory.map(|r| round(r.all_ms)),
                "memory_tx_per_s": b.memory_tx_per_s().map(|v| v.round()),
                "frames_per_tx": b.frames_per_tx.as_ref().ok().map(|v| round(*v)),
                "catch_up": b.catch_up.map(|(sync, txs)| json!({ "sync": sync, "txs": txs })),
            }),
            Err(e) => json!({ "error": e }),
        };
        json!({
            "overlay": s.overlay,
            "ready_ms": match &s.ready {
                Ok(v) => json!(round(*v)),
                Err(e) => json!({ "error": e }),
            },
            "tree_ms": match &s.tree {
                None => Value::Null,
                Some(Ok(v)) => json!(round(*v)),
                Some(Err(e)) => json!({ "error": e }),
            },
            "connections_per_node": s.connections.map(|p| p.json()),
            "links_per_node_after": s.links_after.map(|p| p.json()),
            "isolated": s.isolated,
            "burst": burst,
            "control": s.control.map(|(ihave, graft, tree)| {
                json!({ "ihave": ihave, "graft": graft, "tree": tree })
            }),
            "cpu_s": s.cpu_s.map(round),
            "max_hwm_kib": s.memory.as_ref().and_then(|m| m.as_ref().ok()).map(|m| m.max_hwm_kib),
        })
    };
    let (files, memory) = report.ratios();
    json!({
        "nodes": report.nodes,
        "burst": report.burst,
        "mesh": side(&report.mesh),
        "overlay": side(&report.overlay),
        "ratio_files": files.map(|r| (r * 100.0).round() / 100.0),
        "ratio_memory": memory.map(|r| (r * 100.0).round() / 100.0),
        "seconds": round(report.seconds),
    })
}

fn print_overlay(report: &OverlayReport) {
    println!();
    println!(
        "== N = {}: full mesh against overlay, a burst of {} into node 1 each; {:.0} s; load \
         average {} before, {} after ==",
        report.nodes,
        fmt_count(report.burst as f64),
        report.seconds,
        report.load.0,
        report.load.1
    );
    println!();
    print!("{}", overlay_table(report));
    println!();
    println!("- {}", overlay_target(report));
    println!();
    println!("{OVERLAY_HOW}");
    println!();
    println!("{}", overlay_json(report));
}

fn write_overlay(path: &Path, command: &str, machine: &Machine, report: &OverlayReport) {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "## The overlay against the full mesh, N = {}\n",
        report.nodes
    );
    let _ = writeln!(body, "Command: `{command}`\n");
    let _ = writeln!(
        body,
        "{} Load average (1, 5, 15 min) {} before the run, {} after; the run took {:.0} s.\n",
        machine.markdown(),
        report.load.0,
        report.load.1,
        report.seconds
    );
    body.push_str(&overlay_table(report));
    body.push('\n');
    let _ = writeln!(body, "- {}\n", overlay_target(report));
    let _ = writeln!(body, "{OVERLAY_HOW}\n");
    let _ = writeln!(
        body,
        "The run as one JSON line:\n\n```json\n{}\n```\n",
        overlay_json(report)
    );
    write_section(path, "bench:overlay", &body);
}

// ---------------------------------------------------------------------------------------
// BENCHMARKS.md

struct Machine {
    cores: usize,
    cpu: String,
    kernel: String,
    rustc: String,
    node: String,
    date: String,
    /// The commit p2p-node was built from, and whether p2p-core or native-host had changes
    /// on top of it.
    build: String,
}

impl Machine {
    fn read() -> Machine {
        let run = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            rustc: run("rustc", &["--version"]),
            node: run("node", &["--version"]),
            date: run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            build: build_commit(),
        }
    }

    fn markdown(&self) -> String {
        format!(
            "Machine: {} cores (`nproc`), {}, Linux {}, {}, Node.js {}; run {}; p2p-node built \
             from {}.",
            self.cores, self.cpu, self.kernel, self.rustc, self.node, self.date, self.build
        )
    }
}

fn build_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(tests::workspace_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--", "p2p-core", "native-host"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("commit {commit} with uncommitted changes to p2p-core or native-host")
            } else {
                format!("commit {commit}")
            }
        }
        None => "an unknown commit".to_owned(),
    }
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in `path` with
/// `body` (markers kept); appends the section if the markers are missing, and makes the
/// file if it is.
fn write_section(path: &Path, name: &str, body: &str) {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let section = format!("{begin}\n{body}{end}");
    let text = match fs::read_to_string(path) {
        Ok(old) => match (old.find(&begin), old.find(&end)) {
            (Some(b), Some(e)) if b < e => {
                format!("{}{section}{}", &old[..b], &old[e + end.len()..])
            }
            _ => format!("{}\n\n{section}\n", old.trim_end()),
        },
        Err(_) => format!(
            "# Benchmarks\n\nFigures of `p2p-node` measured on real processes; each section \
             names the command that produced it.\n\n{section}\n"
        ),
    };
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    eprintln!("bench: wrote the {name} section of {}", path.display());
}

fn write_figures(path: &Path, command: &str, machine: &Machine, report: &Report) {
    let p = report.point;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "## p2p-node beside the JavaScript node, N = {}\n",
        p.nodes
    );
    let _ = writeln!(body, "Command: `{command}`\n");
    let _ = writeln!(
        body,
        "{} Load average (1, 5, 15 min) {} before the run, {} after; the run took {:.0} s.\n",
        machine.markdown(),
        report.load.0,
        report.load.1,
        report.seconds
    );
    body.push_str(&table(report));
    body.push('\n');
    body.push_str("The figures of DESIGN.md, from this run:\n\n");
    for line in targets(report) {
        let _ = writeln!(body, "- {line}");
    }
    let _ = writeln!(body, "\n{HOW}\n");
    let _ = writeln!(
        body,
        "The run as one JSON line:\n\n```json\n{}\n```\n",
        json_line(report)
    );
    write_section(path, "bench:figures", &body);
}

fn write_sweep(path: &Path, chart: &Path, command: &str, machine: &Machine, reports: &[Report]) {
    let base = path.parent().unwrap_or(Path::new("."));
    let chart_file = base.join(chart);
    let chart_note = match draw_chart(&chart_file, reports) {
        Ok(()) => {
            eprintln!("bench: drew {}", chart_file.display());
            format!(
                "![Throughput and mesh time against N, ours and the JavaScript node's]({})\n",
                chart.display()
            )
        }
        Err(e) => format!("(the chart could not be drawn: {e})\n"),
    };
    let mut body = String::new();
    body.push_str("## Sweep: N = 3, 10, 30, 50\n\n");
    let _ = writeln!(body, "Command: `{command}`\n");
    let loads: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "N = {}: {} before, {} after, {:.0} s",
                r.point.nodes, r.load.0, r.load.1, r.seconds
            )
        })
        .collect();
    let _ = writeln!(
        body,
        "{} Load average (1, 5, 15 min) per N: {}.\n",
        machine.markdown(),
        loads.join("; ")
    );
    body.push_str(&chart_note);
    body.push('\n');
    body.push_str(&sweep_table(reports));
    body.push('\n');
    body.push_str(
        "Bursts: \"ours\" is our node's big burst; \"both\" is the burst both implementations \
         get, for the ratio. The JavaScript node's burst shrinks as N grows: it floods N x (N-1) \
         frames per transaction and rewrites its whole pool file per transaction, so its cost \
         grows with the square of the burst; ours runs that size too. Single transactions are \
         timed with fresh pools.\n\n",
    );
    let _ = writeln!(body, "{HOW}\n");
    body.push_str("Each N as one JSON line:\n\n```json\n");
    for r in reports {
        let _ = writeln!(body, "{}", json_line(r));
    }
    body.push_str("```\n");
    write_section(path, "bench:sweep", &body);
}

#[cfg(test)]
mod unit {
    use super::*;

    fn report(nodes: u16, tx_per_s: f64, mesh_ms: f64) -> Report {
        let burst = |size: u64, rate: f64| Burst {
            size,
            send_ms: 1.0,
            files: Ok(Reached {
                origin_ms: 1.0,
                all_ms: size as f64 / rate * 1000.0,
            }),
            memory: None,
            frames_per_tx: Ok(f64::from(nodes - 1)),
            catch_up: Some((0, 0)),
        };
        let point = SweepPoint {
            nodes,
            burst: 1000,
            js_burst: 100,
            single: 1,
        };
        Report {
            point,
            ours: ImplReport {
                mesh_sequential: Some(Ok(mesh_ms)),
                mesh_all_at_once: Some(Ok(mesh_ms * 2.0)),
                bursts: vec![
                    (100, Ok(burst(100, tx_per_s / 2.0))),
                    (1000, Ok(burst(1000, tx_per_s))),
                ],
                ..ImplReport::default()
            },
            js: Some(ImplReport {
                mesh_sequential: Some(Ok(mesh_ms * 20.0)),
                mesh_all_at_once: Some(Err("no full mesh after 10 s".to_owned())),
                bursts: vec![(100, Ok(burst(100, tx_per_s / 300.0)))],
                ..ImplReport::default()
            }),
            seconds: 1.0,
            load: ("0.00 0.00 0.00".to_owned(), "0.00 0.00 0.00".to_owned()),
        }
    }

    #[test]
    fn the_sweep_chart_is_drawn_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs").join("chart.svg");
        let reports = [report(3, 50_000.0, 10.0), report(10, 20_000.0, 60.0)];
        draw_chart(&path, &reports).unwrap();
        let svg = fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.contains("JavaScript node"));
        assert!(sweep_table(&reports).contains("| 10 |"));
    }

    #[test]
    fn a_section_is_replaced_between_its_markers_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("BENCHMARKS.md");
        write_section(&path, "bench:sweep", "first\n");
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("<!-- bench:sweep:begin -->\nfirst\n<!-- bench:sweep:end -->"));
        let other = "# Benchmarks\n\n<!-- simulate:begin -->\nsim\n<!-- simulate:end -->\n\n\
                     <!-- bench:sweep:begin -->\nold\n<!-- bench:sweep:end -->\n\ntail\n";
        fs::write(&path, other).unwrap();
        write_section(&path, "bench:sweep", "new\n");
        write_section(&path, "bench:figures", "figures\n");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("<!-- simulate:begin -->\nsim\n<!-- simulate:end -->"));
        assert!(text.contains("<!-- bench:sweep:begin -->\nnew\n<!-- bench:sweep:end -->\n\ntail"));
        assert!(!text.contains("old"));
        assert!(
            text.ends_with("<!-- bench:figures:begin -->\nfigures\n<!-- bench:figures:end -->\n")
        );
    }

    #[test]
    fn overlay_links_count_both_ways_and_parts_are_counted() {
        let addresses: Vec<String> = (1..=4).map(|i| format!("ws://localhost:{i}")).collect();
        let view = |peers: &[usize]| Some(peers.iter().map(|&i| addresses[i].clone()).collect());
        // 0-1 named by 0 only, 2-3 by 3 only: two parts; 1-2 named by 1 joins them.
        let views = vec![view(&[1]), view(&[]), view(&[]), view(&[2])];
        assert_eq!(overlay_components(&addresses, &views), 2);
        let views = vec![view(&[1]), view(&[2]), None, view(&[2])];
        assert_eq!(overlay_components(&addresses, &views), 1);
        let strangers = vec![
            view(&[]),
            None,
            None,
            Some(vec!["ws://elsewhere:1".to_owned()]),
        ];
        assert_eq!(overlay_components(&addresses, &strangers), 4);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut values, 0.50), 50.0);
        assert_eq!(percentile(&mut values, 0.99), 99.0);
        assert_eq!(percentile(&mut [7.0], 0.99), 7.0);
    }
}
