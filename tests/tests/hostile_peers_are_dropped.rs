//! Hostile or broken peers are dropped and the node stays healthy: a connection sending a
//! frame over the size limit is closed; one that keeps sending frames the node cannot use is
//! closed; a dialled peer that stops reading is dropped once its send buffer
//! (`P2P_SEND_BUFFER`, in bytes) is full and makes no progress, and the node's memory stays
//! bounded meanwhile.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::{
    pid_of, ports, vm_rss_kib, wait_until, Client, Frame, Node, NodeSpec, Scratch, StallingPeer,
    DEADLINE,
};

const OVERSIZED: u16 = ports::HOSTILE_PEERS_ARE_DROPPED;
const GARBAGE: u16 = ports::HOSTILE_PEERS_ARE_DROPPED + 1;
const NOT_READING: u16 = ports::HOSTILE_PEERS_ARE_DROPPED + 2;
const NOT_READING_PEER: u16 = ports::HOSTILE_PEERS_ARE_DROPPED + 3;

const MIB: usize = 1024 * 1024;

/// `P2P_SEND_BUFFER` of the node facing the peer that does not read: 256 KiB.
const SEND_BUFFER: usize = 262_144;

/// A generous bound on the resident memory of a node that is being flooded.
const RSS_BOUND_KIB: u64 = 200 * 1024;

/// Waits until the node closes `client`'s connection (frames it sends first are skipped).
fn closed_by_node(client: &mut Client) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if let Some(Frame::Closed) = client.receive(Duration::from_secs(1)) {
            return true;
        }
    }
    false
}

/// Panics unless `node` runs and answers a status request.
fn assert_healthy(node: &mut Node) {
    node.assert_running();
    node.answering_status();
}

/// The node's resident memory in KiB.
fn rss_kib(node: &Node) -> u64 {
    vm_rss_kib(pid_of(node))
        .unwrap_or_else(|| panic!("cannot read the resident size of {}", node.name()))
}

#[test]
fn a_connection_sending_an_oversized_frame_is_closed_and_the_node_stays_healthy() {
    let scratch = Scratch::new();
    let mut node = Node::start_ready(&scratch.node_folder("node-1", &NodeSpec::new(OVERSIZED)));

    let mut client = Client::connect(OVERSIZED).unwrap_or_else(|e| panic!("{e}"));
    // The node may close the connection before the whole frame is written.
    let _ = client.send_text("x".repeat(2 * MIB));
    assert!(
        closed_by_node(&mut client),
        "{} kept a connection open after a 2 MiB frame (its limit is 1 MiB)",
        node.name()
    );
    assert_healthy(&mut node);
}

#[test]
fn a_connection_sending_garbage_is_closed_and_the_node_stays_healthy() {
    let scratch = Scratch::new();
    let mut node = Node::start_ready(&scratch.node_folder("node-1", &NodeSpec::new(GARBAGE)));

    let mut client = Client::connect(GARBAGE).unwrap_or_else(|e| panic!("{e}"));
    for index in 0..20 {
        // Once the node has closed the connection, sending fails: that is the point.
        if client.send_text(format!("not JSON {{ {index}")).is_err() {
            break;
        }
    }
    assert!(
        closed_by_node(&mut client),
        "{} kept a connection open after 20 frames of garbage (the limit is 16)",
        node.name()
    );
    assert!(
        node.log().contains("too many frames it cannot use"),
        "{} did not log why it closed the garbage-sending connection",
        node.name()
    );
    assert_healthy(&mut node);
}

/// A transaction in the curriculum's shape with a distinct hash, padded to about 1 KiB so
/// that the kernel's socket buffers fill quickly.
fn padded_transaction(index: usize) -> Value {
    json!({
        "fromAddress": null,
        "toAddress": "x".repeat(1000),
        "amount": index % 100 + 1,
        "timeStamp": 1_700_000_000_000u64 + index as u64,
        "hash": format!("{index:064x}"),
    })
}

#[test]
fn a_peer_that_does_not_read_is_dropped_and_memory_stays_bounded() {
    let scratch = Scratch::new();
    let spec = NodeSpec::new(NOT_READING).env("P2P_SEND_BUFFER", SEND_BUFFER);
    let mut node = Node::start_ready(&scratch.node_folder("node-1", &spec));

    // It reads the node's HANDSHAKE, then nothing more.
    let peer = StallingPeer::bind(NOT_READING_PEER);
    // Introduced by a HANDSHAKE on a connection of its own, so that the flood below comes
    // from no known address and the node pushes every transaction on to the peer.
    let mut introducer = Client::connect(NOT_READING).unwrap_or_else(|e| panic!("{e}"));
    introducer
        .send_json(&json!({"type": "HANDSHAKE", "data": [peer.address()]}))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut last = None;
    let dialled = wait_until(DEADLINE, || {
        last = Some(node.status());
        peer.stalled() == 1
            && matches!(&last, Some(Ok(status)) if status.connected.contains(&peer.address()))
    });
    assert!(
        dialled,
        "{} did not connect to the peer it was handed: {last:?}",
        node.name()
    );

    introducer.close();

    // Flood the node; it pushes every new transaction to the peer, which does not read.
    // The peer is gone once the node no longer lists it, or has dialled it again.
    let mut client = Client::connect(NOT_READING).unwrap_or_else(|e| panic!("{e}"));
    let gone = |node: &Node| {
        peer.connections() > 1
            || node
                .status()
                .is_ok_and(|status| !status.connected.contains(&peer.address()))
    };
    let mut sent = 0;
    let mut most_rss = 0;
    let dropped = loop {
        if gone(&node) {
            break true;
        }
        if sent >= 20_000 {
            break wait_until(DEADLINE, || gone(&node));
        }
        for index in sent..sent + 500 {
            client
                .send_json(&json!({"type": "TRANSACTION", "data": padded_transaction(index)}))
                .unwrap_or_else(|e| panic!("sending transaction {index}: {e}"));
        }
        sent += 500;
        node.assert_running();
        most_rss = most_rss.max(rss_kib(&node));
    };
    eprintln!("sent {sent} transactions; most VmRSS seen {most_rss} KiB");
    assert!(
        dropped,
        "{} never dropped the peer that does not read (send buffer {SEND_BUFFER} bytes, \
         {sent} transactions of about 1 KiB sent)",
        node.name()
    );
    let resumed = peer.resume(0, DEADLINE);
    assert!(
        resumed.ended,
        "{} no longer lists the peer that does not read, but its connection stayed open",
        node.name()
    );
    assert!(
        most_rss < RSS_BOUND_KIB,
        "{} grew to {most_rss} KiB while flooded (bound {RSS_BOUND_KIB} KiB)",
        node.name()
    );
    client.close();

    assert_healthy(&mut node);
    let rss = rss_kib(&node);
    assert!(
        rss < RSS_BOUND_KIB,
        "{} holds {rss} KiB after dropping the peer (bound {RSS_BOUND_KIB} KiB)",
        node.name()
    );
}
