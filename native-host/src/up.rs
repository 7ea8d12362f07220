//! `p2p-node up` and `p2p-node status`: a local network of nodes, and a live table of it.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use p2p_core::Address;

use crate::client::{self, NodeStatus};
use crate::folder::{self, RootError};
use crate::runtime;
use crate::web::{self, Web};

/// Most nodes `up` starts.
pub(crate) const MAX_NODES: u32 = 100;

/// Why `up` or `status` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpError {
    /// Reading or cloning node folders failed.
    #[error(transparent)]
    Root(#[from] RootError),
    /// A node folder's `.env` is unusable.
    #[error(transparent)]
    Folder(#[from] folder::FolderError),
    /// A node of the network is already running.
    #[error("{node} is already running on port {port}: stop it first (or see `p2p-node status`)")]
    AlreadyRunning {
        /// Its folder name.
        node: String,
        /// Its port.
        port: u16,
    },
    /// A node process could not be started.
    #[error("cannot start {node}: {source}")]
    Spawn {
        /// Its folder name.
        node: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// No node folders at all.
    #[error("no node folders (node-1, node-2, …) in {0}")]
    NoNodes(PathBuf),
    /// The browser page (`--web`) cannot be served.
    #[error(transparent)]
    Web(#[from] web::WebError),
}

/// One node folder and what we last learnt of it.
struct Row {
    name: String,
    port: u16,
    address: Address,
    status: Option<NodeStatus>,
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn rows(root: &Path, count: Option<u32>) -> Result<Vec<Row>, UpError> {
    let mut rows = Vec::new();
    for (n, path) in folder::node_folders(root)? {
        if count.is_some_and(|count| n > count) {
            continue;
        }
        let env = folder::read_env(&path)?;
        rows.push(Row {
            name: folder_name(&path),
            port: env.port,
            address: env.local_address(),
            status: None,
        });
    }
    Ok(rows)
}

fn refresh(rows: &mut [Row]) {
    runtime::block_on(async {
        for row in rows.iter_mut() {
            row.status = client::status(&row.address).await.ok();
        }
    });
}

/// Short form of an address for the table: the port alone for local nodes.
fn short(address: &str) -> String {
    match address.parse::<Address>() {
        Ok(a) if a.is_loopback() => a.port().to_string(),
        _ => address.to_owned(),
    }
}

/// Whether every running node is connected to every other running node.
fn full_mesh(rows: &[Row]) -> bool {
    let running: Vec<&NodeStatus> = rows.iter().filter_map(|r| r.status.as_ref()).collect();
    running.len() == rows.len()
        && running.iter().all(|s| {
            running
                .iter()
                .filter(|o| o.address != s.address)
                .all(|o| s.connected.contains(&o.address))
        })
}

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:>5}  {:<8} {:>6}  connected to",
        "node", "port", "state", "pool"
    );
    for row in rows {
        match &row.status {
            Some(s) => {
                let mut peers: Vec<String> = s.connected.iter().map(|a| short(a)).collect();
                peers.sort();
                let mut line = peers.join(" ");
                if !s.dialling.is_empty() {
                    let _ = write!(line, "  (dialling {})", s.dialling.len());
                }
                if s.pages > 0 {
                    let plural = if s.pages == 1 { "" } else { "s" };
                    let _ = write!(line, "  + {} page{plural}", s.pages);
                }
                let _ = writeln!(
                    out,
                    "{:<9} {:>5}  {:<8} {:>6}  {}",
                    row.name, row.port, "running", s.pool, line
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<9} {:>5}  {:<8} {:>6}  -",
                    row.name, row.port, "stopped", "-"
                );
            }
        }
    }
    let running = rows.iter().filter(|r| r.status.is_some()).count();
    let mesh = if full_mesh(rows) {
        "full mesh"
    } else {
        "not a full mesh yet"
    };
    let _ = writeln!(out, "{running}/{} running, {mesh}", rows.len());
    out
}

