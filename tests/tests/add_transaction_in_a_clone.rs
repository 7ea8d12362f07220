//! `add-transaction` in `node-2`, a clone without `MY_PUBLIC_KEY`, lands exactly once in all
//! three pools, and so do the ones after it: every transaction has its own hash.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tests::{
    add_transaction, curriculum_nodes, lock_curriculum_ports, read_pool, read_pool_key_orders,
    read_pool_strict, wait_for_full_mesh, wait_until, Node, Scratch, SentTransaction,
    CURRICULUM_PUBLIC_KEY, DEADLINE,
};

/// The SHA-256 of nothing: the hash every transaction of a clone gets in the original.
const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The transactions in `pool` with this hash.
fn count(pool: &[Value], hash: &str) -> usize {
    pool.iter().filter(|tx| tx["hash"] == hash).count()
}

/// Waits until every node's pool file holds every hash.
fn wait_until_everywhere(nodes: &[Node], sent: &[SentTransaction]) {
    let mut last = Vec::new();
    let arrived = wait_until(DEADLINE, || {
        last = nodes.iter().map(|node| read_pool(node.dir())).collect();
        last.iter().all(|pool| {
            pool.as_ref()
                .is_ok_and(|pool| sent.iter().all(|tx| count(pool, &tx.hash) >= 1))
        })
    });
    if !arrived {
        let hashes: Vec<&str> = sent.iter().map(|tx| tx.hash.as_str()).collect();
        panic!(
            "not every pool got every transaction {hashes:?} within {DEADLINE:?}; pools: {last:#?}"
        );
    }
}

#[test]
fn add_transaction_in_a_clone_lands_exactly_once_in_every_pool_and_so_do_later_ones() {
    let _ports = lock_curriculum_ports();
    let scratch = Scratch::new();
    let [dir_1, dir_2, dir_3] = curriculum_nodes(&scratch);
    let mut nodes: Vec<Node> = [&dir_1, &dir_2, &dir_3]
        .iter()
        .map(|dir| Node::start_ready(dir))
        .collect();
    wait_for_full_mesh(&nodes, DEADLINE);

    let first = add_transaction(&dir_2);
    assert_ne!(
        first.hash, EMPTY_HASH,
        "a clone's transaction has the empty hash: {}",
        first.stdout
    );
    wait_until_everywhere(&nodes, std::slice::from_ref(&first));

    // Later ones: several in a row from the clone, and one from each other node.
    let mut sent = vec![first];
    for _ in 0..4 {
        sent.push(add_transaction(&dir_2));
    }
    let from_node_1 = add_transaction(&dir_1);
    sent.push(from_node_1.clone());
    sent.push(add_transaction(&dir_3));
    let mut hashes: Vec<&str> = sent.iter().map(|tx| tx.hash.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(
        hashes.len(),
        sent.len(),
        "two transactions share a hash: {sent:#?}"
    );
    wait_until_everywhere(&nodes, &sent);

    // Let any duplicate that is still on its way arrive, then stop every node (pools saved)
    // and read the files at rest.
    std::thread::sleep(Duration::from_secs(1));
    for node in &mut nodes {
        let exit = node.stop(DEADLINE).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            exit.success(),
            "{} exited with {exit} on SIGTERM",
            node.name()
        );
    }
    let pools: Vec<Vec<Value>> = nodes
        .iter()
        .map(|node| read_pool_strict(node.dir()))
        .collect();
    for (node, pool) in nodes.iter().zip(&pools) {
        assert_eq!(
            pool.len(),
            sent.len(),
            "{}'s pool should hold exactly the {} transactions sent: {pool:#?}",
            node.name(),
            sent.len()
        );
        for tx in &sent {
            assert_eq!(
                count(pool, &tx.hash),
                1,
                "{} holds {} not exactly once",
                node.name(),
                tx.hash
            );
        }
    }

    // Passed on unchanged: every pool holds the same object for each hash, and it is the one
    // add-transaction said it sent (when it printed it as JSON).
    for tx in &sent {
        let copies: Vec<&Value> = pools
            .iter()
            .map(|pool| {
                pool.iter()
                    .find(|t| t["hash"] == tx.hash.as_str())
                    .expect("counted above")
            })
            .collect();
        assert!(
            copies.windows(2).all(|pair| pair[0] == pair[1]),
            "the pools hold different objects for {}: {copies:#?}",
            tx.hash
        );
        if let Some(printed) = &tx.transaction {
            assert_eq!(
                printed, copies[0],
                "the pools hold another object than was printed"
            );
        }
        let stored = copies[0];
        assert!(stored["fromAddress"].is_null(), "{stored}");
        let amount = stored["amount"].as_u64().unwrap_or(0);
        assert!(
            (1..=100).contains(&amount),
            "amount not in 1..=100: {stored}"
        );
        assert!(
            stored["timeStamp"].as_u64().is_some(),
            "timeStamp not a number: {stored}"
        );
    }

    // Same fields in the same order in every pool; node-1's (which has every field) in the
    // order the curriculum builds them.
    let orders: Vec<_> = nodes
        .iter()
        .map(|node| read_pool_key_orders(node.dir()))
        .collect();
    for tx in &sent {
        let keys: Vec<&Vec<String>> = orders
            .iter()
            .map(|pool| {
                &pool
                    .iter()
                    .find(|(hash, _)| *hash == tx.hash)
                    .expect("counted above")
                    .1
            })
            .collect();
        assert!(
            keys.windows(2).all(|pair| pair[0] == pair[1]),
            "the pools hold {}'s fields in different orders: {keys:?}",
            tx.hash
        );
        if tx.hash == from_node_1.hash {
            assert_eq!(
                keys[0],
                &["fromAddress", "toAddress", "amount", "timeStamp", "hash"],
                "node-1's transaction's fields are not in the curriculum's order"
            );
        }
    }

    // From the clone (no MY_PUBLIC_KEY): toAddress null (JavaScript would leave it out).
    for tx in &sent[..5] {
        let stored = pools[0]
            .iter()
            .find(|t| t["hash"] == tx.hash.as_str())
            .expect("counted");
        assert!(
            stored.get("toAddress").is_none_or(Value::is_null),
            "a clone's transaction has a toAddress: {stored}"
        );
    }
    // From node-1: toAddress is its key, and the hash is the original's formula.
    let stored = pools[0]
        .iter()
        .find(|t| t["hash"] == from_node_1.hash.as_str())
        .expect("counted above");
    assert_eq!(stored["toAddress"], CURRICULUM_PUBLIC_KEY, "{stored}");
    let expected = hex_sha256(&format!(
        "null{}{}{}",
        CURRICULUM_PUBLIC_KEY, stored["amount"], stored["timeStamp"]
    ));
    assert_eq!(
        from_node_1.hash, expected,
        "node-1's hash is not SHA-256(\"null\" + toAddress + amount + timeStamp): {stored}"
    );
}
