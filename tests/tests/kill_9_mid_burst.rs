//! A node killed with SIGKILL in the middle of a burst of transactions never leaves a torn
//! `transactions.json`; restarted in its folder, it loads its pool, rejoins the mesh by itself
//! and, through catch-up, ends with exactly the same complete pool as every other node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::{
    ports, read_pool, wait_for_full_mesh, wait_until, Client, Node, NodeSpec, Scratch, DEADLINE,
};

const A: u16 = ports::KILL_9_MID_BURST;
const B: u16 = ports::KILL_9_MID_BURST + 1;
const C: u16 = ports::KILL_9_MID_BURST + 2;

const BURST: usize = 5000;

/// A transaction in the curriculum's shape, with a distinct 64-hex-digit hash.
fn transaction(index: usize) -> Value {
    json!({
        "fromAddress": null,
        "toAddress": "04burst",
        "amount": index % 100 + 1,
        "timeStamp": 1_700_000_000_000u64 + index as u64,
        "hash": format!("{index:064x}"),
    })
}

/// How many times each hash appears in a pool.
fn hash_counts(pool: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for tx in pool {
        *counts
            .entry(tx["hash"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    counts
}

/// Reads `node`'s pool file, panicking if it is not a complete JSON array of transactions.
fn pool_whole(node: &Node, when: &str) -> Vec<Value> {
    read_pool(node.dir())
        .unwrap_or_else(|e| panic!("{}: transactions.json is torn {when}: {e}", node.name()))
}

#[test]
fn a_node_killed_mid_burst_keeps_a_whole_pool_file_and_catches_up_after_a_restart() {
    let scratch = Scratch::new();
    let spec = |port| NodeSpec::new(port).knowing(&[A, B, C]);
    let a = Node::start_ready(&scratch.node_folder("node-1", &spec(A)));
    let mut b = Node::start_ready(&scratch.node_folder("node-2", &spec(B)));
    let c = Node::start_ready(&scratch.node_folder("node-3", &spec(C)));
    wait_for_full_mesh([&a, &b, &c], DEADLINE);

    // The burst, into node 1, from another thread.
    let sent = Arc::new(AtomicUsize::new(0));
    let mut client = Client::connect(A).unwrap_or_else(|e| panic!("{e}"));
    let burst = {
        let sent = sent.clone();
        thread::spawn(move || {
            for index in 0..BURST {
                client
                    .send_json(&json!({"type": "TRANSACTION", "data": transaction(index)}))
                    .unwrap_or_else(|e| panic!("sending transaction {index}: {e}"));
                sent.store(index + 1, Ordering::SeqCst);
            }
            client.close();
        })
    };

    // Watch node 2's pool file as often as it can be read while the burst runs; kill it
    // once it holds some of the burst and about half the burst is sent.
    let mut seen;
    let mut reads = 0;
    let watch_until = Instant::now() + DEADLINE;
    let ready_to_kill = loop {
        let pool = pool_whole(&b, "while the node runs");
        reads += 1;
        seen = pool.len();
        if seen > 0 && sent.load(Ordering::SeqCst) >= BURST / 2 {
            break true;
        }
        if Instant::now() > watch_until {
            break false;
        }
        thread::sleep(Duration::from_millis(1));
    };
    assert!(
        ready_to_kill,
        "node 2's pool file never held any of the burst (it holds {seen}; {} of {BURST} sent)",
        sent.load(Ordering::SeqCst)
    );
    let sent_at_kill = sent.load(Ordering::SeqCst);
    b.kill();
    let after_kill = pool_whole(&b, "right after SIGKILL");
    eprintln!(
        "killed node 2 with {sent_at_kill} of {BURST} sent; its pool file held {} \
         (checked whole {reads} times while it ran)",
        after_kill.len()
    );

    burst.join().expect("the burst thread panicked");

    // Restarted in the same folder, it loads its pool and rejoins by itself.
    b.restart();
    let status = b.wait_ready(DEADLINE);
    assert!(
        status.pool as usize >= after_kill.len(),
        "the restarted node loaded {} transactions, but its file held {}: {}",
        status.pool,
        after_kill.len(),
        status.raw
    );
    wait_for_full_mesh([&a, &b, &c], DEADLINE);

    // Every pool file converges on exactly the burst, each transaction once.
    let expected: BTreeMap<String, usize> = (0..BURST)
        .map(|index| (format!("{index:064x}"), 1))
        .collect();
    let mut last: Vec<Result<BTreeMap<String, usize>, String>> = Vec::new();
    let converged = wait_until(DEADLINE * 2, || {
        last = [&a, &b, &c]
            .iter()
            .map(|node| read_pool(node.dir()).map(|pool| hash_counts(&pool)))
            .collect();
        last.iter()
            .all(|counts| counts.as_ref().is_ok_and(|counts| *counts == expected))
    });
    if !converged {
        let summary: Vec<String> = [&a, &b, &c]
            .iter()
            .zip(&last)
            .map(|(node, counts)| match counts {
                Ok(counts) => {
                    let missing = expected.keys().filter(|h| !counts.contains_key(*h)).count();
                    let doubled = counts.values().filter(|&&n| n > 1).count();
                    let extra = counts.keys().filter(|h| !expected.contains_key(*h)).count();
                    format!(
                        "  {}: {} distinct, {missing} missing, {doubled} more than once, \
                         {extra} unexpected",
                        node.name(),
                        counts.len()
                    )
                }
                Err(e) => format!("  {}: {e}", node.name()),
            })
            .collect();
        panic!(
            "the pool files did not converge on the {BURST} transactions, each once:\n{}",
            summary.join("\n")
        );
    }
    for node in [&a, &b, &c] {
        let status = node
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", node.name()));
        assert_eq!(
            status.pool as usize,
            BURST,
            "{}: {}",
            node.name(),
            status.raw
        );
    }
}
