//! JavaScript nodes: our test double of the curriculum's node (`tests/interop/node.js`, written
//! from PROTOCOL.md) run on Node.js, and how to watch them.
//!
//! A JavaScript node answers no `STATUS_REQUEST`, so it is watched as another node would see
//! it: a probe [`TestPeer`] that hands it its address in a HANDSHAKE is dialled back and sent
//! the node's HANDSHAKE, `[own address, ...connectedAddresses]` ([`JsNode::connected`]); and
//! its pool is read from `transactions.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};

use crate::binary::workspace_root;
use crate::cli::{sent_transaction, Run, SentTransaction};
use crate::folder::{address, read_pool};
use crate::node::{duplicate, print_log_tail, read_log, read_port, Node};
use crate::peer::{Client, TestPeer};
use crate::status::Status;
use crate::wait::{wait_for, wait_until};
use crate::COMMAND_DEADLINE;

/// The name of the file in a node's folder that gets a JavaScript node's stdout and stderr.
const LOG_FILE: &str = "js-node.log";

/// How long one probe waits for a JavaScript node's HANDSHAKE before trying again.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// The folder of the JavaScript test node: `tests/interop` in the workspace.
pub fn interop_dir() -> PathBuf {
    workspace_root().join("tests").join("interop")
}

/// Makes sure the JavaScript node can run: `node` and `npm` are on the `PATH`, and
/// `tests/interop/node_modules` has been installed with `npm ci` from the committed lockfile
/// (run once per test process if it is missing, under a file lock so that test binaries run at
/// once do not install over each other). Returns `tests/interop`; panics saying what is
/// missing.
pub fn ensure_interop_installed() -> &'static Path {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match INSTALLED.get_or_init(install) {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    }
}

fn installed(dir: &Path) -> bool {
    dir.join("node_modules")
        .join("ws")
        .join("package.json")
        .is_file()
}

fn install() -> Result<PathBuf, String> {
    let dir = interop_dir();
    tool_version("node")?;
    if installed(&dir) {
        return Ok(dir);
    }
    tool_version("npm")?;
    let lock_path = std::env::temp_dir().join("p2p-node-tests-npm-ci.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", lock_path.display()))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", lock_path.display()))?;
    if installed(&dir) {
        return Ok(dir);
    }
    let output = Command::new("npm")
        .arg("ci")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run `npm ci` in {}: {e}", dir.display()))?;
    if !output.status.success() || !installed(&dir) {
        return Err(format!(
            "`npm ci` in {} failed ({}); the interop tests need the `ws` package it installs \
             from package-lock.json.\n--- stdout ---\n{}\n--- stderr ---\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(dir)
}

fn tool_version(tool: &str) -> Result<String, String> {
    let missing = |detail: String| {
        format!(
            "`{tool} --version` failed ({detail}): the interop tests run the JavaScript node in \
             tests/interop with Node.js; install Node.js (18 or later) and npm, and put `node` \
             and `npm` on the PATH"
        )
    };
    let output = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing(e.to_string()))?;
    if !output.status.success() {
        return Err(missing(output.status.to_string()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A JavaScript node (`node tests/interop/node.js`) running in its node folder.
///
/// Its stdout and stderr go to `js-node.log` in the folder. Dropped, it is killed if still
/// running; dropped while the test panics, it also prints the tail of its log.
#[derive(Debug)]
pub struct JsNode {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    exit: Option<ExitStatus>,
}

impl JsNode {
    /// Starts `node tests/interop/node.js` with `dir` as its working directory, as a person
    /// runs `node index.js` in a node folder; `dir/.env` must name its `PORT`. Does not wait
    /// for it to listen.
    pub fn start(dir: &Path) -> JsNode {
        let script = ensure_interop_installed().join("node.js");
        let port = read_port(dir);
        let log_path = dir.join(LOG_FILE);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("could not open {}: {e}", log_path.display()));
        let _ = writeln!(
            log,
            "--- test harness: node {} in {} ---",
            script.display(),
            dir.display()
        );
        let child = Command::new("node")
            .arg(&script)
            .current_dir(dir)
            // As with dotenv, a variable set in the environment would win over `.env`.
            .env_remove("PORT")
            .env_remove("MY_PUBLIC_KEY")
            .stdin(Stdio::null())
            .stdout(duplicate(&log))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start the JavaScript node in {}: {e}",
                    dir.display()
                )
            });
        JsNode {
            dir: dir.to_owned(),
            port,
            child: Some(child),
            exit: None,
        }
    }

    /// [`JsNode::start`], then waits until it accepts a WebSocket connection.
    pub fn start_ready(dir: &Path) -> JsNode {
        let mut node = JsNode::start(dir);
        node.wait_ready(crate::DEADLINE);
        node
    }

    /// Polls until the node accepts a WebSocket connection (closed again at once, without a
    /// frame); panics if it exits first or does not accept within `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let mut last_error = String::new();
        let ready = wait_until(timeout, || {
            self.assert_running();
            match Client::connect(self.port) {
                Ok(client) => {
                    client.close();
                    true
                }
                Err(e) => {
                    last_error = e;
                    false
                }
            }
        });
        assert!(
            ready,
            "{} accepted no connection within {timeout:?}; last error: {last_error}",
            self.name()
        );
    }

    /// The node's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The node's address, `ws://localhost:PORT`.
    pub fn address(&self) -> String {
        address(self.port)
    }

    /// A name for messages: the folder's name and the port.
    pub fn name(&self) -> String {
        let folder = self
            .dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("JavaScript node {folder} (port {})", self.port)
    }

    /// The HANDSHAKE the node sends a probe: binds a [`TestPeer`] on `probe_port`, hands the
    /// node its address in a HANDSHAKE, waits up to `limit` for the node to dial it back and
    /// send its own, and closes the probe again (the node then drops it from its
    /// `connectedAddresses`). The list is `[own address, ...connectedAddresses]`, the probe
    /// among them.
    pub fn handshake(&self, probe_port: u16, limit: Duration) -> Result<Vec<String>, String> {
        let probe = TestPeer::bind(probe_port);
        let mut client = Client::connect(self.port)?;
        client
            .send_json(&json!({"type": "HANDSHAKE", "data": [probe.address(), self.address()]}))?;
        client.close();
        // Other nodes may have learnt the probe's address too: only this node's HANDSHAKE counts.
        let own = self.address();
        wait_for(limit, || {
            probe
                .handshakes()
                .into_iter()
                .find(|list| list.first() == Some(&own))
        })
        .ok_or_else(|| {
            format!(
                "{} sent the probe {} no HANDSHAKE within {limit:?}",
                self.name(),
                probe.address()
            )
        })
    }

    /// The node's `connectedAddresses` as a probe on `probe_port` learns them (see
    /// [`JsNode::handshake`]), without the probe itself.
    pub fn connected(&self, probe_port: u16) -> Result<BTreeSet<String>, String> {
        let list = self.handshake(probe_port, PROBE_LIMIT)?;
        let probe = address(probe_port);
        Ok(list.into_iter().skip(1).filter(|a| *a != probe).collect())
    }

    /// Whether the process is still running; notes its exit status if not.
    pub fn is_running(&mut self) -> bool {
        let Some(child) = &mut self.child else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.exit = Some(status);
                self.child = None;
                false
            }
            Err(e) => panic!("could not poll {}: {e}", self.name()),
        }
    }

    /// Panics (with the node's exit status) unless the process is still running.
    pub fn assert_running(&mut self) {
        assert!(
            self.is_running(),
            "{} is no longer running: it exited with {:?}",
            self.name(),
            self.exit
        );
    }

    /// Kills the node at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.exit = child.wait().ok();
        }
    }

    /// The path of the node's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Everything the node has logged (stdout and stderr).
    pub fn log(&self) -> String {
        read_log(&self.log_path())
    }

    /// Prints the last lines of the node's log to stderr.
    pub fn print_log(&self) {
        print_log_tail(&self.name(), &self.log_path());
    }
}

