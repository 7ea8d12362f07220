//! Mixed networks of our Rust nodes and JavaScript nodes (our test double of the curriculum's,
//! `tests/interop/node.js`), started one after another as a person starts them: they form the
//! full mesh, and a transaction added at any node reaches every pool exactly once.
//!
//! JavaScript nodes never retry a dial, so, as in the curriculum, each node is started once the
//! one before it listens, and knows earlier nodes from its `known-peers.json`.

use std::path::Path;

use sha2::{Digest, Sha256};
use tests::{
    add_transaction, js_add_transaction, ports, read_pool_key_orders, read_pool_strict,
    wait_for_mixed_mesh, wait_for_pools_exactly, Client, JsNode, Node, NodeSpec, Scratch,
    SentTransaction, DEADLINE,
};

const BASE: u16 = ports::INTEROP_MIXED_NETWORK;

/// The keys of a transaction, in the order every pool must keep them.
const KEY_ORDER: [&str; 5] = ["fromAddress", "toAddress", "amount", "timeStamp", "hash"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Rust,
    Js,
}
use Kind::{Js, Rust};

enum Member {
    Rust(Node),
    Js(JsNode),
}

impl Member {
    fn dir(&self) -> &Path {
        match self {
            Member::Rust(node) => node.dir(),
            Member::Js(node) => node.dir(),
        }
    }

    fn port(&self) -> u16 {
        match self {
            Member::Rust(node) => node.port(),
            Member::Js(node) => node.port(),
        }
    }

    /// `p2p-node add-transaction` in a Rust node's folder, `node add-transaction.js` in a
    /// JavaScript node's.
    fn add_transaction(&self) -> SentTransaction {
        match self {
            Member::Rust(node) => add_transaction(node.dir()),
            Member::Js(node) => js_add_transaction(node.dir()),
        }
    }
}

/// Nodes started one after another in a scratch folder, and the port of the probe that watches
/// the JavaScript ones.
struct Network {
    // Declared first, so dropped first: the nodes stop before their folders go.
    members: Vec<Member>,
    probe: u16,
    _scratch: Scratch,
}

impl Network {
    /// Starts a node of each kind in turn on `base`, `base + 1`, ..., each once the one before
    /// it listens; `knows(ports, index)` is the `known-peers.json` of the node at `index`.
    /// Every node has a key of its own. The probe gets the port after the last node.
    fn start(kinds: &[Kind], base: u16, knows: impl Fn(&[u16], usize) -> Vec<u16>) -> Network {
        let scratch = Scratch::new();
        let all: Vec<u16> = (base..).take(kinds.len()).collect();
        let mut members = Vec::new();
        for (index, kind) in kinds.iter().enumerate() {
            let port = all[index];
            let spec = NodeSpec::new(port)
                .knowing(&knows(&all, index))
                .public_key(&public_key(port));
            let dir = scratch.node_folder(&format!("node-{}", index + 1), &spec);
            members.push(match kind {
                Rust => Member::Rust(Node::start_ready(&dir)),
                Js => Member::Js(JsNode::start_ready(&dir)),
            });
        }
        Network {
            members,
            probe: base + kinds.len() as u16,
            _scratch: scratch,
        }
    }

    fn wait_for_full_mesh(&self) {
        let rust: Vec<&Node> = self
            .members
            .iter()
            .filter_map(|member| match member {
                Member::Rust(node) => Some(node),
                Member::Js(_) => None,
            })
            .collect();
        let js: Vec<&JsNode> = self
            .members
            .iter()
            .filter_map(|member| match member {
                Member::Js(node) => Some(node),
                Member::Rust(_) => None,
            })
            .collect();
        wait_for_mixed_mesh(&rust, &js, self.probe, DEADLINE);
    }

    fn dirs(&self) -> Vec<&Path> {
        self.members.iter().map(Member::dir).collect()
    }

    /// Waits until every pool holds exactly the transactions `hashes`, each once, then checks
    /// that every node wrote its file as `JSON.stringify(pool, null, 2)` does, each
    /// transaction's keys in the order they were made in.
    fn wait_for_pools_exactly(&self, hashes: &[&str]) {
        let dirs = self.dirs();
        wait_for_pools_exactly(&dirs, hashes, DEADLINE);
        for (member, dir) in self.members.iter().zip(&dirs) {
            read_pool_strict(dir);
            for (hash, keys) in read_pool_key_orders(dir) {
                assert_eq!(
                    keys,
                    KEY_ORDER,
                    "node on port {} holds transaction {hash} with its keys reordered",
                    member.port()
                );
            }
        }
    }
}

/// A key of the node on `port`, shaped like the curriculum's (an uncompressed public key in
/// hex), so that every node's transactions get hashes of their own.
fn public_key(port: u16) -> String {
    format!("04{}", format!("{port:04x}").repeat(32))
}

/// Each node knows every node started before it.
fn earlier(all: &[u16], index: usize) -> Vec<u16> {
    all[..index].to_vec()
}

