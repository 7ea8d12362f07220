//! A running `p2p-node start` process.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::binary::p2p_node_bin;
use crate::folder::{address, clip};
use crate::status::{request_status, Status};
use crate::transactions::pool_hashes;
use crate::wait::{wait_for, wait_until};

/// The name of the file in a node's folder that gets its stdout and stderr.
const LOG_FILE: &str = "p2p-node.log";

/// How many of the last log lines a failing test prints per node.
const LOG_TAIL_LINES: usize = 200;

/// A `p2p-node start` process running in its node folder.
///
/// Its stdout and stderr go to `p2p-node.log` in the folder (appended across restarts).
/// Dropped, it is killed (SIGKILL) if still running; dropped while the test panics, it also
/// prints the tail of its log.
#[derive(Debug)]
pub struct Node {
    dir: PathBuf,
    port: u16,
    /// A command that runs `p2p-node start` for us (`ip netns exec NS`), if any.
    prefix: Vec<OsString>,
    child: Option<Child>,
    exit: Option<ExitStatus>,
}

impl Node {
    /// Starts `p2p-node start` with `dir` as its working directory, as a person runs it in a
    /// node folder; `dir/.env` must name its `PORT`. Does not wait for it to listen.
    pub fn start(dir: &Path) -> Node {
        Node::start_under(&[], dir)
    }

    /// [`Node::start`] under a command prefix: runs `PREFIX... p2p-node start`, e.g. with
    /// `ip netns exec NS` to start the node in a network namespace. The prefix must exec
    /// the node rather than fork it, so that the process killed on drop is the node itself.
    /// Such a node may not listen on localhost: ask it for its status some other way.
    pub fn start_under(prefix: &[OsString], dir: &Path) -> Node {
        let port = read_port(dir);
        let mut node = Node {
            dir: dir.to_owned(),
            port,
            prefix: prefix.to_vec(),
            child: None,
            exit: None,
        };
        node.spawn();
        node
    }

    /// [`Node::start`], then waits until it answers a status request.
    pub fn start_ready(dir: &Path) -> Node {
        let mut node = Node::start(dir);
        node.wait_ready(crate::DEADLINE);
        node
    }

