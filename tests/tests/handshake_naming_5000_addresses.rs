//! A HANDSHAKE naming 5,000 addresses does not turn the node into a dialling cannon: it never
//! dials more than `max_concurrent_dials` (32 by default) at once, logs the limit on
//! addresses taken from one HANDSHAKE, stays healthy, still meshes with a second node, and a
//! transaction still reaches both pools.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{
    add_transaction, ports, read_pool, wait_until, Client, Node, NodeSpec, Scratch, TestPeer,
    DEADLINE,
};

const A: u16 = ports::HANDSHAKE_NAMING_5000_ADDRESSES;
const B: u16 = ports::HANDSHAKE_NAMING_5000_ADDRESSES + 1;
const SENDER_PEER: u16 = ports::HANDSHAKE_NAMING_5000_ADDRESSES + 2;

/// The core's default `Limits::max_concurrent_dials` (p2p-core/src/config.rs).
const MAX_CONCURRENT_DIALS: usize = 32;

/// How long the dialling is watched.
const WATCH: Duration = Duration::from_secs(4);

#[test]
fn a_handshake_naming_5000_addresses_keeps_dials_bounded_and_the_node_healthy() {
    let scratch = Scratch::new();
    let mut a = Node::start_ready(&scratch.node_folder("node-1", &NodeSpec::new(A)));
    let peer = TestPeer::bind(SENDER_PEER);

    // The sender's own address first, then 5,000 addresses on ports no one listens on
    // (refused at once on loopback), under two spellings.
    let mut addresses = vec![peer.address()];
    addresses.extend((0..5000u16).map(|i| {
        let host = if i % 2 == 0 { "127.0.0.1" } else { "localhost" };
        format!("ws://{host}:{}", 40000 + i)
    }));
    let mut client = Client::connect(A).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_json(&json!({"type": "HANDSHAKE", "data": addresses}))
        .unwrap_or_else(|e| panic!("{e}"));

    // Watch the dialling for a few seconds: never more than the cap at once.
    let started = Instant::now();
    let mut most = 0;
    let mut polls = 0;
    while started.elapsed() < WATCH {
        a.assert_running();
        let status = a
            .status()
            .unwrap_or_else(|e| panic!("{} stopped answering STATUS: {e}", a.name()));
        polls += 1;
        most = most.max(status.dialling.len());
        assert!(
            status.dialling.len() <= MAX_CONCURRENT_DIALS,
            "{} dials {} addresses at once (the cap is {MAX_CONCURRENT_DIALS}): {}",
            a.name(),
            status.dialling.len(),
            status.raw
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("at most {most} dials at once over {polls} STATUS polls");
    client.close();

    // The sender was dialled (its address came first).
    assert!(
        wait_until(DEADLINE, || !peer.handshakes().is_empty()),
        "{} never dialled the HANDSHAKE's sender {}",
        a.name(),
        peer.address()
    );
    let log = a.log();
    assert!(
        log.contains("limit reached: addresses taken from one HANDSHAKE"),
        "{} did not log the limit on addresses taken from one HANDSHAKE",
        a.name()
    );

    // A second node still meshes with it.
    let b = Node::start_ready(&scratch.node_folder("node-2", &NodeSpec::new(B).knowing(&[A])));
    let mut last = (Err(String::new()), Err(String::new()));
    let meshed = wait_until(DEADLINE, || {
        last = (a.status(), b.status());
        matches!(&last, (Ok(sa), Ok(sb))
            if sa.connected.contains(&b.address()) && sb.connected.contains(&a.address()))
    });
    assert!(
        meshed,
        "the two nodes did not connect to each other; last statuses: {last:#?}"
    );

    // And a transaction still reaches both pools.
    let sent = add_transaction(b.dir());
    let mut pools = Vec::new();
    let spread = wait_until(DEADLINE, || {
        pools = [&a, &b].iter().map(|node| read_pool(node.dir())).collect();
        pools.iter().all(|pool| {
            pool.as_ref()
                .is_ok_and(|pool| pool.iter().any(|tx| tx["hash"] == sent.hash.as_str()))
        })
    });
    assert!(
        spread,
        "transaction {} did not reach both pools: {pools:#?}",
        sent.hash
    );
    a.assert_running();
}
