//! Malformed frames of every kind, sent to every node on connections it accepted and on one
//! it dialled, leave every node running and the mesh whole; a transaction still spreads.

use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use serde_json::{json, Value};
use tests::{
    add_transaction, address, ports, read_pool, wait_for_full_mesh, wait_until, Client, Node,
    NodeSpec, Scratch, TestPeer, DEADLINE,
};

const A: u16 = ports::MALFORMED_FRAMES;
const B: u16 = ports::MALFORMED_FRAMES + 1;
const C: u16 = ports::MALFORMED_FRAMES + 2;
const GREETING_PEER: u16 = ports::MALFORMED_FRAMES + 3;

const MIB: usize = 1024 * 1024;

/// Every kind of frame a node cannot use, labelled for messages.
fn malformed_frames() -> Vec<(&'static str, Message)> {
    let text = |value: Value| Message::text(value.to_string());
    // Thousands of addresses no one listens on (127.0.0.2 is loopback; nothing there).
    let many: Vec<String> = (0..5000)
        .map(|i| format!("ws://127.0.0.2:{}", 40000 + i))
        .collect();
    vec![
        ("not JSON", Message::text("this is not JSON {")),
        ("empty text", Message::text("")),
        (
            "truncated JSON",
            Message::text(r#"{"type":"HANDSHAKE","data":["ws://localhost:1""#),
        ),
        (
            "deeply nested JSON",
            Message::text(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        ),
        ("binary", Message::binary(b"\x00\x01\x02\xff".to_vec())),
        (
            "binary JSON",
            Message::binary(
                json!({"type": "HANDSHAKE", "data": [address(9)]})
                    .to_string()
                    .into_bytes(),
            ),
        ),
        ("JSON null", text(Value::Null)),
        ("JSON number", text(json!(42))),
        ("JSON string", text(json!("HANDSHAKE"))),
        ("JSON array", text(json!(["HANDSHAKE", []]))),
        ("no type", text(json!({"data": []}))),
        ("type not a string", text(json!({"type": 7, "data": []}))),
        (
            "unknown type",
            text(json!({"type": "GOSSIP", "data": [1, 2, 3]})),
        ),
        (
            "lowercase type",
            text(json!({"type": "handshake", "data": [address(A)]})),
        ),
        ("HANDSHAKE without data", text(json!({"type": "HANDSHAKE"}))),
        (
            "HANDSHAKE data null",
            text(json!({"type": "HANDSHAKE", "data": null})),
        ),
        (
            "HANDSHAKE data a string",
            text(json!({"type": "HANDSHAKE", "data": address(B)})),
        ),
        (
            "HANDSHAKE data an object",
            text(json!({"type": "HANDSHAKE", "data": {"address": address(B)}})),
        ),
        (
            "HANDSHAKE data of non-strings",
            text(json!({"type": "HANDSHAKE", "data": [1, null, true, {}, []]})),
        ),
        (
            "HANDSHAKE empty",
            text(json!({"type": "HANDSHAKE", "data": []})),
        ),
        (
            "HANDSHAKE of non-ws URLs",
            text(json!({"type": "HANDSHAKE", "data": [
                format!("http://localhost:{B}"), format!("https://localhost:{C}"),
                format!("wss://localhost:{B}"), "ftp://localhost:21", "localhost:4001",
                "ws://", "ws://localhost", "ws://localhost:", "ws://localhost:notaport",
                "ws://localhost:99999", "ws://localhost:-1", "ws:/localhost:4001",
                "ws://local host:4001", "javascript:alert(1)", "", " ", "\u{0000}",
                format!("ws://localhost:{}", "9".repeat(1000)),
                format!("ws://{}:1", "a".repeat(70_000)),
            ]})),
        ),
        (
            "HANDSHAKE of thousands of addresses",
            text(json!({"type": "HANDSHAKE", "data": many})),
        ),
        (
            "TRANSACTION without data",
            text(json!({"type": "TRANSACTION"})),
        ),
        (
            "TRANSACTION data null",
            text(json!({"type": "TRANSACTION", "data": null})),
        ),
        (
            "TRANSACTION data an array",
            text(json!({"type": "TRANSACTION", "data": []})),
        ),
        (
            "TRANSACTION data a string",
            text(json!({"type": "TRANSACTION", "data": "tx"})),
        ),
        (
            "TRANSACTION without hash",
            text(json!({"type": "TRANSACTION", "data": {"amount": 1}})),
        ),
        (
            "TRANSACTION hash a number",
            text(json!({"type": "TRANSACTION", "data": {"hash": 12}})),
        ),
        (
            "TRANSACTION hash an object",
            text(json!({"type": "TRANSACTION", "data": {"hash": {"a": 1}}})),
        ),
        (
            "STATUS_REQUEST with junk",
            text(json!({"type": "STATUS_REQUEST", "data": {"x": [1]}})),
        ),
        (
            "STATUS from outside",
            text(json!({"type": "STATUS", "data": {"connected": 5}})),
        ),
        ("8 MiB of text", Message::text("x".repeat(8 * MIB))),
        (
            "8 MiB HANDSHAKE address",
            text(json!({"type": "HANDSHAKE", "data": [format!("ws://{}:1", "h".repeat(8 * MIB))]})),
        ),
        ("20 MiB of binary", Message::binary(vec![0xA5; 20 * MIB])),
        ("17 MiB of text", Message::text("[".repeat(17 * MIB))),
    ]
}

/// Sends `frame` to the node on `port` on a new connection, lets the node react, and closes.
/// The node may refuse the frame by closing the connection, so sending may fail; but it must
/// accept the connection.
fn send_malformed(port: u16, label: &str, frame: Message) {
    let mut client = Client::connect(port).unwrap_or_else(|e| {
        panic!("before sending {label:?}: the node on {port} no longer serves: {e}")
    });
    let _ = client.send(frame);
    let _ = client.receive(Duration::from_millis(10));
    client.close();
}

#[test]
fn malformed_frames_of_every_kind_leave_every_node_running_and_the_mesh_whole() {
    let scratch = Scratch::new();
    let mut nodes: Vec<Node> = [A, B, C]
        .iter()
        .enumerate()
        .map(|(index, &port)| {
            let spec = NodeSpec::new(port).knowing(&[A]);
            Node::start_ready(&scratch.node_folder(&format!("node-{}", index + 1), &spec))
        })
        .collect();
    wait_for_full_mesh(&nodes, DEADLINE);

    // On connections the nodes accepted: every frame to the first node, the small ones to
    // all (the big ones take a while to send).
    for (label, frame) in malformed_frames() {
        let targets = if frame.len() > MIB {
            &mut nodes[..1]
        } else {
            &mut nodes[..]
        };
        for node in targets {
            send_malformed(node.port(), label, frame.clone());
            node.assert_running();
        }
    }
    // And on a connection a node dialled: a peer that answers with junk (the node may hang up
    // and dial again, so it gets the small junk and one big frame, on every connection).
    let greeting: Vec<Message> = malformed_frames()
        .into_iter()
        .map(|(_, frame)| frame)
        .filter(|frame| frame.len() <= MIB)
        .chain([Message::text("y".repeat(2 * MIB))])
        .collect();
    let mut peer = TestPeer::bind_greeting(GREETING_PEER, greeting);
    send_malformed(
        A,
        "HANDSHAKE from the junk peer",
        Message::text(
            json!({"type": "HANDSHAKE", "data": [peer.address(), address(A)]}).to_string(),
        ),
    );
    let dialled = wait_until(DEADLINE, || !peer.connections().is_empty());
    assert!(dialled, "node A did not dial the peer it was handed");
    // Give the node time to read the junk, then take the peer away again.
    std::thread::sleep(Duration::from_secs(2));
    peer.close();

    for node in &mut nodes {
        node.assert_running();
    }
    wait_for_full_mesh(&nodes, DEADLINE);

    // And a transaction still spreads to every pool.
    let sent = add_transaction(nodes[1].dir());
    let mut last = Vec::new();
    let spread = wait_until(DEADLINE, || {
        last = nodes.iter().map(|node| read_pool(node.dir())).collect();
        last.iter().all(|pool| {
            pool.as_ref()
                .is_ok_and(|pool| pool.iter().any(|tx| tx["hash"] == sent.hash.as_str()))
        })
    });
    assert!(
        spread,
        "transaction {} did not reach every pool: {last:#?}",
        sent.hash
    );
    for node in &mut nodes {
        node.assert_running();
    }
}
