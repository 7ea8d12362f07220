//! A browser tab joins a real mixed network: two nodes of ours (A and B) and one JavaScript
//! node (`tests/interop/node.js`) in a full mesh, and a test client that plays the tab. It
//! dials A and B, says it only dials (`{"type":"HANDSHAKE","data":[],"ext":..,
//! "dialOnly":true}`) and watches A (`{"type":"WATCH"}`).
//!
//! - Each node of ours answers on the connection the client opened: HELLO, then a HANDSHAKE
//!   naming itself first and the servers it reaches, so the tab learns the network; A
//!   streams an EVENT `state` naming itself and its peers.
//! - A transaction made at B (`add-transaction`) is pushed to the client on its B
//!   connection, and the watcher on A is told (`pooled`) when it reaches A's pool.
//! - A transaction the client sends on its A connection lands in every pool file, once.
//! - The JavaScript node, also sent the dial-only HANDSHAKE and a WATCH, is not disturbed:
//!   it keeps running, dials nothing new and pools nothing twice.
//! - B killed: the watcher on A is told (`peers` without B); B back: A hands the client a
//!   HANDSHAKE naming it and the watcher sees B connected again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tests::{
    add_transaction, address, ports, request_status, wait_for_mixed_mesh, wait_for_pools_exactly,
    wait_until, Client, Frame, JsNode, Node, NodeSpec, Scratch, TestTransaction, DEADLINE,
};

const BASE: u16 = ports::DIAL_ONLY_WATCHER;
const PORT_A: u16 = BASE;
const PORT_JS: u16 = BASE + 1;
const PORT_B: u16 = BASE + 2;
/// The probe that learns the JavaScript node's `connectedAddresses`.
const PROBE: u16 = BASE + 3;

/// The `ext` of the client's HANDSHAKEs: any 16 hex digits.
const CLIENT_NONCE: &str = "b40b5e27ab000001";

/// A key shaped like the curriculum's (an uncompressed public key in hex), one per port, so
/// that every node's transactions get hashes of their own.
fn public_key(port: u16) -> String {
    format!("04{}", format!("{port:04x}").repeat(32))
}

/// The HANDSHAKE a dial-only peer of ours (a browser tab) sends: no address of its own.
fn dial_only_handshake() -> String {
    json!({"type": "HANDSHAKE", "data": [], "ext": CLIENT_NONCE, "dialOnly": true}).to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(1_700_000_000_000)
}

/// One connection the client (the "tab") opened, and every frame received on it, in order.
struct Tab {
    name: String,
    client: Client,
    frames: Vec<Value>,
    closed: bool,
}

impl Tab {
    fn connect(port: u16, name: &str) -> Tab {
        let client = Client::connect(port).unwrap_or_else(|e| panic!("{name}: {e}"));
        Tab {
            name: name.to_owned(),
            client,
            frames: Vec::new(),
            closed: false,
        }
    }

    fn send(&mut self, text: String) {
        let name = &self.name;
        self.client
            .send_text(text)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    /// How many frames have arrived so far: a mark to wait from.
    fn mark(&self) -> usize {
        self.frames.len()
    }

    /// Reads one more frame if one comes within `limit`; a frame that is not JSON fails.
    fn read(&mut self, limit: Duration) -> bool {
        match self.client.receive(limit) {
            None => false,
            Some(Frame::Closed) => {
                self.closed = true;
                false
            }
            Some(frame) => {
                let value = frame.json().unwrap_or_else(|| {
                    panic!("{}: a frame that is not JSON: {frame:?}", self.name)
                });
                self.frames.push(value);
                true
            }
        }
    }

    /// Waits up to [`DEADLINE`] for a frame, at index `since` or later, for which `wanted`
    /// holds, reading frames as they come; returns it. Panics with every frame received if
    /// none comes or the connection closes first.
    fn wait_for(
        &mut self,
        since: usize,
        what: &str,
        mut wanted: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + DEADLINE;
        let mut checked = since;
        loop {
            if let Some(found) = self.frames.iter().skip(checked).find(|frame| wanted(frame)) {
                return found.clone();
            }
            checked = checked.max(self.frames.len());
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.closed {
                break;
            }
            self.read(left.min(Duration::from_millis(500)));
        }
        panic!(
            "{}: no {what} within {DEADLINE:?}{}; frames received:\n{}",
            self.name,
            if self.closed {
                " (the connection closed)"
            } else {
                ""
            },
            self.describe()
        );
    }

    /// Reads what is already on its way for up to `limit`, without waiting for anything.
    fn drain(&mut self, limit: Duration) {
        while self.read(limit) {}
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for (index, frame) in self.frames.iter().enumerate() {
            let mut text = frame.to_string();
            if text.len() > 400 {
                text.truncate(400);
                text.push('…');
            }
            out.push_str(&format!("  {index}: {text}\n"));
        }
        if self.frames.is_empty() {
            out.push_str("  none\n");
        }
        out
    }
}

fn kind(frame: &Value) -> &str {
    frame["type"].as_str().unwrap_or_default()
}

/// The `data` of an EVENT frame of `event_kind`, if `frame` is one.
fn event<'a>(frame: &'a Value, event_kind: &str) -> Option<&'a Value> {
    (kind(frame) == "EVENT" && frame["data"]["kind"] == event_kind).then(|| &frame["data"])
}

