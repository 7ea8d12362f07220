//! Hosts of their own: network namespaces joined by a switch, so that nodes run as on
//! different machines, each at its own address.
//!
//! A [`Lab`] is a small network made on this machine for one test, named by a prefix unique
//! to that test (`p2pt-heal-` below):
//!
//! ```text
//!  p2pt-heal-h1    p2pt-heal-h2           p2pt-heal-hN     one namespace per host, each with
//!  eth0            eth0                   eth0             `lo` up and eth0 at 192.0.2.k/24
//!  192.0.2.1       192.0.2.2       ...    192.0.2.N
//!    |               |                      |              veth pairs
//!  h1              h2                     hN               their other ends, in p2pt-heal-sw,
//!  +---------------+--------- br0 ---------+               are ports of the bridge br0
//! ```
//!
//! - The addresses are from 192.0.2.0/24, TEST-NET-1 (RFC 5737), kept for documentation.
//! - Nothing of the lab is in the machine's own namespace, and no packet can leave it: every
//!   veth is made inside a host's namespace with its peer put straight into the switch's, and
//!   no namespace has a default route or any route but the connected 192.0.2.0/24.
//! - [`Lab::cut`] sets a host's port on the switch down, as a cable pulled at the switch: the
//!   host keeps its address and its sockets, but no frame passes either way, and nobody is
//!   told (no RST, no FIN). [`Lab::heal`] sets the port up again.
//! - The test process talks to each node from inside its host: [`Host::connect`] enters the
//!   host's namespace on a short-lived thread of its own (setns(2), through nix's safe
//!   wrapper: no `unsafe` here), opens the TCP connection there and hands it back. A socket
//!   belongs to the namespace it was made in, whichever thread then uses it. So the test reaches
//!   every node at its own address, as its peers do, whatever state the links are in (a cut
//!   host is still reachable from inside itself), and nothing needs an address in the machine's
//!   namespace. `p2p-node add-transaction` and `p2p-node status` run under `ip netns exec`
//!   would not do: they dial `ws://localhost:PORT`, where a node bound to `P2P_BIND=192.0.2.k`
//!   does not listen.
//! - Nodes run as `ip netns exec NS p2p-node start` ([`NetnsNode`], a [`Node`] started under
//!   that prefix). `ip` execs the node, so the process killed on drop is the node itself.
//! - Clean up: dropping the lab, also while a test panics, kills what still runs in its
//!   namespaces and deletes them, which destroys the veths and the bridge in them. Before it
//!   makes anything, a lab removes what a run killed with SIGKILL left under its prefix; and
//!   it holds a file lock on its prefix while it lives, so that two runs of one test wait for
//!   each other rather than tear each other's network down.
//! - Where namespaces cannot be made (not root, no iproute2, a container without
//!   CAP_SYS_ADMIN), [`Lab::create_or_skip`] says why and the test skips, except in CI
//!   (`CI=true`), where it fails.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use async_std::future::timeout;
use async_tungstenite::tungstenite::Message;
use futures::StreamExt;
use nix::fcntl::{Flock, FlockArg};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{geteuid, Pid};

use crate::folder::{NodeSpec, Scratch};
use crate::node::Node;
use crate::status::{status_over, Status};
use crate::wait::{wait_for, wait_until};

/// Where iproute2 keeps its named network namespaces.
const NETNS_DIR: &str = "/var/run/netns";

/// The name of a host's interface, inside its namespace.
const HOST_INTERFACE: &str = "eth0";

/// The name of the bridge in the switch's namespace.
const BRIDGE: &str = "br0";

/// How many hosts a lab can have: 192.0.2.1 to 192.0.2.250.
const MAX_HOSTS: usize = 250;

/// A network of hosts, each a network namespace, joined by a bridge in a namespace of its own.
/// See the module's documentation. Dropped, it is removed.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    switch: String,
    hosts: Vec<Host>,
    // Dropped last, after `Drop::drop` has removed the namespaces.
    _lock: Flock<File>,
}

/// One host of a [`Lab`]: a network namespace with one interface, at `192.0.2.N/24`.
#[derive(Debug, Clone)]
pub struct Host {
    number: u8,
    netns: String,
    ip: Ipv4Addr,
    /// The host's port on the switch: the veth peer of its interface, in the switch's namespace.
    switch_port: String,
}

