//! A node stopped with SIGTERM exits 0 with its pool saved whole; started again in its folder,
//! it loads its pool (a transaction it holds stays single) and rejoins the mesh; Ctrl-C
//! (SIGINT) stops it as cleanly.

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use tests::{
    add_transaction, ports, read_pool, read_pool_strict, run_p2p_node, sent_transaction,
    wait_for_full_mesh, wait_until, Client, Node, NodeSpec, Scratch, SentTransaction,
    COMMAND_DEADLINE, DEADLINE,
};

const A: u16 = ports::STOP_AND_RESTART;
const B: u16 = ports::STOP_AND_RESTART + 1;
const C: u16 = ports::STOP_AND_RESTART + 2;

fn hashes(pool: &[Value]) -> Vec<String> {
    pool.iter()
        .map(|tx| tx["hash"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Waits until the pool files of `nodes` hold every hash in `sent`.
fn wait_for_pools(nodes: &[&Node], sent: &[&SentTransaction]) {
    let mut last = Vec::new();
    let arrived = wait_until(DEADLINE, || {
        last = nodes.iter().map(|node| read_pool(node.dir())).collect();
        last.iter().all(|pool| {
            pool.as_ref().is_ok_and(|pool| {
                let held = hashes(pool);
                sent.iter().all(|tx| held.contains(&tx.hash))
            })
        })
    });
    assert!(
        arrived,
        "the pools did not all get {:?}: {last:#?}",
        sent.iter().map(|tx| &tx.hash).collect::<Vec<_>>()
    );
}

#[test]
fn a_node_stopped_with_sigterm_saves_its_pool_and_rejoins_when_restarted() {
    let scratch = Scratch::new();
    let spec = |port| NodeSpec::new(port).knowing(&[A, B, C]);
    let a = Node::start_ready(&scratch.node_folder("node-1", &spec(A)));
    let mut b = Node::start_ready(&scratch.node_folder("node-2", &spec(B)));
    let c = Node::start_ready(&scratch.node_folder("node-3", &spec(C)));
    wait_for_full_mesh([&a, &b, &c], DEADLINE);

    let before: Vec<SentTransaction> = (0..3).map(|_| add_transaction(a.dir())).collect();
    wait_for_pools(&[&a, &b, &c], &before.iter().collect::<Vec<_>>());

    let exit = b.stop(DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.success(), "{} exited with {exit} on SIGTERM", b.name());
    let saved = read_pool_strict(b.dir());
    let expected: Vec<String> = before.iter().map(|tx| tx.hash.clone()).collect();
    assert_eq!(
        hashes(&saved),
        expected,
        "the stopped node's pool is not the three transactions, in order"
    );

    // The others notice it is gone.
    wait_for_full_mesh([&a, &c], DEADLINE);

    // Restarted, it loads its pool and rejoins.
    b.restart();
    let status = b.wait_ready(DEADLINE);
    assert_eq!(
        status.pool, 3,
        "the restarted node did not load its pool: {}",
        status.raw
    );
    wait_for_full_mesh([&a, &b, &c], DEADLINE);

    // A transaction it already holds, sent again, stays single.
    let mut client = Client::connect(B).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_json(&json!({"type": "TRANSACTION", "data": saved[0]}))
        .unwrap_or_else(|e| panic!("{e}"));
    client.close();

    // A new one reaches it (sent with --dir, from outside the node folder).
    let dir_arg = c.dir().to_string_lossy().into_owned();
    let run = run_p2p_node(
        &["add-transaction", "--dir", &dir_arg],
        scratch.path(),
        COMMAND_DEADLINE,
    );
    let after = sent_transaction(run);
    wait_for_pools(&[&a, &b, &c], &[&after]);

    // This time as Ctrl-C stops it.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let exit = b
        .stop_with(Signal::SIGINT, DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        exit.success(),
        "{} exited with {exit} on SIGINT (Ctrl-C)",
        b.name()
    );
    let mut expected = expected;
    expected.push(after.hash.clone());
    assert_eq!(
        hashes(&read_pool_strict(b.dir())),
        expected,
        "after a restart the pool should be the old three, then the new one, each once"
    );
}
