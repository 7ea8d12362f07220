//! A node never dials itself under another spelling of its address, and never opens a second
//! connection to a server it is connected to under another spelling.

use std::time::Duration;

use serde_json::json;
use tests::{ports, wait_until, Client, Node, NodeSpec, Scratch, TestPeer, DEADLINE};

const NODE: u16 = ports::OTHER_SPELLINGS;
const PEER: u16 = ports::OTHER_SPELLINGS + 1;

fn spellings(port: u16) -> Vec<String> {
    vec![
        format!("ws://127.0.0.1:{port}"),
        format!("ws://localhost:{port}/"),
        format!("ws://[::1]:{port}"),
        format!("ws://127.0.0.1:{port}/"),
    ]
}

#[test]
fn other_spellings_of_its_own_or_a_connected_address_are_not_dialled() {
    let scratch = Scratch::new();
    let peer = TestPeer::bind(PEER);
    let node = Node::start_ready(
        &scratch.node_folder("node-1", &NodeSpec::new(NODE).knowing(&[NODE, PEER])),
    );
    let connected = wait_until(DEADLINE, || peer.connections().len() == 1);
    assert!(connected, "the node did not dial its known peer");

    let mut client = Client::connect(NODE).unwrap_or_else(|e| panic!("{e}"));
    let mut addresses = spellings(PEER);
    addresses.extend(spellings(NODE));
    client
        .send_json(&json!({"type": "HANDSHAKE", "data": addresses}))
        .unwrap_or_else(|e| panic!("{e}"));
    client.close();

    // Give it time to (wrongly) dial, then look.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        peer.connections().len(),
        1,
        "the node opened more than one connection to the peer under other spellings"
    );
    let status = node.status().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status.connected.iter().collect::<Vec<_>>(),
        vec![&peer.address()],
        "connected should be the peer under its first spelling only: {}",
        status.raw
    );
    assert!(
        status.dialling.is_empty(),
        "the node is dialling a spelling: {}",
        status.raw
    );
    assert!(
        status.inbound <= 1,
        "the node holds inbound connections other than this status request (itself?): {}",
        status.raw
    );
}