impl Lab {
    /// Makes `hosts` hosts, `PREFIXh1` at 192.0.2.1 to `PREFIXhN` at 192.0.2.N, and the switch
    /// `PREFIXsw` joining them, first removing whatever an earlier run left under `prefix`.
    /// `Err` says why it could not.
    pub fn create(prefix: &str, hosts: usize) -> Result<Lab, String> {
        assert!(
            (1..=MAX_HOSTS).contains(&hosts),
            "a lab has 1 to {MAX_HOSTS} hosts, not {hosts}"
        );
        if !geteuid().is_root() {
            return Err(format!(
                "network namespaces need root, and this runs as uid {}",
                geteuid()
            ));
        }
        let lock = lock(prefix)?;
        remove_namespaces(prefix)?;
        let mut lab = Lab {
            prefix: prefix.to_owned(),
            switch: format!("{prefix}sw"),
            hosts: Vec::new(),
            _lock: lock,
        };
        // From here on, dropping `lab` on an error removes what was made.
        let switch = lab.switch.clone();
        ip(&["netns", "add", &switch])?;
        ip(&["-n", &switch, "link", "set", "lo", "up"])?;
        ip(&["-n", &switch, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", BRIDGE, "up"])?;
        for number in 1..=hosts as u8 {
            let host = Host {
                number,
                netns: format!("{prefix}h{number}"),
                ip: Ipv4Addr::new(192, 0, 2, number),
                switch_port: format!("h{number}"),
            };
            let (ns, port) = (&host.netns, &host.switch_port);
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                ns,
                "link",
                "add",
                HOST_INTERFACE,
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                &switch,
            ])?;
            ip(&["-n", &switch, "link", "set", port, "master", BRIDGE])?;
            ip(&["-n", &switch, "link", "set", port, "up"])?;
            let cidr = format!("{}/24", host.ip);
            ip(&["-n", ns, "addr", "add", &cidr, "dev", HOST_INTERFACE])?;
            ip(&["-n", ns, "link", "set", HOST_INTERFACE, "up"])?;
            lab.hosts.push(host);
        }
        Ok(lab)
    }

