//! `p2p-node up 1 --web PORT` serves `wasm-demo/dist/` on 127.0.0.1:PORT beside its node:
//! GET and HEAD of the files under it (read at each request), with their content types,
//! nothing outside it, 404 for a missing file, 405 for other methods; it prints the live
//! view's address with node-1's real address, and SIGTERM stops it and its node. With the
//! port already taken, it stops at once, naming the port, before any node folder is cloned
//! or any node started.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tests::{
    clone_handle, error_line, lock_curriculum_ports, p2p_node_bin, ports, read_all, run_p2p_node,
    wait_for, wait_until, NodeSpec, Scratch, COMMAND_DEADLINE, DEADLINE,
};

/// The page's port and node-1's in the first case.
const WEB: u16 = ports::UP_WEB;
const NODE: u16 = ports::UP_WEB + 1;
/// The page's port (taken by the test) and node-1's in the second case.
const BUSY_WEB: u16 = ports::UP_WEB + 2;
const BUSY_NODE: u16 = ports::UP_WEB + 3;

const INDEX: &str = "<!doctype html><title>fake page</title><p>not the real demo</p>\n";
const APP: &str = "console.log('fake app');\n";
const WASM: &[u8] = b"\0asm\x01\0\0\0";

/// A scratch workspace root: `node-1` on `node_port` (knowing nobody) and a fake built page.
fn scratch_root(node_port: u16) -> Scratch {
    let scratch = Scratch::new();
    scratch.node_folder("node-1", &NodeSpec::new(node_port));
    let dist = scratch.path().join("wasm-demo/dist");
    fs::create_dir_all(&dist).unwrap_or_else(|e| panic!("cannot make {}: {e}", dist.display()));
    for (name, bytes) in [
        ("index.html", INDEX.as_bytes()),
        ("app.js", APP.as_bytes()),
        ("wasm_demo_bg.wasm", WASM),
    ] {
        fs::write(dist.join(name), bytes).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    }
    // A file beside the page that must never be served.
    fs::write(scratch.path().join("Cargo.toml"), "[workspace]\n")
        .unwrap_or_else(|e| panic!("cannot write Cargo.toml: {e}"));
    scratch
}

/// Whether nothing listens on `port` (a node listens on every interface).
fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// A running `p2p-node up`, its stdout and stderr in files; SIGTERM (then SIGKILL) on drop.
struct Up {
    child: Child,
    stdout: File,
    stderr: File,
}

impl Up {
    fn start(root: &Path, args: &[&str]) -> Up {
        let stdout = tempfile::tempfile().unwrap_or_else(|e| panic!("no temp file: {e}"));
        let stderr = tempfile::tempfile().unwrap_or_else(|e| panic!("no temp file: {e}"));
        let child = Command::new(p2p_node_bin())
            .arg("up")
            .args(args)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(clone_handle(&stdout))
            .stderr(clone_handle(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run p2p-node up: {e}"));
        Up {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&mut self) -> (String, String) {
        (read_all(&mut self.stdout), read_all(&mut self.stderr))
    }

    fn describe(&mut self) -> String {
        let (stdout, stderr) = self.output();
        format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")
    }

    /// The first stdout line that starts with `prefix`, waiting for it while `up` runs.
    fn wait_for_line(&mut self, prefix: &str) -> String {
        let line = wait_for(DEADLINE, || {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("p2p-node up exited ({exit}) early:\n{}", self.describe());
            }
            let (stdout, _) = self.output();
            stdout
                .lines()
                .find(|line| line.starts_with(prefix))
                .map(str::to_owned)
        });
        line.unwrap_or_else(|| {
            panic!(
                "p2p-node up printed no line starting with {prefix:?} within {DEADLINE:?}:\n{}",
                self.describe()
            )
        })
    }

    /// Sends SIGTERM (as Ctrl-C would SIGINT) and waits for the exit.
    fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        let exit = wait_for(DEADLINE, || self.child.try_wait().ok().flatten());
        exit.unwrap_or_else(|| {
            panic!(
                "p2p-node up did not stop within {DEADLINE:?} of SIGTERM:\n{}",
                self.describe()
            )
        })
    }

    fn signal(&self, signal: Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // Let it stop its nodes; kill it only if it does not.
        self.signal(Signal::SIGTERM);
        let stopped = wait_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("p2p-node up:\n{}", self.describe());
        }
    }
}

