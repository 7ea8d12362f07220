//! What a node process costs, read from `/proc`: resident memory, its high-water mark, open
//! file descriptors; and a watch that holds a node to a memory budget while it is attacked.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::node::Node;

/// KiB in a MiB, for budgets written in MiB.
pub const KIB_PER_MIB: u64 = 1024;

/// How often a [`MemoryWatch`] reads the node's resident size.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// A field of `/proc/PID/status` given in kB (`VmRSS:`, `VmHWM:`), in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The resident memory of process `pid` in KiB (`VmRSS`), while it runs.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The most resident memory process `pid` has held in KiB (`VmHWM`), while it runs.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// How many file descriptors process `pid` holds open, while it runs.
pub fn open_fds(pid: u32) -> Option<usize> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|entries| entries.count())
}

/// How many established TCP connections process `pid` holds (its sockets, matched by inode
/// against `/proc/net/tcp` and `tcp6`): dialled and accepted alike, listeners left out.
pub fn established_tcp_connections(pid: u32) -> Option<usize> {
    let inodes: std::collections::BTreeSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        count += text
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            // st 01 is ESTABLISHED; column 9 the socket's inode.
            .filter(|fields| fields.len() > 9 && fields[3] == "01" && inodes.contains(fields[9]))
            .count();
    }
    Some(count)
}

/// The pid of a running node; panics if it is not running.
pub fn pid_of(node: &Node) -> u32 {
    node.pid()
        .unwrap_or_else(|| panic!("{} is not running", node.name()))
}

/// Raises this process's soft limit on open files to its hard limit: some attacks hold a
/// thousand sockets, more than the usual soft limit of 1,024 lets a process open. The
/// nodes started after it inherit the raised limit.
pub fn raise_fd_limit() {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Holds a node to a memory budget while a test attacks it: from the moment it is started,
/// a thread samples the node's resident size every 20 ms and keeps the peak; if the node
/// grows a whole GiB past its budget the watch kills it (SIGKILL), so a node that would
/// grow without bound fails the test at once instead of eating the machine.
///
/// The budget is the resident size when the watch starts plus an allowance: what the
/// attack may cost. [`MemoryWatch::assert_within_budget`] also checks `VmHWM`, which no
/// sampling interval can miss: it may not pass the larger of its value at the start and
/// the budget.
#[derive(Debug)]
pub struct MemoryWatch {
    name: String,
    pid: u32,
    before_kib: u64,
    hwm_before_kib: u64,
    allowance_kib: u64,
    peak: Arc<AtomicU64>,
    killed_at: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MemoryWatch {
    /// Starts watching `node`, allowing it `allowance_mib` MiB more than it holds now.
    pub fn start(node: &Node, allowance_mib: u64) -> MemoryWatch {
        let pid = pid_of(node);
        let before_kib = vm_rss_kib(pid)
            .unwrap_or_else(|| panic!("cannot read the resident size of {}", node.name()));
        let hwm_before_kib = vm_hwm_kib(pid).unwrap_or(before_kib);
        let allowance_kib = allowance_mib * KIB_PER_MIB;
        let kill_above = before_kib + allowance_kib + 1024 * KIB_PER_MIB;
        let peak = Arc::new(AtomicU64::new(before_kib));
        let killed_at = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, killed_at, stop) = (peak.clone(), killed_at.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(rss) = vm_rss_kib(pid) else {
                        break; // it exited
                    };
                    peak.fetch_max(rss, Ordering::Relaxed);
                    if rss > kill_above {
                        killed_at.store(rss, Ordering::Relaxed);
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        break;
                    }
                    thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        MemoryWatch {
            name: node.name(),
            pid,
            before_kib,
            hwm_before_kib,
            allowance_kib,
            peak,
            killed_at,
            stop,
            thread: Some(thread),
        }
    }

    /// The resident size when the watch started, in KiB.
    pub fn before_kib(&self) -> u64 {
        self.before_kib
    }

    /// The budget: the resident size at the start plus the allowance, in KiB.
    pub fn budget_kib(&self) -> u64 {
        self.before_kib + self.allowance_kib
    }

    /// The largest resident size sampled so far, in KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Goes on watching for `duration`, or until `node` exits, then prints the summary.
    pub fn watch_for(&self, node: &mut Node, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until && node.is_running() {
            thread::sleep(Duration::from_millis(200));
        }
        eprintln!("{}", self.summary());
    }

    /// One line for the test's output: before, peak, budget.
    pub fn summary(&self) -> String {
        format!(
            "{}: resident {} KiB before, peak {} KiB sampled, budget {} KiB",
            self.name,
            self.before_kib,
            self.peak_kib(),
            self.budget_kib()
        )
    }

    /// How much the node has grown at most since the watch started, in KiB.
    pub fn growth_kib(&self) -> u64 {
        self.peak_kib().saturating_sub(self.before_kib)
    }

    /// Panics unless the node stayed within its budget so far (`while_` says during what,
    /// for the message).
    pub fn assert_within_budget(&self, while_: &str) {
        self.assert_within(self.allowance_kib, while_);
    }

    /// Panics unless the node grew by at most `allowance_kib` so far: for a budget known
    /// only once the attack is over (say, from what an honest node spent meanwhile).
    pub fn assert_within(&self, allowance_kib: u64, while_: &str) {
        let budget = self.before_kib + allowance_kib;
        let killed = self.killed_at.load(Ordering::Relaxed);
        assert!(
            killed == 0,
            "{} grew to {killed} KiB while {while_} and the test killed it: its budget is \
             {budget} KiB ({} KiB before, plus {allowance_kib} KiB)",
            self.name,
            self.before_kib,
        );
        let peak = self.peak_kib();
        assert!(
            peak <= budget,
            "{} grew to {peak} KiB resident while {while_}: over its budget of {budget} KiB \
             ({} KiB before, plus {allowance_kib} KiB)",
            self.name,
            self.before_kib,
        );
        if let Some(hwm) = vm_hwm_kib(self.pid) {
            let bound = budget.max(self.hwm_before_kib);
            assert!(
                hwm <= bound,
                "{}'s high-water mark rose to {hwm} KiB while {while_}: over its budget of \
                 {budget} KiB ({} KiB before, plus {allowance_kib} KiB; high-water mark \
                 before: {} KiB)",
                self.name,
                self.before_kib,
                self.hwm_before_kib
            );
        }
    }
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