/// `p2p-node status`: the table once (or JSON lines).
pub(crate) fn status(root: &Path, json: bool) -> Result<(), UpError> {
    let mut rows = rows(root, None)?;
    if rows.is_empty() {
        return Err(UpError::NoNodes(root.to_owned()));
    }
    refresh(&mut rows);
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "node": r.name,
                    "port": r.port,
                    "running": r.status.is_some(),
                    "connected": r.status.as_ref().map(|s| s.connected.clone()),
                    "dialling": r.status.as_ref().map(|s| s.dialling.clone()),
                    "inbound": r.status.as_ref().map(|s| s.inbound),
                    "pages": r.status.as_ref().map(|s| s.pages),
                    "watchers": r.status.as_ref().map(|s| s.watchers),
                    "pool": r.status.as_ref().map(|s| s.pool),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

/// Child processes, stopped with SIGTERM (then SIGKILL) when dropped.
struct Nodes(Vec<(String, Child)>);

impl Nodes {
    fn stop(&mut self) {
        for (_, child) in &self.0 {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, child) in &mut self.0 {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("{name} did not stop in time; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.0.clear();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `p2p-node up N`: clones node folders up to N, starts them, shows the mesh forming,
/// then a live table until Ctrl-C. With `web`, serves the browser page on that port
/// too, bound (and built if need be) before any node starts.
pub(crate) fn up(root: &Path, count: u32, web: Option<u16>) -> Result<(), UpError> {
    let count = count.clamp(1, MAX_NODES);
    if !root.join("node-1").is_dir() {
        return Err(RootError::NoTemplate(root.to_owned()).into());
    }
    let page = match web {
        Some(port) => {
            let page = Web::start(root, port)?;
            println!("serving the page (wasm-demo/dist) on {}", page.url());
            Some(page)
        }
        None => None,
    };
    for n in 2..=count {
        if !root.join(format!("node-{n}")).exists() {
            let (made, _) = folder::clone_node(root)?;
            println!("cloned node-1 into node-{made}");
        }
    }
    let mut rows = rows(root, Some(count))?;
    refresh(&mut rows);
    if let Some(row) = rows.iter().find(|r| r.status.is_some()) {
        return Err(UpError::AlreadyRunning {
            node: row.name.clone(),
            port: row.port,
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        eprintln!("warning: cannot catch Ctrl-C ({e})");
    }
    let exe = std::env::current_exe().map_err(|source| UpError::Spawn {
        node: "nodes".to_owned(),
        source,
    })?;
    let mut nodes = Nodes(Vec::new());
    let started = Instant::now();
    for row in &rows {
        let dir = root.join(&row.name);
        let spawn_error = |source| UpError::Spawn {
            node: row.name.clone(),
            source,
        };
        let log = File::create(dir.join("node.log")).map_err(spawn_error)?;
        let child = Command::new(&exe)
            .arg("start")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(spawn_error)?;
        nodes.0.push((row.name.clone(), child));
        println!(
            "started {} on port {} (log: {}/node.log)",
            row.name, row.port, row.name
        );
    }
    let terminal = std::io::stdout().is_terminal();
    let mut meshed = false;
    let mut shown = String::new();
    let mut shown_lines = 0;
    let mut exited = std::collections::BTreeSet::new();
    while !stop.load(Ordering::SeqCst) {
        refresh(&mut rows);
        for (name, child) in &mut nodes.0 {
            if let Ok(Some(exit)) = child.try_wait() {
                if exited.insert(name.clone()) {
                    println!("{name} exited ({exit}); see {name}/node.log");
                    shown_lines = 0;
                }
            }
        }
        if !meshed && full_mesh(&rows) {
            meshed = true;
            println!(
                "full mesh of {} nodes after {} ms",
                rows.len(),
                started.elapsed().as_millis()
            );
            println!(
                "add a transaction from another terminal: cd {} && cargo add-transaction   (Ctrl-C stops every node)",
                root.join(&rows[rows.len().min(2) - 1].name).display()
            );
            if let Some(page) = &page {
                println!("the live view: {}", page.live_url(&rows[0].address));
            }
            shown_lines = 0;
        }
        let text = table(&rows);
        if text != shown {
            let mut out = std::io::stdout().lock();
            if terminal && shown_lines > 0 {
                let _ = write!(out, "\x1b[{shown_lines}F\x1b[J");
            }
            let _ = write!(out, "{text}");
            let _ = out.flush();
            shown_lines = text.lines().count();
            shown = text;
        }
        std::thread::sleep(Duration::from_millis(if meshed { 300 } else { 100 }));
    }
    println!("stopping {} nodes…", nodes.0.len());
    nodes.stop();
    println!("stopped; each pool is saved in its node's transactions.json");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u16, connected: &[u16], pages: usize) -> Row {
        let address = Address::localhost(4000 + n);
        Row {
            name: format!("node-{n}"),
            port: 4000 + n,
            status: Some(NodeStatus {
                address: address.to_string(),
                connected: connected
                    .iter()
                    .map(|&p| Address::localhost(4000 + p).to_string())
                    .collect(),
                dialling: Vec::new(),
                inbound: connected.len() + pages,
                pages,
                watchers: pages,
                pool: 3,
            }),
            address,
        }
    }

    #[test]
    fn the_table_shows_a_page_among_a_nodes_connections() {
        let rows = [row(1, &[2], 1), row(2, &[1], 0)];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].ends_with("4002  + 1 page"), "{text}");
        assert!(lines[2].ends_with("4001"), "{text}");
        assert_eq!(lines[3], "2/2 running, full mesh");
    }
}
