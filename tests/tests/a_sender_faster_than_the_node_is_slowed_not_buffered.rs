//! A peer that sends faster than the node handles frames is slowed by back-pressure, not
//! buffered: a client writes 300 frames of 900 KB (270 MB, each one the node must parse)
//! as fast as loopback goes. The node may hold only its inbound buffer of that connection
//! (`Limits::max_inbound_buffer`, 2 MiB, plus the frame in hand), so it must not grow more
//! than 32 MiB past its size before, must keep answering STATUS, and its honest peer must
//! still get a new transaction.

use std::thread;
use std::time::Instant;

use tests::{
    pool_file_mentions, ports, wait_for_full_mesh, wait_until, Client, MemoryWatch, Node, NodeSpec,
    Scratch, TestTransaction, CURRICULUM_PUBLIC_KEY, DEADLINE,
};

const A: u16 = ports::FAST_SENDER;
const B: u16 = ports::FAST_SENDER + 1;
/// Frames the fast sender writes, and the length of each (under the 1 MiB frame cap).
const FRAMES: usize = 300;
const FRAME_BYTES: usize = 900 << 10;
/// What the flood may cost the node, over its resident size before it.
const ALLOWANCE_MIB: u64 = 32;

#[test]
fn a_sender_faster_than_the_node_is_slowed_not_buffered() {
    let scratch = Scratch::new();
    let dir_a = scratch.node_folder("node-1", &NodeSpec::new(A).knowing(&[B]));
    let dir_b = scratch.node_folder("node-2", &NodeSpec::new(B).knowing(&[A]));
    let mut a = Node::start_ready(&dir_a);
    let b = Node::start_ready(&dir_b);
    wait_for_full_mesh([&a, &b], DEADLINE);

    // A frame of a type the node does not know: parsed whole, then ignored.
    let frame = format!(
        r#"{{"type":"NOISE","data":"{}"}}"#,
        "x".repeat(FRAME_BYTES - 30)
    );
    let watch = MemoryWatch::start(&a, ALLOWANCE_MIB);
    let mut sender = Client::connect(A).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let flood = thread::spawn(move || {
        let mut sent = 0;
        for _ in 0..FRAMES {
            if sender.send_text(frame.clone()).is_err() {
                break;
            }
            sent += 1;
        }
        (sender, sent)
    });
    let (_sender, sent) = flood.join().expect("the flooding thread panicked");
    eprintln!(
        "sent {sent} of {FRAMES} frames of {FRAME_BYTES} bytes in {:?}; {}",
        started.elapsed(),
        watch.summary()
    );
    assert_eq!(
        sent, FRAMES,
        "the node closed a connection that only sent fast"
    );
    watch.assert_within_budget("a peer sent frames faster than it handles them");
    a.assert_running();
    a.answering_status();

    let new = TestTransaction::new(CURRICULUM_PUBLIC_KEY, 5, 1_700_000_000_000);
    let mut client = Client::connect(A).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_text(new.frame())
        .unwrap_or_else(|e| panic!("{e}"));
    let relayed = wait_until(DEADLINE, || pool_file_mentions(b.dir(), &new.hash));
    assert!(relayed, "a new transaction did not reach {}", b.name());
    watch.assert_within_budget("a peer sent frames faster than it handles them");
}
