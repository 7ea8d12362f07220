//! `p2p-node up` and `p2p-node status`: a local network of nodes, and a live table of it.

use std::collections::HashMap;
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

use crate::client::{self, NodeStatus, OverlayView};
use crate::folder::{self, RootError};
use crate::runtime;
use crate::web::{self, Web};

/// Most nodes `up` starts in the full mesh: each node dials every other and accepts a
/// connection from every other, so N nodes hold N * (N - 1) connections in all (9,900 at
/// 100) and every HANDSHAKE names all N.
pub(crate) const MAX_NODES: u32 = 100;

/// Most nodes `up --overlay` starts: each node holds a few links (its active view), so the
/// cost per node does not grow with N; the ports are 4001 on, one per node.
pub(crate) const MAX_OVERLAY_NODES: u32 = 250;

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
    /// More nodes than the full mesh is allowed.
    #[error(
        "up {0}: at most {MAX_NODES} nodes in the full mesh (every node connects to every \
         other: {0} nodes would hold {conns} connections); up to {MAX_OVERLAY_NODES} with \
         --overlay, where each node keeps a few links",
        conns = u64::from(*.0) * u64::from(.0.saturating_sub(1))
    )]
    TooManyForMesh(u32),
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

/// The overlay of the running nodes that report one (those in the overlay mode), as
/// the sizes of its parts, largest first: nodes in one part reach each other through
/// active-view links, a link counting if either end lists it (a link one end has just
/// made or dropped is still a link). Addresses of nodes not in these rows are left out.
/// `None` when no running node is in the overlay mode.
fn overlay_parts(rows: &[Row]) -> Option<Vec<usize>> {
    let members: Vec<(&Row, &OverlayView)> = rows
        .iter()
        .filter_map(|r| {
            let overlay = r.status.as_ref()?.overlay.as_ref()?;
            Some((r, overlay))
        })
        .collect();
    if members.is_empty() {
        return None;
    }
    // A node is named by the address `status` reaches it at and by the one it reports
    // (its advertised address, which its peers list): either may be in a view.
    let mut index: HashMap<Address, usize> = HashMap::new();
    for (i, (row, _)) in members.iter().enumerate() {
        index.insert(row.address.clone(), i);
        if let Some(reported) = row.status.as_ref().and_then(|s| s.address.parse().ok()) {
            index.insert(reported, i);
        }
    }
    // Union-find over the members: the parts are its sets.
    let mut parent: Vec<usize> = (0..members.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, (_, overlay)) in members.iter().enumerate() {
        for peer in &overlay.active {
            let Some(&j) = peer.parse::<Address>().ok().and_then(|a| index.get(&a)) else {
                continue;
            };
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a] = b;
        }
    }
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for i in 0..members.len() {
        *sizes.entry(root(&mut parent, i)).or_default() += 1;
    }
    let mut parts: Vec<usize> = sizes.into_values().collect();
    parts.sort_unstable_by(|a, b| b.cmp(a));
    Some(parts)
}

/// What the network has formed once every node runs: a connected overlay if any node is
/// in the overlay mode (nodes in the full mesh beside it are not waited for), else a full
/// mesh. `None` while it has not.
fn formed(rows: &[Row]) -> Option<&'static str> {
    if rows.iter().any(|r| r.status.is_none()) {
        return None;
    }
    match overlay_parts(rows) {
        Some(parts) => (parts.len() == 1).then_some("connected overlay"),
        None => full_mesh(rows).then_some("full mesh"),
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
                let mut line = ports(&s.connected);
                // Two spaces between the pieces, none before the first.
                let mut add = |piece: String| {
                    if !line.is_empty() {
                        line.push_str("  ");
                    }
                    line.push_str(&piece);
                };
                if !s.dialling.is_empty() {
                    add(format!("(dialling {})", s.dialling.len()));
                }
                if s.pages > 0 {
                    let plural = if s.pages == 1 { "" } else { "s" };
                    add(format!("+ {} page{plural}", s.pages));
                }
                if let Some(overlay) = &s.overlay {
                    let links = match ports(&overlay.active) {
                        none if none.is_empty() => "none".to_owned(),
                        links => links,
                    };
                    let isolated = if overlay.isolated { ", isolated" } else { "" };
                    add(format!(
                        "| active view {links} ({} eager, {} passive{isolated})",
                        overlay.eager, overlay.passive
                    ));
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
    let (mode, shape) = match overlay_parts(rows) {
        None if full_mesh(rows) => (String::new(), "full mesh".to_owned()),
        None => (String::new(), "not a full mesh yet".to_owned()),
        Some(parts) => {
            let members: usize = parts.iter().sum();
            // Nodes in the full mesh beside an overlay are not part of it: say how many are.
            let mode = if members < running {
                format!(" ({members} in overlay mode)")
            } else {
                String::new()
            };
            let shape = match parts.as_slice() {
                [] | [_] => "overlay connected".to_owned(),
                [largest, ..] => format!(
                    "overlay not connected ({} parts, the largest of {largest} node{})",
                    parts.len(),
                    if *largest == 1 { "" } else { "s" }
                ),
            };
            (mode, shape)
        }
    };
    let _ = writeln!(out, "{running}/{} running{mode}, {shape}", rows.len());
    out
}

/// The addresses' short forms, sorted, space-separated.
fn ports(addresses: &[String]) -> String {
    let mut shorts: Vec<String> = addresses.iter().map(|a| short(a)).collect();
    shorts.sort();
    shorts.join(" ")
}

/// `status --json`: one object per node folder; `overlay` as the node reported it (`null`
/// when stopped, in the full mesh or of an older build).
fn status_json(rows: &[Row]) -> serde_json::Value {
    rows.iter()
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
                "overlay": r.status.as_ref().and_then(|s| s.overlay.as_ref()),
            })
        })
        .collect()
}