fn strings(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The hashes of the transactions a TRANSACTION or TRANSACTIONS frame carries.
fn pushed_hashes(frame: &Value) -> Vec<&str> {
    match kind(frame) {
        "TRANSACTION" => frame["data"]["hash"].as_str().into_iter().collect(),
        "TRANSACTIONS" => frame["data"]
            .as_array()
            .map(|txs| txs.iter().filter_map(|tx| tx["hash"].as_str()).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The addresses the JavaScript node's log says it dialled, in order.
fn js_dials(js: &JsNode) -> Vec<String> {
    js.log()
        .lines()
        .filter_map(|line| line.split_once("] dialling "))
        .map(|(_, address)| address.trim().to_owned())
        .collect()
}

#[test]
fn a_dial_only_watcher_joins_a_mixed_network_of_two_rust_nodes_and_a_javascript_node() {
    let scratch = Scratch::new();
    let folder = |name: &str, port: u16, knows: &[u16]| {
        let spec = NodeSpec::new(port)
            .knowing(knows)
            .public_key(&public_key(port));
        scratch.node_folder(name, &spec)
    };
    // Started one after another, each knowing those before it, as a person starts them
    // (the JavaScript node never retries a dial).
    let a = Node::start_ready(&folder("node-a", PORT_A, &[]));
    let mut js = JsNode::start_ready(&folder("node-js", PORT_JS, &[PORT_A]));
    let mut b = Node::start_ready(&folder("node-b", PORT_B, &[PORT_A, PORT_JS]));
    wait_for_mixed_mesh(&[&a, &b], &[&js], PROBE, DEADLINE);

    let (addr_a, addr_b, addr_js) = (address(PORT_A), address(PORT_B), address(PORT_JS));
    let network: BTreeSet<String> = [&addr_a, &addr_b, &addr_js, &address(PROBE)]
        .into_iter()
        .cloned()
        .collect();
    // What the JavaScript node dialled to form the mesh (and to answer the probe).
    let dials_before = js_dials(&js);

    // The tab dials A and says it only dials, then watches A.
    let mut tab_a = Tab::connect(PORT_A, "the client's connection to A");
    tab_a.send(dial_only_handshake());
    tab_a.send(r#"{"type":"WATCH"}"#.to_owned());
    let hello = tab_a.wait_for(0, "first frame", |_| true);
    assert_eq!(
        kind(&hello),
        "HELLO",
        "A must answer a dial-only HANDSHAKE of ours with HELLO first; frames:\n{}",
        tab_a.describe()
    );
    let handshake = tab_a.wait_for(1, "second frame", |_| true);
    assert_eq!(
        kind(&handshake),
        "HANDSHAKE",
        "A must follow its HELLO with a HANDSHAKE on the client's connection; frames:\n{}",
        tab_a.describe()
    );
    let listed = strings(&handshake["data"]);
    assert_eq!(
        handshake["data"][0], addr_a,
        "A's HANDSHAKE must name A first: {handshake}"
    );
    assert!(
        listed.contains(&addr_b) && listed.contains(&addr_js),
        "A's HANDSHAKE must list B and the JavaScript node (its connectedAddresses): \
         {handshake}"
    );
    let state = tab_a.wait_for(0, "EVENT state", |frame| event(frame, "state").is_some());
    let state = &state["data"];
    assert_eq!(state["address"], addr_a, "the state EVENT names A: {state}");
    assert_eq!(
        strings(&state["connected"]),
        BTreeSet::from([addr_b.clone(), addr_js.clone()]),
        "the state EVENT lists B and the JavaScript node connected: {state}"
    );
    assert_eq!(state["pool"], 0, "nothing was pooled yet: {state}");

    // The tab dials B too, as a dial-only peer.
    let mut tab_b = Tab::connect(PORT_B, "the client's connection to B");
    tab_b.send(dial_only_handshake());
    let hello = tab_b.wait_for(0, "first frame", |_| true);
    assert_eq!(kind(&hello), "HELLO", "frames:\n{}", tab_b.describe());
    let handshake = tab_b.wait_for(0, "HANDSHAKE naming B first", |frame| {
        kind(frame) == "HANDSHAKE" && frame["data"][0] == addr_b
    });
    let listed = strings(&handshake["data"]);
    assert!(
        listed.contains(&addr_a) && listed.contains(&addr_js),
        "B's HANDSHAKE must list A and the JavaScript node: {handshake}"
    );

    // And the JavaScript node: to it, a HANDSHAKE with an empty list and an unknown type.
    let mut tab_js = Tab::connect(PORT_JS, "the client's connection to the JavaScript node");
    tab_js.send(dial_only_handshake());
    tab_js.send(r#"{"type":"WATCH"}"#.to_owned());
    let js_heard = wait_until(DEADLINE, || {
        let log = js.log();
        log.contains("HANDSHAKE []") && log.contains(r#"ignored a frame of unknown type "WATCH""#)
    });
    assert!(
        js_heard,
        "the JavaScript node did not log the empty HANDSHAKE and the ignored WATCH:\n{}",
        js.log()
    );
    js.assert_running();

    // 1. A transaction made at B is pushed to the tab on its B connection, and the watcher
    //    on A is told when it enters A's pool.
    let (mark_a, mark_b) = (tab_a.mark(), tab_b.mark());
    let made_at_b = add_transaction(b.dir()).hash;
    tab_b.wait_for(mark_b, "push of the transaction made at B", |frame| {
        pushed_hashes(frame).contains(&made_at_b.as_str())
    });
    let pooled = tab_a.wait_for(mark_a, "EVENT pooled naming B's transaction", |frame| {
        event(frame, "pooled").is_some_and(|data| strings(&data["hashes"]).contains(&made_at_b))
    });
    assert!(
        pooled["data"]["pool"].as_u64() >= Some(1),
        "a pooled EVENT counts the pool: {pooled}"
    );

    // 2. A transaction the tab sends on its A connection reaches every pool file, once.
    let key = public_key(BASE + 9);
    let from_tab = TestTransaction::new(&key, 42, now_ms());
    let mark_a = tab_a.mark();
    tab_a.send(from_tab.frame());
    tab_a.wait_for(
        mark_a,
        "EVENT pooled naming the client's transaction",
        |frame| {
            event(frame, "pooled")
                .is_some_and(|data| strings(&data["hashes"]).contains(&from_tab.hash))
        },
    );
    wait_for_pools_exactly(
        &[a.dir(), b.dir(), js.dir()],
        &[&made_at_b, &from_tab.hash],
        DEADLINE,
    );

    // 3. The JavaScript node is not disturbed: still running, it dialled nothing since
    //    the tab came (nor ever anything but the nodes and the probe), and its pool holds
    //    each transaction once (checked above).
    js.assert_running();
    let dials = js_dials(&js);
    assert_eq!(
        dials[dials_before.len()..],
        [] as [String; 0],
        "the JavaScript node dialled after the dial-only client came:\n{}",
        js.log()
    );
    assert!(
        dials.iter().all(|dialled| network.contains(dialled)),
        "the JavaScript node dialled an address other than the nodes' and the probe's \
         ({network:?}): {dials:?}"
    );
    tab_js.drain(Duration::from_millis(100));
    assert!(
        tab_js.frames.is_empty() && !tab_js.closed,
        "the JavaScript node sends nothing on a connection it accepted, and keeps it; \
         frames:\n{}",
        tab_js.describe()
    );
    // A took the dial-only HANDSHAKE's empty list as naming nobody: it dials nothing.
    let status = request_status(PORT_A, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status.connected,
        BTreeSet::from([addr_b.clone(), addr_js.clone()]),
        "A: {}",
        status.raw
    );

    // 4. B killed: the watcher on A is told A no longer reaches it.
    let mark_a = tab_a.mark();
    b.kill();
    let peers = tab_a.wait_for(mark_a, "EVENT peers without B", |frame| {
        event(frame, "peers").is_some_and(|data| !strings(&data["connected"]).contains(&addr_b))
    });
    assert_eq!(
        strings(&peers["data"]["connected"]),
        BTreeSet::from([addr_js.clone()]),
        "with B gone A still reaches the JavaScript node: {peers}"
    );

    // 5. B back: A reaches it again, hands the tab a HANDSHAKE naming it, and the watcher
    //    sees it connected.
    let mark_a = tab_a.mark();
    b.restart();
    b.wait_ready(DEADLINE);
    tab_a.wait_for(mark_a, "HANDSHAKE [A, B] once A reaches B again", |frame| {
        kind(frame) == "HANDSHAKE" && frame["data"] == json!([addr_a, addr_b])
    });
    tab_a.wait_for(mark_a, "EVENT peers with B again", |frame| {
        event(frame, "peers").is_some_and(|data| strings(&data["connected"]).contains(&addr_b))
    });

    // Nothing A pushed on the tab's connection was the tab's own transaction, sent back.
    tab_a.drain(Duration::from_millis(100));
    assert!(
        tab_a
            .frames
            .iter()
            .all(|frame| !pushed_hashes(frame).contains(&from_tab.hash.as_str())),
        "A pushed the client's transaction back to it; frames:\n{}",
        tab_a.describe()
    );
    js.assert_running();
    a.assert_pool_file_holds_exactly(
        &BTreeSet::from([made_at_b.as_str(), from_tab.hash.as_str()]),
        DEADLINE,
    );
    tab_a.client.close();
    tab_b.client.close();
    tab_js.client.close();
}
