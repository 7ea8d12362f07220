//! Three nodes started one after another form the full mesh.

use tests::{ports, wait_for_full_mesh, wait_for_settled_mesh, Node, NodeSpec, Scratch, DEADLINE};

const A: u16 = ports::FULL_MESH;
const B: u16 = ports::FULL_MESH + 1;
const C: u16 = ports::FULL_MESH + 2;

#[test]
fn three_nodes_started_one_after_another_form_the_full_mesh() {
    let scratch = Scratch::new();
    // As in the curriculum: every node knows the first and the last (itself among them).
    let spec = |port| NodeSpec::new(port).knowing(&[A, C]);
    let a = Node::start_ready(&scratch.node_folder("node-1", &spec(A)));
    let b = Node::start_ready(&scratch.node_folder("node-2", &spec(B)));
    let c = Node::start_ready(&scratch.node_folder("node-3", &spec(C)));
    let nodes = [a, b, c];

    wait_for_full_mesh(&nodes, DEADLINE);

    // Every pair holds two connections, one dialled by each side, and nobody dials on.
    wait_for_settled_mesh(&nodes, DEADLINE);

    // No node lists or dials itself.
    for node in &nodes {
        let status = node
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", node.name()));
        assert!(
            !status.connected.contains(&node.address()),
            "{} connects to itself: {}",
            node.name(),
            status.raw
        );
    }
}