/// The curriculum's `known-peers.json`, copied into every clone: the first and the last node.
/// Nodes started before the last dial it once, find nothing there, and never again.
fn first_and_last(all: &[u16], _index: usize) -> Vec<u16> {
    vec![all[0], all[all.len() - 1]]
}

/// Each node knows only the first: the others it finds through HANDSHAKEs.
fn only_the_first(all: &[u16], _index: usize) -> Vec<u16> {
    vec![all[0]]
}

fn hashes(sent: &[SentTransaction]) -> Vec<&str> {
    sent.iter().map(|tx| tx.hash.as_str()).collect()
}

/// A TRANSACTION frame as `add-transaction` sends it, made by the test, with a hash of its own.
fn transaction_frame(key: &str, amount: u32, time_stamp: u64) -> (String, String) {
    let hash: String = Sha256::digest(format!("null{key}{amount}{time_stamp}"))
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let frame = format!(
        r#"{{"type":"TRANSACTION","data":{{"fromAddress":null,"toAddress":"{key}","amount":{amount},"timeStamp":{time_stamp},"hash":"{hash}"}}}}"#
    );
    (frame, hash)
}

/// Two nodes, the second knowing the first: the mesh forms, and a transaction added at each
/// reaches both pools once.
fn two_nodes_mesh_and_share_transactions(kinds: [Kind; 2], base: u16) {
    let network = Network::start(&kinds, base, earlier);
    network.wait_for_full_mesh();

    let sent: Vec<SentTransaction> = network
        .members
        .iter()
        .map(Member::add_transaction)
        .collect();
    network.wait_for_pools_exactly(&hashes(&sent));
}

#[test]
fn a_javascript_node_started_after_a_rust_node_meshes_with_it_and_they_share_transactions() {
    two_nodes_mesh_and_share_transactions([Rust, Js], BASE);
}

#[test]
fn a_rust_node_started_after_a_javascript_node_meshes_with_it_and_they_share_transactions() {
    two_nodes_mesh_and_share_transactions([Js, Rust], BASE + 3);
}

/// Three nodes with the curriculum's `known-peers.json`: the mesh forms, and transactions
/// added at every node, twice round, reach every pool once.
fn three_nodes_as_in_the_curriculum_mesh_and_share_transactions(kinds: [Kind; 3], base: u16) {
    let network = Network::start(&kinds, base, first_and_last);
    network.wait_for_full_mesh();

    let sent: Vec<SentTransaction> = (0..2)
        .flat_map(|_| network.members.iter().map(Member::add_transaction))
        .collect();
    network.wait_for_pools_exactly(&hashes(&sent));
}

#[test]
fn rust_javascript_rust_as_in_the_curriculum_mesh_and_share_transactions() {
    three_nodes_as_in_the_curriculum_mesh_and_share_transactions([Rust, Js, Rust], BASE + 6);
}

#[test]
fn javascript_rust_javascript_as_in_the_curriculum_mesh_and_share_transactions() {
    three_nodes_as_in_the_curriculum_mesh_and_share_transactions([Js, Rust, Js], BASE + 10);
}

#[test]
fn five_alternating_rust_and_javascript_nodes_mesh_and_every_transaction_reaches_every_pool_once() {
    let network = Network::start(&[Rust, Js, Rust, Js, Rust], BASE + 14, earlier);
    network.wait_for_full_mesh();

    // One added at every node, by each kind's own add-transaction.
    let mut sent: Vec<String> = network
        .members
        .iter()
        .map(|member| member.add_transaction().hash)
        .collect();

    // Then frames sent straight in, turn about, to a JavaScript node and a Rust node.
    let mut to_js = Client::connect(network.members[1].port()).unwrap_or_else(|e| panic!("{e}"));
    let mut to_rust = Client::connect(network.members[2].port()).unwrap_or_else(|e| panic!("{e}"));
    let key = public_key(0);
    for round in 0..10u32 {
        for (offset, client) in [&mut to_js, &mut to_rust].into_iter().enumerate() {
            let (frame, hash) = transaction_frame(
                &key,
                round + 1,
                1_700_000_000_000 + u64::from(round) * 2 + offset as u64,
            );
            client.send_text(frame).unwrap_or_else(|e| panic!("{e}"));
            sent.push(hash);
        }
    }
    to_js.close();
    to_rust.close();

    let hashes: Vec<&str> = sent.iter().map(String::as_str).collect();
    network.wait_for_pools_exactly(&hashes);

    // Nothing of it broke the mesh.
    network.wait_for_full_mesh();
}

#[test]
fn javascript_and_rust_nodes_that_know_only_the_first_find_all_the_others_through_handshakes() {
    // The JavaScript nodes 3 and 4 hear of each other and of node 2 only in HANDSHAKEs.
    let network = Network::start(&[Js, Rust, Js, Js, Rust], BASE + 20, only_the_first);
    network.wait_for_full_mesh();

    let sent: Vec<SentTransaction> = network
        .members
        .iter()
        .rev()
        .map(Member::add_transaction)
        .collect();
    network.wait_for_pools_exactly(&hashes(&sent));
}
