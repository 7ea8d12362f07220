//! Catch-up is answered only to a peer that said it is one of ours: a stranger, a
//! connection that never sent a HANDSHAKE, floods a node holding 50,000 transactions with 50
//! SYNC frames of about 30 KB, each asking about the whole pool many times over in every
//! shape a SYNC frame has (a thousand whole-space "I hold nothing" ranges, whole-space and
//! overlapping ranges with wrong fingerprints, `need` lists of real hashes, `ids` lists of
//! real hashes), and never reads a byte. Answered, that is hundreds of millions of
//! transaction bodies; the node must not grow more than 32 MiB past its size before the
//! attack, must keep answering STATUS, keep running, and relay a new transaction to an
//! honest peer node as if nothing happened.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{
    everything_range, fingerprint_range, ids_range, need_range, pool_file_mentions, ports,
    sync_frame, transactions, wait_for_full_mesh, wait_for_settled_mesh, wait_until, write_pool,
    Client, MemoryWatch, Node, NodeSpec, Scratch, TestTransaction, CURRICULUM_PUBLIC_KEY, DEADLINE,
};

const A: u16 = ports::STRANGERS_SYNC_FLOOD;
const B: u16 = ports::STRANGERS_SYNC_FLOOD + 1;

/// Transactions in the attacked node's pool (and its honest peer's).
const POOL: usize = 50_000;
/// SYNC frames the stranger sends.
const FRAMES: usize = 50;
/// About how long each of them is.
const FRAME_BYTES: usize = 30_000;
/// The most ranges the core takes in one SYNC frame (`sync::MAX_RANGES`): the flood stays
/// within it, so that every frame is one the node could answer.
const MAX_RANGES: usize = 1024;
/// What the attack may cost the node, over its resident size before it.
const ALLOWANCE_MIB: u64 = 32;
/// How long the node is watched after the last frame is sent.
const WATCH_AFTER: Duration = Duration::from_secs(10);

/// A SYNC frame of ranges made by `range(index)`, as many as fit in about `FRAME_BYTES`.
fn filled(mut range: impl FnMut(usize) -> Value) -> String {
    let mut ranges = Vec::new();
    let mut bytes = 0;
    while bytes < FRAME_BYTES && ranges.len() < MAX_RANGES {
        let next = range(ranges.len());
        bytes += next.to_string().len() + 1;
        ranges.push(next);
    }
    sync_frame(&ranges)
}

/// The flood: every shape of SYNC request, over and over, about `hashes` (the pool's
/// hashes, sorted).
fn flood(hashes: &[&str]) -> Vec<String> {
    let chunk = |frame: usize, len: usize| -> Vec<&str> {
        (0..len)
            .map(|i| hashes[(frame * len + i) % hashes.len()])
            .collect()
    };
    (0..FRAMES)
        .map(|frame| match frame % 6 {
            // "I hold nothing of the whole order", a thousand times in one frame.
            0 => filled(|_| everything_range()),
            // The whole order, with a fingerprint that never matches.
            1 => filled(|i| fingerprint_range("", None, i as u64 + 1, "0123456789abcdef")),
            // Overlapping halves of the order, with wrong fingerprints.
            2 => filled(|i| {
                let lo = format!("{:x}", i % 8);
                let ub = format!("{:x}", i % 8 + 8);
                fingerprint_range(&lo, Some(&ub), 7, "fedcba9876543210")
            }),
            // A `need` list of real hashes.
            3 => sync_frame(&[need_range(&chunk(frame, FRAME_BYTES / 68))]),
            // "I hold only these" of the whole order: asks for all the rest.
            4 => sync_frame(&[ids_range("", None, &chunk(frame, FRAME_BYTES / 68))]),
            // The same few real hashes asked for again and again.
            _ => filled(|_| need_range(&chunk(frame, 3))),
        })
        .collect()
}

#[test]
fn a_strangers_sync_flood_costs_a_bounded_budget() {
    let scratch = Scratch::new();
    let pool = transactions(POOL, 1);
    // The honest peer holds the same pool, so that their own catch-up is one small frame.
    let dirs: Vec<_> = [(A, B, "node-1"), (B, A, "node-2")]
        .into_iter()
        .map(|(port, other, name)| {
            let dir = scratch.node_folder(name, &NodeSpec::new(port).knowing(&[other]));
            write_pool(&dir, &pool);
            dir
        })
        .collect();
    let mut a = Node::start_ready(&dirs[0]);
    let b = Node::start_ready(&dirs[1]);
    wait_for_full_mesh([&a, &b], DEADLINE);
    wait_for_settled_mesh([&a, &b], DEADLINE);
    thread::sleep(Duration::from_secs(1));

    let mut sorted: Vec<&str> = pool.iter().map(|tx| tx.hash.as_str()).collect();
    sorted.sort_unstable();
    let frames = flood(&sorted);
    let flood_bytes: usize = frames.iter().map(String::len).sum();

    let watch = MemoryWatch::start(&a, ALLOWANCE_MIB);
    let mut stranger = Client::connect(A).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    // From another thread: a node busy answering may stop reading for a while.
    let attack = thread::spawn(move || {
        let mut sent = 0;
        for frame in frames {
            // The node may well close the connection: that ends the flood.
            if stranger.send_text(frame).is_err() {
                break;
            }
            sent += 1;
        }
        // Never read, never closed: held until the test ends.
        (stranger, sent)
    });
    let (_stranger, sent) = attack.join().expect("the flooding thread panicked");
    eprintln!(
        "the stranger sent {sent} of {FRAMES} SYNC frames ({flood_bytes} bytes in all) in {:?}",
        started.elapsed()
    );
    watch.watch_for(&mut a, WATCH_AFTER);

    watch.assert_within_budget("a stranger flooded it with SYNC frames and read nothing");
    a.assert_running();
    a.assert_answers_with_pool(POOL);

    // An honest peer sees no difference: a new transaction still reaches it.
    let new = TestTransaction::new(CURRICULUM_PUBLIC_KEY, 5, 1_700_000_000_000);
    let mut client = Client::connect(A).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_text(new.frame())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut last = None;
    let relayed = wait_until(DEADLINE, || {
        last = Some(b.status());
        matches!(&last, Some(Ok(status)) if status.pool as usize == POOL + 1)
            && pool_file_mentions(b.dir(), &new.hash)
    });
    assert!(
        relayed,
        "a new transaction sent to {} did not reach the honest {}'s pool file: {last:?}",
        a.name(),
        b.name()
    );
    watch.assert_within_budget("a stranger flooded it with SYNC frames and read nothing");
    a.assert_running();
}
