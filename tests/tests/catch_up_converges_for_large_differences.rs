//! Catch-up converges for any difference: two of our nodes that know each other end with
//! the same pool in their `transactions.json`, each transaction once, however far apart
//! they start.
//!
//! - 60,000 transactions against 10,000 others: both end with the 70,000.
//! - 200,000 against none: both end with the 200,000.
//!
//! Every round of catch-up must stay within the frame limits (1 MiB, 1,024 ranges), so a
//! difference this large takes many rounds; the deadlines are generous (a debug build on a
//! shared machine of two cores).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tests::{
    ports, transactions, wait_until, write_pool, Node, NodeSpec, Scratch, Status, TestTransaction,
};

/// How long two nodes may take to reach the same pool.
const CONVERGE_WITHIN: Duration = Duration::from_secs(120);

/// Starts two nodes that know each other with pools `a` and `b` and waits until both pool
/// files hold exactly `a ∪ b`, each transaction once.
fn converge(first_port: u16, a: &[TestTransaction], b: &[TestTransaction]) {
    let scratch = Scratch::new();
    let (port_a, port_b) = (first_port, first_port + 1);
    let mut nodes: Vec<Node> = [(port_a, port_b, a, "node-a"), (port_b, port_a, b, "node-b")]
        .into_iter()
        .map(|(port, other, pool, name)| {
            let dir = scratch.node_folder(name, &NodeSpec::new(port).knowing(&[other]));
            write_pool(&dir, pool);
            Node::start(&dir)
        })
        .collect();
    let started = Instant::now();
    for node in &mut nodes {
        // Loading 200,000 transactions takes a debug build a while.
        node.wait_ready(CONVERGE_WITHIN);
    }
    let union: BTreeSet<&str> = a.iter().chain(b).map(|tx| tx.hash.as_str()).collect();
    let total = union.len();

    let mut last: Vec<Result<Status, String>> = Vec::new();
    let counted = wait_until(CONVERGE_WITHIN, || {
        last = nodes.iter().map(Node::status).collect();
        last.iter()
            .all(|status| status.as_ref().is_ok_and(|s| s.pool as usize == total))
    });
    let report = |last: &[Result<Status, String>]| -> String {
        nodes
            .iter()
            .zip(last)
            .map(|(node, status)| match status {
                Ok(status) => format!("\n  {}: pool {}", node.name(), status.pool),
                Err(e) => format!("\n  {}: {e}", node.name()),
            })
            .collect()
    };
    assert!(
        counted,
        "the two pools did not converge on the {total} transactions within \
         {CONVERGE_WITHIN:?} (they started with {} and {}); last pool sizes:{}",
        a.len(),
        b.len(),
        report(&last)
    );
    eprintln!(
        "both nodes hold {total} transactions {:?} after start",
        started.elapsed()
    );

    for node in &nodes {
        node.assert_pool_file_holds_exactly(&union, Duration::from_secs(30));
    }
}

#[test]
fn sixty_thousand_and_ten_thousand_others_end_as_the_same_seventy_thousand() {
    converge(
        ports::CATCH_UP_LARGE_DIFFERENCES,
        &transactions(60_000, 70),
        &transactions(10_000, 71),
    );
}

#[test]
fn two_hundred_thousand_and_none_end_as_the_same_two_hundred_thousand() {
    converge(
        ports::CATCH_UP_LARGE_DIFFERENCES + 2,
        &transactions(200_000, 72),
        &[],
    );
}