    /// [`Lab::create`]; where it cannot be made, says why on stderr (past the test runner's
    /// capture, so that a skip is seen) and gives `None` for the test to return early. Under
    /// CI (`CI=true`) the test must run, so it panics instead.
    pub fn create_or_skip(prefix: &str, hosts: usize) -> Option<Lab> {
        match Lab::create(prefix, hosts) {
            Ok(lab) => Some(lab),
            Err(why) if in_ci() => panic!(
                "cannot make this test's network namespaces, and under CI (CI=true) it must run \
                 rather than skip: {why}"
            ),
            Err(why) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: cannot make network namespaces ({why}). This test runs as root \
                     with iproute2's `ip`; under CI (CI=true) it fails instead of skipping."
                );
                None
            }
        }
    }

    /// The hosts, in order: host 1 first.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `number` (from 1).
    pub fn host(&self, number: usize) -> &Host {
        number
            .checked_sub(1)
            .and_then(|index| self.hosts.get(index))
            .unwrap_or_else(|| panic!("the lab has no host {number}"))
    }

    /// Cuts `host` off: its port on the switch goes down. Its sockets stay open and nobody
    /// is told; frames sent across are lost until [`Lab::heal`].
    pub fn cut(&self, host: &Host) {
        self.set_port(host, "down");
    }

    /// Plugs `host` in again after [`Lab::cut`].
    pub fn heal(&self, host: &Host) {
        self.set_port(host, "up");
    }

    /// Makes TCP on every host give up on a connection once `retries` retransmissions of its
    /// data go unanswered (`net.ipv4.tcp_retries2`, per namespace; the machine's own setting
    /// is left alone). The default, 15, waits about a quarter of an hour; 3 waits seconds
    /// (about 20 s, measured here). So a cut breaks, within a test's time, every connection a
    /// node sends on across it, as a longer outage would.
    pub fn set_tcp_retries(&self, retries: u8) {
        for host in &self.hosts {
            host.set_net_sysctl("ipv4.tcp_retries2", &retries.to_string())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn set_port(&self, host: &Host, state: &str) {
        ip(&["-n", &self.switch, "link", "set", &host.switch_port, state])
            .unwrap_or_else(|e| panic!("cannot set {}'s port {state}: {e}", host.name()));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = remove_namespaces(&self.prefix) {
            eprintln!(
                "could not remove the network namespaces {}*: {e}",
                self.prefix
            );
        }
    }
}

impl Host {
    /// Its number, from 1: it is at 192.0.2.N.
    pub fn number(&self) -> u8 {
        self.number
    }

    /// Its network namespace's name.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Its address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `ws://IP:PORT`: the address of its node on `port`.
    pub fn address(&self, port: u16) -> String {
        format!("ws://{}:{port}", self.ip)
    }

    /// A name for messages.
    pub fn name(&self) -> String {
        format!("host {} ({}, {})", self.number, self.netns, self.ip)
    }

    /// The command prefix that runs a program on this host: `ip netns exec NS`.
    pub fn exec_prefix(&self) -> Vec<OsString> {
        ["ip", "netns", "exec", &self.netns]
            .into_iter()
            .map(OsString::from)
            .collect()
    }

    /// Opens a TCP connection to this host's `port` from inside the host, waiting at most
    /// `limit`.
    pub fn connect(&self, port: u16, limit: Duration) -> Result<TcpStream, String> {
        let target = SocketAddr::from((self.ip, port));
        let netns = self.netns.clone();
        self.run_inside(move || {
            TcpStream::connect_timeout(&target, limit)
                .map_err(|e| format!("cannot connect to {target} in {netns}: {e}"))
        })
    }

    /// Sets the sysctl `net.KEY` (e.g. `ipv4.tcp_retries2`) of this host's namespace, which
    /// the machine's own namespace does not share.
    pub fn set_net_sysctl(&self, key: &str, value: &str) -> Result<(), String> {
        let path = Path::new("/proc/sys/net").join(key.replace('.', "/"));
        let value = value.to_owned();
        let netns = self.netns.clone();
        // /proc/sys/net is the namespace of the thread that opens it.
        self.run_inside(move || {
            std::fs::write(&path, value)
                .map_err(|e| format!("cannot write {} in {netns}: {e}", path.display()))
        })
    }

    /// Runs `work` on a thread of its own inside this host's network namespace: sockets it
    /// makes belong to the host, whichever thread uses them afterwards. The thread ends with
    /// `work`, so the namespace never leaks to another.
    fn run_inside<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let path = Path::new(NETNS_DIR).join(&self.netns);
        let netns = self.netns.clone();
        let entered = thread::Builder::new()
            .name(format!("in {netns}"))
            .spawn(move || {
                let namespace = File::open(&path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                setns(&namespace, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("cannot enter the network namespace {netns}: {e}"))?;
                work()
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        entered
            .join()
            .unwrap_or_else(|_| Err(format!("a thread working in {} panicked", self.netns)))
    }
}

/// A `p2p-node start` process on a [`Host`]: `ip netns exec NS p2p-node start` in its node
/// folder, which should bind and advertise the host's address ([`netns_node_folder`]).
/// Its log is kept and printed as a [`Node`]'s is; dropped, it is killed.
#[derive(Debug)]
pub struct NetnsNode {
    node: Node,
    host: Host,
}

impl NetnsNode {
    /// Starts the node of `dir` on `host`. Does not wait for it to listen.
    pub fn start(host: &Host, dir: &Path) -> NetnsNode {
        NetnsNode {
            node: Node::start_under(&host.exec_prefix(), dir),
            host: host.clone(),
        }
    }

    /// [`NetnsNode::start`], then waits until it answers a status request.
    pub fn start_ready(host: &Host, dir: &Path) -> NetnsNode {
        let mut node = NetnsNode::start(host, dir);
        node.wait_ready(crate::DEADLINE);
        node
    }

    /// Polls status requests until the node answers one; panics if it exits first or does
    /// not answer within `limit`.
    pub fn wait_ready(&mut self, limit: Duration) -> Status {
        let mut last_error = String::new();
        let status = wait_for(limit, || {
            self.node.assert_running();
            self.status().map_err(|e| last_error = e).ok()
        });
        status.unwrap_or_else(|| {
            panic!(
                "{} did not answer a status request within {limit:?}; last error: {last_error}",
                self.name()
            )
        })
    }

    /// The process, its folder and its log.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The process, to stop or restart it.
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// The host it runs on.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Its node folder.
    pub fn dir(&self) -> &Path {
        self.node.dir()
    }

    /// Its address, `ws://IP:PORT` of its host.
    pub fn address(&self) -> String {
        self.host.address(self.node.port())
    }

    /// A name for messages.
    pub fn name(&self) -> String {
        format!("node on {} ({})", self.host.name(), self.address())
    }

    /// Its answer to a status request sent from inside its host (waiting at most 5 s).
    pub fn status(&self) -> Result<Status, String> {
        let limit = Duration::from_secs(5);
        let stream = self.host.connect(self.node.port(), limit)?;
        let (address, name) = (self.address(), self.name());
        async_std::task::block_on(async {
            timeout(limit, status_over(stream.into(), &address, &name))
                .await
                .unwrap_or_else(|_| Err(format!("no STATUS from {name} within {limit:?}")))
        })
    }

    /// Sends the node one text frame on a connection of its own from inside its host, then
    /// closes it and waits for the node to close too (so the frame is known to be read), as
    /// `p2p-node add-transaction` does.
    pub fn send_text(&self, text: &str) -> Result<(), String> {
        let limit = Duration::from_secs(10);
        let stream = self.host.connect(self.node.port(), limit)?;
        let (address, name) = (self.address(), self.name());
        async_std::task::block_on(async {
            let exchange = async {
                let stream = async_std::net::TcpStream::from(stream);
                let (mut ws, _) = async_tungstenite::client_async(&address, stream)
                    .await
                    .map_err(|e| format!("no WebSocket handshake with {name}: {e}"))?;
                ws.send(Message::text(text))
                    .await
                    .map_err(|e| format!("cannot send to {name}: {e}"))?;
                ws.close(None)
                    .await
                    .map_err(|e| format!("cannot close the connection to {name}: {e}"))?;
                while ws.next().await.is_some() {}
                Ok(())
            };
            timeout(limit, exchange)
                .await
                .unwrap_or_else(|_| Err(format!("sending to {name} took over {limit:?}")))
        })
    }

    /// Polls every node's status until each one's address is its host's and its
    /// `connected` set is exactly the addresses of all the others; panics after `limit` with
    /// every node's last status.
    pub fn wait_for_full_mesh(nodes: &[NetnsNode], limit: Duration) {
        let addresses: Vec<String> = nodes.iter().map(NetnsNode::address).collect();
        let mut last = Vec::new();
        let meshed = wait_until(limit, || {
            last = nodes.iter().map(NetnsNode::status).collect();
            last.iter().zip(&addresses).all(|(status, own)| {
                status.as_ref().is_ok_and(|status| {
                    let others: BTreeSet<String> =
                        addresses.iter().filter(|a| *a != own).cloned().collect();
                    status.address == *own && status.connected == others
                })
            })
        });
        assert!(
            meshed,
            "no full mesh of {addresses:?} within {limit:?}; each node's connected set should \
             be all the others. Last statuses:\n{}",
            NetnsNode::report(nodes, &last)
        );
    }

    /// Polls until the mesh has settled: every node has accepted exactly one connection from
    /// each of the others and the status request's own, and dials nothing. Panics after
    /// `limit` with every node's last status.
    pub fn wait_for_settled_mesh(nodes: &[NetnsNode], limit: Duration) {
        let expected_inbound = nodes.len() as u64;
        let mut last = Vec::new();
        let settled = wait_until(limit, || {
            last = nodes.iter().map(NetnsNode::status).collect();
            last.iter().all(|status| {
                status.as_ref().is_ok_and(|status| {
                    status.inbound == expected_inbound && status.dialling.is_empty()
                })
            })
        });
        assert!(
            settled,
            "the mesh did not settle within {limit:?}: each node should hold {expected_inbound} \
             inbound connections (one from each other node, and the status request's) and dial \
             nothing. Last statuses:\n{}",
            NetnsNode::report(nodes, &last)
        );
    }

    /// Every node's status now, one line each, for messages.
    pub fn statuses(nodes: &[NetnsNode]) -> String {
        let statuses: Vec<_> = nodes.iter().map(NetnsNode::status).collect();
        NetnsNode::report(nodes, &statuses)
    }

    fn report(nodes: &[NetnsNode], statuses: &[Result<Status, String>]) -> String {
        crate::status::report_named(nodes.iter().map(NetnsNode::name), statuses)
    }
}

/// Makes the node folder `host-N` in `scratch` from `spec`, with `P2P_BIND` and
/// `P2P_ADVERTISE` in its `.env` naming `host`'s address, and returns it.
pub fn netns_node_folder(scratch: &Scratch, host: &Host, spec: &NodeSpec) -> PathBuf {
    let dir = scratch.node_folder(&format!("host-{}", host.number), spec);
    let path = dir.join(".env");
    let mut env = OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    writeln!(
        env,
        "P2P_BIND={}\nP2P_ADVERTISE={}",
        host.ip,
        host.address(spec.port)
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    dir
}

/// Whether this runs under CI, where a test that cannot run must fail rather than skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// Runs `ip ARGS`; its stdout, or `Err` with what it said.
fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (is iproute2 installed?): {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Takes an exclusive lock on `prefix` (waiting while another lab holds it).
fn lock(prefix: &str) -> Result<Flock<File>, String> {
    let path = std::env::temp_dir().join(format!("p2p-node-tests-netns-{prefix}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
}

/// Deletes every network namespace whose name starts with `prefix`, first killing the
/// processes left in it (nodes of a run that was killed before it could clean up).
fn remove_namespaces(prefix: &str) -> Result<(), String> {
    let list = ip(&["netns", "list"])?;
    // Lines are `NAME` or `NAME (id: N)`.
    let names: Vec<&str> = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .collect();
    let mut errors = Vec::new();
    for name in names {
        if let Ok(pids) = ip(&["netns", "pids", name]) {
            for pid in pids.split_whitespace().filter_map(|pid| pid.parse().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if let Err(e) = ip(&["netns", "delete", name]) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
