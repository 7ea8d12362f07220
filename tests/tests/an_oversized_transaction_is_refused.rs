//! One transaction's JSON text is capped at 4,096 bytes: a TRANSACTION frame carrying a
//! bigger one (5,000 bytes, 100,000 bytes; each well under the 1 MiB frame limit and with a
//! valid hash) is refused: not pooled, not relayed. A normal transaction sent right after
//! it on the same connection is pooled and relayed as ever.

use std::time::Duration;

use serde_json::json;
use tests::{
    pool_file_mentions, pool_hashes, ports, wait_until, Client, Frame, Node, NodeSpec, Scratch,
    TestPeer, TestTransaction, CURRICULUM_PUBLIC_KEY, DEADLINE,
};

const NODE: u16 = ports::OVERSIZED_TRANSACTION;
const PEER: u16 = ports::OVERSIZED_TRANSACTION + 1;

/// The cap on one transaction's JSON text.
const MAX_TRANSACTION_BYTES: usize = 4096;

/// A valid transaction whose JSON text is exactly `bytes` long: its `toAddress` is padded.
fn transaction_of(bytes: usize, time_stamp: u64) -> TestTransaction {
    let bare = TestTransaction::new("", 1, time_stamp).body().len();
    let tx = TestTransaction::new(&"ab".repeat(bytes)[..bytes - bare], 1, time_stamp);
    assert_eq!(tx.body().len(), bytes);
    tx
}

/// The hashes of every TRANSACTION frame the test peer received.
fn relayed(peer: &TestPeer) -> Vec<String> {
    peer.connections()
        .iter()
        .flatten()
        .filter_map(Frame::json)
        .filter(|frame| frame["type"] == "TRANSACTION")
        .map(|frame| frame["data"]["hash"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn a_transaction_over_4096_bytes_is_refused_and_the_next_one_is_relayed() {
    let scratch = Scratch::new();
    let node = Node::start_ready(&scratch.node_folder("node-1", &NodeSpec::new(NODE)));
    let peer = TestPeer::bind(PEER);

    // The test peer is a peer the node dialled (as a JavaScript node would be): it gets
    // every transaction the node pools but those it sent itself, so it is introduced on a
    // connection of its own.
    let mut introducer = Client::connect(NODE).unwrap_or_else(|e| panic!("{e}"));
    introducer
        .send_json(&json!({"type": "HANDSHAKE", "data": [peer.address()]}))
        .unwrap_or_else(|e| panic!("{e}"));
    peer.wait_for_handshake(DEADLINE, |_| true);
    introducer.close();

    let mut client = Client::connect(NODE).unwrap_or_else(|e| panic!("{e}"));

    let oversized = [
        transaction_of(5_000, 1_700_000_000_001),
        transaction_of(100_000, 1_700_000_000_002),
    ];
    let normal = TestTransaction::new(CURRICULUM_PUBLIC_KEY, 3, 1_700_000_000_003);
    assert!(normal.body().len() <= MAX_TRANSACTION_BYTES);
    for tx in &oversized {
        client
            .send_text(tx.frame())
            .unwrap_or_else(|e| panic!("sending a {}-byte transaction: {e}", tx.body().len()));
    }
    client
        .send_text(normal.frame())
        .unwrap_or_else(|e| panic!("sending the normal transaction after them: {e}"));

    // Frames from one connection are taken in order: once the normal one is relayed and in
    // the pool file, the node has made up its mind about the two before it.
    let arrived = wait_until(DEADLINE, || {
        relayed(&peer).contains(&normal.hash) && pool_file_mentions(node.dir(), &normal.hash)
    });
    assert!(
        arrived,
        "{} did not pool and relay the normal transaction sent after the oversized ones; the \
         test peer got {:?}",
        node.name(),
        relayed(&peer)
    );
    // A moment more, so that a relay or a pool write lagging behind would show.
    std::thread::sleep(Duration::from_millis(500));

    for tx in &oversized {
        assert!(
            !relayed(&peer).contains(&tx.hash),
            "{} relayed a transaction of {} bytes (the cap is {MAX_TRANSACTION_BYTES})",
            node.name(),
            tx.body().len()
        );
    }
    let pool = pool_hashes(node.dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pool,
        vec![normal.hash.clone()],
        "{}'s transactions.json should hold only the normal transaction ({}), not the \
         oversized ones ({} of {} bytes, {} of {} bytes)",
        node.name(),
        normal.hash,
        oversized[0].hash,
        oversized[0].body().len(),
        oversized[1].hash,
        oversized[1].body().len()
    );
    let status = node.status().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.pool, 1, "{}: {}", node.name(), status.raw);
}