/// `p2p-node status`: the table once (or JSON lines).
pub(crate) fn status(root: &Path, json: bool) -> Result<(), UpError> {
    let mut rows = rows(root, None)?;
    if rows.is_empty() {
        return Err(UpError::NoNodes(root.to_owned()));
    }
    refresh(&mut rows);
    if json {
        println!("{}", status_json(&rows));
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
/// too, bound (and built if need be) before any node starts. With `overlay`, every node
/// runs in the overlay mode (`start --overlay`); otherwise each as its `.env` says.
pub(crate) fn up(root: &Path, count: u32, web: Option<u16>, overlay: bool) -> Result<(), UpError> {
    if !overlay && count > MAX_NODES {
        return Err(UpError::TooManyForMesh(count));
    }
    let count = count.clamp(1, MAX_OVERLAY_NODES);
    if !root.join("node-1").is_dir() {
        return Err(RootError::NoTemplate(root.to_owned()).into());
    }
    // A folder whose .env is unusable or contradicts --overlay stops `up` before the page
    // is built or any node starts (clones made below say nothing of the overlay).
    for (n, path) in folder::node_folders(root)? {
        if n <= count {
            folder::overlay_mode(&path, &folder::read_env(&path)?, overlay)?;
        }
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
        let in_overlay = folder::overlay_mode(&dir, &folder::read_env(&dir)?, overlay)?;
        let log = File::create(dir.join("node.log")).map_err(spawn_error)?;
        let mut command = Command::new(&exe);
        command.arg("start");
        if overlay {
            command.arg("--overlay");
        }
        let child = command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(spawn_error)?;
        nodes.0.push((row.name.clone(), child));
        println!(
            "started {} on port {}{} (log: {}/node.log)",
            row.name,
            row.port,
            if in_overlay { " in overlay mode" } else { "" },
            row.name
        );
    }
    let terminal = std::io::stdout().is_terminal();
    let mut done = false;
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
        if let Some(shape) = formed(&rows).filter(|_| !done) {
            done = true;
            println!(
                "{shape} of {} nodes after {} ms",
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
        std::thread::sleep(Duration::from_millis(if done { 300 } else { 100 }));
    }
    println!("stopping {} nodes…", nodes.0.len());
    nodes.stop();
    println!("stopped; each pool is saved in its node's transactions.json");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(ports: &[u16]) -> Vec<String> {
        ports
            .iter()
            .map(|&p| Address::localhost(4000 + p).to_string())
            .collect()
    }

    fn row(n: u16, connected: &[u16], pages: usize) -> Row {
        let address = Address::localhost(4000 + n);
        Row {
            name: format!("node-{n}"),
            port: 4000 + n,
            status: Some(NodeStatus {
                address: address.to_string(),
                connected: addresses(connected),
                dialling: Vec::new(),
                inbound: connected.len() + pages,
                pages,
                watchers: pages,
                pool: 3,
                overlay: None,
            }),
            address,
        }
    }

    /// A node in the overlay mode linked to `active`, connected (dialled) to the same,
    /// isolated when it has no link.
    fn overlay_row(n: u16, active: &[u16]) -> Row {
        let mut row = row(n, active, 0);
        if let Some(status) = &mut row.status {
            status.overlay = Some(OverlayView {
                active: addresses(active),
                eager: active.len(),
                passive: 10,
                isolated: active.is_empty(),
            });
        }
        row
    }

    fn stopped(n: u16) -> Row {
        Row {
            status: None,
            ..row(n, &[], 0)
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

    #[test]
    fn a_link_counts_when_either_end_lists_it() {
        // 1 lists 2 but 2 does not list 1 (yet); 3 and 4 list each other.
        let mut rows = vec![
            overlay_row(1, &[2]),
            overlay_row(2, &[]),
            overlay_row(3, &[4]),
            overlay_row(4, &[3]),
        ];
        assert_eq!(overlay_parts(&rows), Some(vec![2, 2]));
        rows[1] = overlay_row(2, &[3]);
        assert_eq!(overlay_parts(&rows), Some(vec![4]));
    }

    #[test]
    fn the_overlay_is_made_of_running_overlay_nodes_only() {
        // 1 links to a mesh node and to a node no folder has; 4 to a stopped node.
        let rows = [
            overlay_row(1, &[2, 9]),
            row(2, &[1], 0),
            stopped(3),
            overlay_row(4, &[3]),
        ];
        assert_eq!(overlay_parts(&rows), Some(vec![1, 1]));
        assert_eq!(overlay_parts(&[row(1, &[2], 0), row(2, &[1], 0)]), None);
        assert_eq!(overlay_parts(&[stopped(1)]), None);
    }

    /// `overlay_row(n, &[])` whose active view lists these texts.
    fn listing(n: u16, active: &[&str]) -> Row {
        let mut row = overlay_row(n, &[]);
        if let Some(overlay) = row.status.as_mut().and_then(|s| s.overlay.as_mut()) {
            overlay.active = active.iter().map(|&a| a.to_owned()).collect();
        }
        row
    }

    #[test]
    fn a_node_is_found_under_any_spelling_and_under_its_advertised_address() {
        let rows = [listing(1, &["ws://127.0.0.1:4002/"]), overlay_row(2, &[])];
        assert_eq!(overlay_parts(&rows), Some(vec![2]));
        // 2 advertises another address (P2P_ADVERTISE), which 3 lists.
        let mut two = overlay_row(2, &[]);
        if let Some(status) = &mut two.status {
            status.address = "ws://192.0.2.7:4002".to_owned();
        }
        let rows = [two, listing(3, &["ws://192.0.2.7:4002", "not an address"])];
        assert_eq!(overlay_parts(&rows), Some(vec![2]));
    }

    #[test]
    fn the_table_shows_each_active_view_and_a_connected_overlay() {
        let rows = [
            overlay_row(1, &[2, 3]),
            overlay_row(2, &[1]),
            overlay_row(3, &[1]),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].ends_with("4002 4003  | active view 4002 4003 (2 eager, 10 passive)"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("4001  | active view 4001 (1 eager, 10 passive)"),
            "{text}"
        );
        assert_eq!(lines[4], "3/3 running, overlay connected");
    }

    #[test]
    fn the_table_says_when_the_overlay_is_not_connected() {
        let rows = [
            overlay_row(1, &[2]),
            overlay_row(2, &[1]),
            overlay_row(3, &[]),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[3]
                .ends_with("running       3  | active view none (0 eager, 10 passive, isolated)"),
            "{text}"
        );
        assert_eq!(
            lines[4],
            "3/3 running, overlay not connected (2 parts, the largest of 2 nodes)"
        );
        let alone = [overlay_row(1, &[]), overlay_row(2, &[])];
        assert!(
            table(&alone).ends_with("overlay not connected (2 parts, the largest of 1 node)\n"),
            "{}",
            table(&alone)
        );
    }

    #[test]
    fn beside_mesh_nodes_the_table_says_how_many_are_in_the_overlay() {
        let rows = [
            overlay_row(1, &[2]),
            overlay_row(2, &[1]),
            row(3, &[1, 2], 0),
            stopped(4),
        ];
        let text = table(&rows);
        assert!(
            text.ends_with("\n3/4 running (2 in overlay mode), overlay connected\n"),
            "{text}"
        );
        assert!(text.contains("running       3  4001 4002\n"), "{text}");
    }

    #[test]
    fn up_waits_for_every_node_and_a_full_mesh_or_a_connected_overlay() {
        assert_eq!(
            formed(&[row(1, &[2], 0), row(2, &[1], 0)]),
            Some("full mesh")
        );
        assert_eq!(formed(&[row(1, &[2], 0), row(2, &[], 0)]), None);
        assert_eq!(formed(&[row(1, &[], 0), stopped(2)]), None);
        let linked = [
            overlay_row(1, &[2]),
            overlay_row(2, &[3]),
            overlay_row(3, &[]),
        ];
        assert_eq!(formed(&linked), Some("connected overlay"));
        let apart = [
            overlay_row(1, &[2]),
            overlay_row(2, &[]),
            overlay_row(3, &[]),
        ];
        assert_eq!(formed(&apart), None);
        assert_eq!(formed(&[overlay_row(1, &[]), stopped(2)]), None);
    }

    #[test]
    fn status_json_has_each_nodes_overlay_or_null() {
        let rows = [overlay_row(1, &[2]), row(2, &[1], 0), stopped(3)];
        let json = status_json(&rows);
        assert_eq!(
            json[0]["overlay"],
            serde_json::json!({"active": ["ws://localhost:4002"], "eager": 1,
                "passive": 10, "isolated": false})
        );
        assert_eq!(json[1]["overlay"], serde_json::Value::Null);
        assert_eq!(json[2]["overlay"], serde_json::Value::Null);
        assert_eq!(json[2]["running"], false);
        assert_eq!(
            json[1]["connected"],
            serde_json::json!(["ws://localhost:4001"])
        );
    }
}
