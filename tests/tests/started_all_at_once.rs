//! Nodes started in the same instant, each knowing only one other, still form the full mesh.

use tests::{ports, wait_for_full_mesh, wait_for_settled_mesh, Node, NodeSpec, Scratch, DEADLINE};

const COUNT: u16 = 6;

#[test]
fn six_nodes_started_at_once_each_knowing_one_other_form_the_full_mesh() {
    let scratch = Scratch::new();
    let port = |index: u16| ports::STARTED_ALL_AT_ONCE + index;
    // A ring: node i knows only node i + 1, so most addresses must be learnt from HANDSHAKEs,
    // and most first dials find nobody listening yet.
    let folders: Vec<_> = (0..COUNT)
        .map(|i| {
            let spec = NodeSpec::new(port(i)).knowing(&[port((i + 1) % COUNT)]);
            scratch.node_folder(&format!("node-{}", i + 1), &spec)
        })
        .collect();
    let nodes: Vec<Node> = folders.iter().map(|dir| Node::start(dir)).collect();

    wait_for_full_mesh(&nodes, DEADLINE);
    wait_for_settled_mesh(&nodes, DEADLINE);
}