impl Drop for JsNode {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            self.print_log();
        }
    }
}

/// Runs `node tests/interop/add-transaction.js` in the node folder `dir` (as a person runs
/// `node add-transaction.js` there), asserts it succeeded, and returns what it sent.
pub fn js_add_transaction(dir: &Path) -> SentTransaction {
    let script = ensure_interop_installed().join("add-transaction.js");
    let command = format!("node {} (in {})", script.display(), dir.display());
    let mut stdout = tempfile::tempfile().unwrap_or_else(|e| panic!("no temp file: {e}"));
    let mut stderr = tempfile::tempfile().unwrap_or_else(|e| panic!("no temp file: {e}"));
    let mut child = Command::new("node")
        .arg(&script)
        .current_dir(dir)
        .env_remove("PORT")
        .env_remove("MY_PUBLIC_KEY")
        .stdin(Stdio::null())
        .stdout(duplicate(&stdout))
        .stderr(duplicate(&stderr))
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {command}: {e}"));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < COMMAND_DEADLINE => {
                thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`{command}` still ran after {COMMAND_DEADLINE:?}; killed it.\n\
                     --- stdout ---\n{}\n--- stderr ---\n{}",
                    read_all(&mut stdout),
                    read_all(&mut stderr)
                );
            }
            Err(e) => panic!("could not wait for {command}: {e}"),
        }
    };
    sent_transaction(Run {
        command,
        status,
        stdout: read_all(&mut stdout),
        stderr: read_all(&mut stderr),
    })
}

