//! The curriculum's clones in a mixed network: only `node-1` has a `MY_PUBLIC_KEY`. A
//! JavaScript clone gives every transaction the same hash (the original's defect), so only its
//! first reaches the pools, and reaches all of them, Rust ones included, without a `toAddress`;
//! a Rust clone gives each its own hash, and the JavaScript nodes take them all.

use serde_json::Value;
use tests::{
    add_transaction, js_add_transaction, ports, read_pool_key_orders, read_pool_strict,
    wait_for_mixed_mesh, wait_for_pools_exactly, JsNode, Node, NodeSpec, Scratch,
    CURRICULUM_PUBLIC_KEY, DEADLINE,
};

const NODE_1: u16 = ports::INTEROP_JAVASCRIPT_CLONES;
const NODE_2: u16 = ports::INTEROP_JAVASCRIPT_CLONES + 1;
const NODE_3: u16 = ports::INTEROP_JAVASCRIPT_CLONES + 2;
const PROBE: u16 = ports::INTEROP_JAVASCRIPT_CLONES + 3;

/// The SHA-256 of nothing: the hash of every transaction a JavaScript clone makes.
const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn only_the_first_transaction_of_a_javascript_clone_reaches_the_pools_but_every_one_of_a_rust_clone_does(
) {
    let scratch = Scratch::new();
    // node-1 and the clones copied from it, as the curriculum makes them.
    let known = [NODE_1, NODE_3];
    let node_1 = JsNode::start_ready(
        &scratch.node_folder(
            "node-1",
            &NodeSpec::new(NODE_1)
                .knowing(&known)
                .public_key(CURRICULUM_PUBLIC_KEY),
        ),
    );
    let node_2 =
        Node::start_ready(&scratch.node_folder("node-2", &NodeSpec::new(NODE_2).knowing(&known)));
    let node_3 =
        JsNode::start_ready(&scratch.node_folder("node-3", &NodeSpec::new(NODE_3).knowing(&known)));
    wait_for_mixed_mesh(&[&node_2], &[&node_1, &node_3], PROBE, DEADLINE);

    let from_js_clone = [
        js_add_transaction(node_3.dir()),
        js_add_transaction(node_3.dir()),
    ];
    for tx in &from_js_clone {
        assert_eq!(
            tx.hash, EMPTY_HASH,
            "a JavaScript clone's transaction should hash as nothing: {}",
            tx.stdout
        );
    }
    let first = from_js_clone[0].transaction.clone().unwrap_or_else(|| {
        panic!(
            "add-transaction.js printed no transaction: {}",
            from_js_clone[0].stdout
        )
    });
    assert!(
        first.get("toAddress").is_none(),
        "a JavaScript clone's transaction has no toAddress: {first}"
    );
    let from_rust_clone = [add_transaction(node_2.dir()), add_transaction(node_2.dir())];
    let from_node_1 = js_add_transaction(node_1.dir());

    let expected = [
        EMPTY_HASH,
        &from_rust_clone[0].hash,
        &from_rust_clone[1].hash,
        &from_node_1.hash,
    ];
    let dirs = [node_1.dir(), node_2.dir(), node_3.dir()];
    let pools = wait_for_pools_exactly(&dirs, &expected, DEADLINE);

    for (dir, pool) in dirs.iter().zip(&pools) {
        let held: Vec<&Value> = pool.iter().filter(|tx| tx["hash"] == EMPTY_HASH).collect();
        assert_eq!(
            held,
            [&first],
            "{} should hold the JavaScript clone's first transaction, unchanged",
            dir.display()
        );
        read_pool_strict(dir);
        for (hash, keys) in read_pool_key_orders(dir) {
            let expected_keys: &[&str] = if hash == EMPTY_HASH {
                &["fromAddress", "amount", "timeStamp", "hash"]
            } else {
                &["fromAddress", "toAddress", "amount", "timeStamp", "hash"]
            };
            assert_eq!(
                keys,
                expected_keys,
                "{} holds transaction {hash} with its keys changed",
                dir.display()
            );
        }
    }
}