    /// Starts the process again in the same folder, on the same port. It must have stopped.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "{}: restart of a node that is still running",
            self.name()
        );
        self.spawn();
    }

    fn spawn(&mut self) {
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("could not open {}: {e}", log_path.display()));
        let prefix: Vec<_> = self
            .prefix
            .iter()
            .map(|arg| arg.to_string_lossy())
            .collect();
        let _ = writeln!(
            log,
            "--- test harness: {}p2p-node start in {} ---",
            prefix
                .iter()
                .map(|arg| format!("{arg} "))
                .collect::<String>(),
            self.dir.display()
        );
        let mut command = match self.prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(p2p_node_bin());
                command
            }
            None => Command::new(p2p_node_bin()),
        };
        let child = command
            .arg("start")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(duplicate(&log))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start p2p-node in {}: {e}", self.dir.display()));
        self.child = Some(child);
        self.exit = None;
    }

    /// Polls status requests until the node answers one; panics if it exits first or does not
    /// answer within `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Status {
        let mut last_error = String::new();
        let status = wait_for(timeout, || {
            if !self.is_running() {
                panic!(
                    "{} exited ({:?}) before answering a status request",
                    self.name(),
                    self.exit
                );
            }
            request_status(self.port, Duration::from_secs(2))
                .map_err(|e| last_error = e)
                .ok()
        });
        status.unwrap_or_else(|| {
            panic!(
                "{} did not answer a status request within {timeout:?}; last error: {last_error}",
                self.name()
            )
        })
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
        format!("node {folder} (port {})", self.port)
    }

    /// The node's answer to a status request (waiting at most 5 s for it).
    pub fn status(&self) -> Result<Status, String> {
        request_status(self.port, Duration::from_secs(5))
    }

    /// Its STATUS, or a panic saying it no longer answers (for checks after an attack).
    pub fn answering_status(&self) -> Status {
        self.status()
            .unwrap_or_else(|e| panic!("{} no longer answers STATUS: {e}", self.name()))
    }

    /// Waits up to `limit` until its `transactions.json` holds as many transactions as
    /// `expected`, then panics unless they are exactly `expected`, each once.
    pub fn assert_pool_file_holds_exactly(&self, expected: &BTreeSet<&str>, limit: Duration) {
        let mut file = Err(String::new());
        let whole = wait_until(limit, || {
            file = pool_hashes(&self.dir);
            file.as_ref()
                .is_ok_and(|hashes| hashes.len() == expected.len())
        });
        let hashes = file.unwrap_or_else(|e| panic!("{}: {e}", self.name()));
        assert!(
            whole,
            "{}'s transactions.json holds {} transactions, not the {} expected",
            self.name(),
            hashes.len(),
            expected.len()
        );
        let held: BTreeSet<&str> = hashes.iter().map(String::as_str).collect();
        assert!(
            held == *expected,
            "{}'s transactions.json does not hold exactly the expected transactions ({} \
             distinct, {} of those expected missing)",
            self.name(),
            held.len(),
            expected.difference(&held).count()
        );
    }

    /// Panics unless it answers STATUS with a pool of `pool` transactions.
    pub fn assert_answers_with_pool(&self, pool: usize) {
        let status = self.answering_status();
        assert_eq!(
            status.pool as usize,
            pool,
            "{}: {}",
            self.name(),
            status.raw
        );
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

    /// How the process exited, once it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.is_running();
        self.exit
    }

    /// Stops the node with SIGTERM and waits up to `timeout` for it to exit. Returns its exit
    /// status, or `Err` (after killing it with SIGKILL) if it did not exit in time.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        self.stop_with(Signal::SIGTERM, timeout)
    }

    /// Stops the node with `signal` (SIGINT is Ctrl-C) and waits up to `timeout` for it to
    /// exit, as [`Node::stop`] does.
    pub fn stop_with(&mut self, signal: Signal, timeout: Duration) -> Result<ExitStatus, String> {
        let Some(child) = &self.child else {
            return self
                .exit
                .ok_or_else(|| format!("{} was never started", self.name()));
        };
        let pid = Pid::from_raw(child.id() as i32);
        if let Err(e) = kill(pid, signal) {
            // It may have exited on its own just now.
            if self.is_running() {
                return Err(format!("could not send {signal} to {}: {e}", self.name()));
            }
        }
        let started = Instant::now();
        while self.is_running() {
            if started.elapsed() > timeout {
                self.kill();
                return Err(format!(
                    "{} did not exit within {timeout:?} of {signal}; killed it",
                    self.name()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.exit
            .ok_or_else(|| format!("{} exited without an exit status", self.name()))
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

    /// Everything the node has logged (stdout and stderr, across restarts).
    pub fn log(&self) -> String {
        read_log(&self.log_path())
    }

    /// Prints the last lines of the node's log to stderr (captured by the test runner and
    /// shown when the test fails).
    pub fn print_log(&self) {
        print_log_tail(&self.name(), &self.log_path());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            self.print_log();
        }
    }
}

/// A log file's text, or why there is none.
pub(crate) fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|e| format!("(no log: {e})"))
}

/// Prints the last lines of the log at `path` of the process `name` to stderr.
pub(crate) fn print_log_tail(name: &str, path: &Path) {
    let log = read_log(path);
    let lines: Vec<&str> = log.lines().collect();
    let skipped = lines.len().saturating_sub(LOG_TAIL_LINES);
    eprintln!("===== log of {name} ({}) =====", path.display());
    if skipped > 0 {
        eprintln!("({skipped} earlier lines left out)");
    }
    for line in &lines[skipped..] {
        eprintln!("{}", clip(line, 400));
    }
    eprintln!("===== end of log of {name} =====");
}

pub(crate) fn duplicate(file: &File) -> File {
    file.try_clone()
        .unwrap_or_else(|e| panic!("could not duplicate a log file handle: {e}"))
}

/// `PORT` from `dir/.env`.
pub(crate) fn read_port(dir: &Path) -> u16 {
    let path = dir.join(".env");
    let env =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    env.lines()
        .filter_map(|line| line.trim().strip_prefix("PORT="))
        .find_map(|port| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("{} names no PORT:\n{env}", path.display()))
}