fn read_all(file: &mut File) -> String {
    let mut bytes = Vec::new();
    let _ = file.rewind();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Polls until `rust` and `js` nodes form the full mesh: every node's connected set is exactly
/// the addresses of all the others. Rust nodes are asked for their status; JavaScript nodes
/// are probed with a [`TestPeer`] on `probe_port` ([`JsNode::connected`]), whose own address is
/// left out of every set. Panics after `limit` with what each node last said.
pub fn wait_for_mixed_mesh(rust: &[&Node], js: &[&JsNode], probe_port: u16, limit: Duration) {
    let names: Vec<String> = rust
        .iter()
        .map(|node| node.name())
        .chain(js.iter().map(|node| node.name()))
        .collect();
    let addresses: Vec<String> = rust
        .iter()
        .map(|node| node.address())
        .chain(js.iter().map(|node| node.address()))
        .collect();
    let probe = address(probe_port);
    let others = |own: &String| -> BTreeSet<String> {
        addresses.iter().filter(|a| *a != own).cloned().collect()
    };
    let mut last: Vec<Result<BTreeSet<String>, String>> = Vec::new();
    let meshed = wait_until(limit, || {
        last = rust
            .iter()
            .map(|node| {
                node.status().map(|Status { mut connected, .. }| {
                    connected.remove(&probe);
                    connected
                })
            })
            .collect();
        let rust_meshed = last
            .iter()
            .zip(&addresses)
            .all(|(connected, own)| connected.as_ref().is_ok_and(|c| *c == others(own)));
        if !rust_meshed {
            return false;
        }
        // Probing is slow and leaves traces; only once the Rust nodes are meshed.
        last.extend(js.iter().map(|node| node.connected(probe_port)));
        last.iter()
            .zip(&addresses)
            .all(|(connected, own)| connected.as_ref().is_ok_and(|c| *c == others(own)))
    });
    if !meshed {
        let report: Vec<String> = names
            .iter()
            .zip(&addresses)
            .enumerate()
            .map(|(index, (name, own))| {
                let seen = match last.get(index) {
                    Some(Ok(connected)) => format!("connected to {connected:?}"),
                    Some(Err(e)) => e.clone(),
                    None => "not probed (the Rust nodes were not meshed yet)".to_owned(),
                };
                let missing: Vec<String> = match last.get(index) {
                    Some(Ok(connected)) => others(own).difference(connected).cloned().collect(),
                    _ => Vec::new(),
                };
                format!("  {name}: {seen}; missing {missing:?}")
            })
            .collect();
        panic!(
            "no full mesh of {addresses:?} within {limit:?}; each node's connected set should \
             be all the others. Last seen:\n{}",
            report.join("\n")
        );
    }
}

/// The hash of every transaction in `pool`, counted.
fn hash_counts(pool: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for tx in pool {
        let hash = tx["hash"].as_str().unwrap_or("<no hash>").to_owned();
        *counts.entry(hash).or_insert(0) += 1;
    }
    counts
}

/// Polls the pool files of the node folders `dirs` until each holds exactly the transactions
/// named by `hashes`, each once, and nothing else; then looks once more, a moment later, so
/// that a copy still on its way is caught too. Every pool must hold the same object for each
/// hash. Panics after `limit` with every pool's hashes. Returns the pools, read at the end.
pub fn wait_for_pools_exactly(dirs: &[&Path], hashes: &[&str], limit: Duration) -> Vec<Vec<Value>> {
    let expected: BTreeMap<String, usize> =
        hashes.iter().map(|hash| (hash.to_string(), 1)).collect();
    assert_eq!(
        expected.len(),
        hashes.len(),
        "the expected transactions must have distinct hashes: {hashes:?}"
    );
    let read_all =
        || -> Vec<Result<Vec<Value>, String>> { dirs.iter().map(|dir| read_pool(dir)).collect() };
    let exact = |pools: &[Result<Vec<Value>, String>]| {
        pools.iter().all(|pool| {
            pool.as_ref()
                .is_ok_and(|pool| hash_counts(pool) == expected)
        })
    };
    let describe = |pools: &[Result<Vec<Value>, String>]| -> String {
        dirs.iter()
            .zip(pools)
            .map(|(dir, pool)| match pool {
                Ok(pool) => format!("  {}: {:?}", dir.display(), hash_counts(pool)),
                Err(e) => format!("  {}: {e}", dir.display()),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut last = Vec::new();
    let arrived = wait_until(limit, || {
        last = read_all();
        exact(&last)
    });
    assert!(
        arrived,
        "the pools did not come to hold exactly {expected:?} (each once) within {limit:?}; \
         hash counts per pool:\n{}",
        describe(&last)
    );
    // Not a timing check: a duplicate still in flight gets a moment to land and be seen.
    thread::sleep(Duration::from_millis(500));
    let pools = read_all();
    assert!(
        exact(&pools),
        "a pool changed after holding exactly {expected:?}; hash counts per pool:\n{}",
        describe(&pools)
    );
    let pools: Vec<Vec<Value>> = pools.into_iter().map(Result::unwrap_or_default).collect();
    let first: BTreeMap<&str, &Value> = pools[0]
        .iter()
        .map(|tx| (tx["hash"].as_str().unwrap_or_default(), tx))
        .collect();
    for (dir, pool) in dirs.iter().zip(&pools) {
        for tx in pool {
            let hash = tx["hash"].as_str().unwrap_or_default();
            assert_eq!(
                Some(&tx),
                first.get(hash),
                "{} holds transaction {hash} changed from {}'s copy",
                dir.display(),
                dirs[0].display()
            );
        }
    }
    pools
}
