//! Nodes on the curriculum's ports 4001, 4002 and 4003, in folders made as the curriculum
//! makes them (`node-1` and two clones), each list all three.

use serde_json::json;
use tests::{
    address, curriculum_nodes, lock_curriculum_ports, ports, wait_for_full_mesh, Client, Node,
    Scratch, TestPeer, DEADLINE,
};

#[test]
fn nodes_on_4001_4002_and_4003_each_list_all_three() {
    let _ports = lock_curriculum_ports();
    let scratch = Scratch::new();
    let folders = curriculum_nodes(&scratch);
    // One after another, as a person starts them in three terminals.
    let nodes: Vec<Node> = folders.iter().map(|dir| Node::start_ready(dir)).collect();

    wait_for_full_mesh(&nodes, DEADLINE);

    // What a JavaScript node would see: each node, handed a newcomer's address, dials it and
    // sends a HANDSHAKE listing itself, the other two and the newcomer.
    let all: Vec<String> = ports::CURRICULUM
        .iter()
        .map(|&port| address(port))
        .collect();
    for (index, node) in nodes.iter().enumerate() {
        let peer = TestPeer::bind(ports::CURRICULUM_PEERS + index as u16);
        let mut client = Client::connect(node.port()).unwrap_or_else(|e| panic!("{e}"));
        client
            .send_json(&json!({"type": "HANDSHAKE", "data": [peer.address(), node.address()]}))
            .unwrap_or_else(|e| panic!("{e}"));
        client.close();
        let handshake = peer.wait_for_handshake(DEADLINE, |_| true);
        assert_eq!(handshake.first(), Some(&node.address()), "{handshake:?}");
        for expected in all.iter().chain([&peer.address()]) {
            assert!(
                handshake.contains(expected),
                "{}'s HANDSHAKE does not list {expected}: {handshake:?}",
                node.name()
            );
        }
        assert_eq!(
            handshake.len(),
            4,
            "{}'s HANDSHAKE should list itself, the other two and the newcomer once each: \
             {handshake:?}",
            node.name()
        );
    }
}
