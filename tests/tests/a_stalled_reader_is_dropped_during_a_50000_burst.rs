//! A peer that stops reading costs its node at most one send buffer (`P2P_SEND_BUFFER`,
//! 4 MiB by default), and once its queue makes no progress for `P2P_STALL_TIMEOUT` (10 s by
//! default) with data pending, the node closes its connection, while the honest peers get
//! everything as if it were not there.
//!
//! Three nodes in a full mesh, and a peer node 1 dials (introduced by a HANDSHAKE naming its
//! address) that reads node 1's HANDSHAKE and then stops reading. A burst of 50,000
//! transactions of about 1 KB each (some 55 MB of frames) goes into node 1 on one
//! connection. Node 1 must close the stalled connection (STATUS stops listing it, or it is
//! redialled; read again, it ends), nodes 2 and 3 must hold all 50,000 in their
//! `transactions.json`, and node 1 may grow no more than node 3 did taking in the same burst,
//! plus a send buffer for each of its three peers and some slack: holding the burst for the
//! peer that does not read would cost it some 50 MB more.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::{
    ports, transactions_to, wait_for_full_mesh, wait_for_settled_mesh, wait_until, Client,
    MemoryWatch, Node, NodeSpec, Scratch, StallingPeer, DEADLINE, KIB_PER_MIB,
};

const A: u16 = ports::STALLED_READER;
const B: u16 = ports::STALLED_READER + 1;
const C: u16 = ports::STALLED_READER + 2;
const STALLING: u16 = ports::STALLED_READER + 3;

const BURST: usize = 50_000;
/// The `toAddress` of the burst's transactions: long enough to make each about 1 KB, well
/// under the 4,096-byte cap on one transaction.
const TO_ADDRESS_LEN: usize = 880;
/// The default `P2P_SEND_BUFFER`: what one connection may hold queued.
const SEND_BUFFER_MIB: u64 = 4;
/// Over what node 3 spends on the burst and one send buffer per peer of node 1: its read
/// buffers, allocator slack, the noise of a debug build.
const SLACK_MIB: u64 = 16;
/// The default `P2P_STALL_TIMEOUT`, after which a connection whose queue makes no progress
/// is closed.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn a_stalled_reader_is_dropped_during_a_50000_burst() {
    let scratch = Scratch::new();
    let spec = |port| NodeSpec::new(port).knowing(&[A, B, C]);
    let mut a = Node::start_ready(&scratch.node_folder("node-1", &spec(A)));
    let b = Node::start_ready(&scratch.node_folder("node-2", &spec(B)));
    let c = Node::start_ready(&scratch.node_folder("node-3", &spec(C)));
    wait_for_full_mesh([&a, &b, &c], DEADLINE);
    wait_for_settled_mesh([&a, &b, &c], DEADLINE);

    // Node 1 dials the stalling peer, which reads its HANDSHAKE and then stops reading.
    let stalling = StallingPeer::bind(STALLING);
    let mut introducer = Client::connect(A).unwrap_or_else(|e| panic!("{e}"));
    introducer
        .send_json(&json!({"type": "HANDSHAKE", "data": [stalling.address()]}))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut last = None;
    let dialled = wait_until(DEADLINE, || {
        last = Some(a.status());
        stalling.stalled() == 1
            && matches!(&last, Some(Ok(status)) if status.connected.contains(&stalling.address()))
    });
    assert!(
        dialled,
        "{} did not connect to the peer it was handed: {last:?}",
        a.name()
    );
    introducer.close();

    let burst = transactions_to(&"04".repeat(TO_ADDRESS_LEN / 2), BURST, 4);
    // Node 3 takes in the same burst with no peer stalling: the control.
    let control = MemoryWatch::start(&c, 1024);
    let watch = MemoryWatch::start(&a, 1024);
    let started = Instant::now();
    let mut client = Client::connect(A).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_all(burst.iter().map(|tx| tx.frame()), Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("sending the burst: {e}"));
    eprintln!("sent {BURST} transactions in {:?}", started.elapsed());

    // The honest nodes get all of it.
    let expected: BTreeSet<&str> = burst.iter().map(|tx| tx.hash.as_str()).collect();
    for node in [&b, &c] {
        let mut last = None;
        let all = wait_until(DEADLINE * 2, || {
            last = Some(node.status());
            matches!(&last, Some(Ok(status)) if status.pool as usize == BURST)
        });
        assert!(
            all,
            "{} did not get the {BURST} transactions of the burst: {last:?}",
            node.name()
        );
        node.assert_pool_file_holds_exactly(&expected, DEADLINE);
    }
    eprintln!(
        "nodes 2 and 3 hold the burst {:?} after it began",
        started.elapsed()
    );

    // Node 1 closes the stalled connection: STATUS stops listing the peer, or the node has
    // already dialled it again on a new connection.
    let mut last = None;
    let closed = wait_until(STALL_TIMEOUT + DEADLINE, || {
        last = Some(a.status());
        stalling.connections() > 1
            || matches!(&last, Some(Ok(status)) if !status.connected.contains(&stalling.address()))
    });
    eprintln!("{}", watch.summary());
    assert!(
        closed,
        "{} never closed its connection to the peer that stopped reading ({:?} after the \
         burst began, stall timeout {STALL_TIMEOUT:?}); last status: {last:?}",
        a.name(),
        started.elapsed()
    );
    // Read again, the stalled connection gives what was in flight, then ends.
    let resumed = stalling.resume(0, DEADLINE);
    eprintln!(
        "the stalled connection held {} frames after the HANDSHAKE; ended: {}",
        resumed.frames, resumed.ended
    );
    assert!(
        resumed.ended,
        "{} closed the stalled connection as far as STATUS says, but the socket stayed open \
         ({} frames read from it)",
        a.name(),
        resumed.frames
    );
    assert!(
        resumed.frames < BURST,
        "the stalled peer was sent the whole burst: nothing was held back for it"
    );

    eprintln!("{}", control.summary());
    let allowance = control.growth_kib() + (3 * SEND_BUFFER_MIB + SLACK_MIB) * KIB_PER_MIB;
    watch.assert_within(
        allowance,
        &format!(
            "a burst of 50,000 went through it to a peer that stopped reading (node 3 grew \
             by {} KiB taking in the same burst; the allowance adds a {SEND_BUFFER_MIB} MiB \
             send buffer for each of node 1's three peers and {SLACK_MIB} MiB)",
            control.growth_kib()
        ),
    );
    a.assert_running();
    a.answering_status();
}