/// An HTTP response, as read off the socket.
#[derive(Debug)]
struct Response {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `METHOD TARGET` to 127.0.0.1:`port` exactly as written (no client-side clean-up
/// of `..`) and reads the whole response.
fn request(port: u16, method: &str, target: &str) -> Response {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|e| panic!("cannot connect to the page's port {port}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let body = if method == "POST" { "x=1" } else { "" };
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap_or_else(|e| panic!("cannot send {method} {target}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("cannot read the answer to {method} {target}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no end of headers in the answer to {method} {target}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?} ({method} {target})"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// GETs `target` and asserts it is served as `bytes` with a content type starting `kind`.
fn assert_served(target: &str, bytes: &[u8], kind: &str) {
    let response = request(WEB, "GET", target);
    assert_eq!(response.status, 200, "GET {target}: {response:?}");
    assert_eq!(
        response.body,
        bytes,
        "GET {target} served other bytes: {:?}",
        String::from_utf8_lossy(&response.body)
    );
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with(kind),
        "GET {target}: content type {content_type:?}, expected {kind}"
    );
    assert_eq!(
        response.header("cache-control"),
        Some("no-cache"),
        "GET {target}: {response:?}"
    );
}

#[test]
fn up_web_serves_the_page_and_prints_the_live_view_of_node_1() {
    let scratch = scratch_root(NODE);
    let root = scratch.path();
    let port = WEB.to_string();
    let mut up = Up::start(root, &["1", "--web", &port]);

    let live = up.wait_for_line("the live view:");
    let expected = format!("http://127.0.0.1:{WEB}/?live=ws://localhost:{NODE}");
    assert!(
        live.ends_with(&expected),
        "the live view line should name {expected} (node-1's port from its .env): {live:?}"
    );
    assert!(!port_free(NODE), "node-1 does not listen on {NODE}");

    assert_served("/", INDEX.as_bytes(), "text/html");
    assert_served("/index.html", INDEX.as_bytes(), "text/html");
    assert_served(
        &format!("/?live=ws://localhost:{NODE}"),
        INDEX.as_bytes(),
        "text/html",
    );
    assert_served("/app.js", APP.as_bytes(), "text/javascript");
    assert_served("/app.js?v=2", APP.as_bytes(), "text/javascript");
    assert_served("/wasm_demo_bg.wasm", WASM, "application/wasm");

    let head = request(WEB, "HEAD", "/app.js");
    assert_eq!(head.status, 200, "HEAD /app.js: {head:?}");
    assert!(head.body.is_empty(), "HEAD /app.js sent a body: {head:?}");
    assert_eq!(
        head.header("content-length"),
        Some(APP.len().to_string().as_str()),
        "HEAD /app.js: {head:?}"
    );

    for target in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2e%2e/x",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/..%2fCargo.toml",
        "/../../../../../../etc/passwd",
    ] {
        let response = request(WEB, "GET", target);
        assert!(
            matches!(response.status, 403 | 404),
            "GET {target} should be refused: {response:?}"
        );
        assert!(
            !String::from_utf8_lossy(&response.body).contains("[workspace]")
                && !String::from_utf8_lossy(&response.body).contains("root:"),
            "GET {target} served a file outside the page: {response:?}"
        );
    }
    let missing = request(WEB, "GET", "/missing.js");
    assert_eq!(missing.status, 404, "GET /missing.js: {missing:?}");
    for method in ["POST", "PUT", "DELETE"] {
        let response = request(WEB, method, "/index.html");
        assert_eq!(response.status, 405, "{method} /index.html: {response:?}");
    }

    // Read at each request: a page rebuilt meanwhile is served as it now is.
    let rebuilt = "<!doctype html><p>rebuilt</p>\n";
    fs::write(root.join("wasm-demo/dist/index.html"), rebuilt)
        .unwrap_or_else(|e| panic!("cannot rewrite index.html: {e}"));
    assert_served("/", rebuilt.as_bytes(), "text/html");

    let exit = up.stop();
    assert!(
        exit.success(),
        "p2p-node up exited with {exit} on SIGTERM:\n{}",
        up.describe()
    );
    assert!(
        wait_until(Duration::from_secs(10), || port_free(NODE)),
        "node-1 still listens on {NODE} after up stopped: a node process was left running"
    );
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, WEB)).is_err(),
        "the page is still served on {WEB} after up stopped"
    );
}

#[test]
fn up_web_on_a_busy_port_stops_at_once_and_starts_no_node() {
    // `up 2` would clone node-2 onto the curriculum's port 4002 had it gone on.
    let _ports = lock_curriculum_ports();
    let scratch = scratch_root(BUSY_NODE);
    let root = scratch.path();
    let _taken = TcpListener::bind((Ipv4Addr::LOCALHOST, BUSY_WEB))
        .unwrap_or_else(|e| panic!("cannot take port {BUSY_WEB} for the test: {e}"));

    let started = Instant::now();
    let port = BUSY_WEB.to_string();
    let run = run_p2p_node(&["up", "2", "--web", &port], root, COMMAND_DEADLINE);
    let took = started.elapsed();

    assert!(
        !run.status.success(),
        "up on a busy port succeeded: {}",
        run.describe()
    );
    assert!(
        took < Duration::from_secs(10),
        "up on a busy port took {took:?} to give up: {}",
        run.describe()
    );
    let error = error_line(&run)
        .unwrap_or_else(|| panic!("no `error:` line on stderr: {}", run.describe()));
    assert!(
        error.contains(&format!("port {BUSY_WEB}")) && error.contains("--web "),
        "the error should name port {BUSY_WEB} and say how to pick another (--web PORT): {error:?}"
    );
    assert!(
        !run.stderr.contains("panicked"),
        "up panicked: {}",
        run.describe()
    );
    assert!(
        !root.join("node-2").exists(),
        "up cloned node-2 before it found the port busy"
    );
    assert!(
        !root.join("node-1/node.log").exists(),
        "up started node-1 (it made node-1/node.log): {}",
        run.describe()
    );
    assert!(
        port_free(BUSY_NODE),
        "something listens on node-1's port {BUSY_NODE}"
    );
}
