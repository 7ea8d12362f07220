//! A test peer that hands a node its address in a HANDSHAKE is dialled back and told the
//! node's connected addresses; once it is gone, the node stops listing it.

use serde_json::json;
use tests::{address, ports, wait_until, Client, Node, NodeSpec, Scratch, TestPeer, DEADLINE};

const NODE: u16 = ports::HANDSHAKE_WITH_TEST_PEER;
const FIRST_PEER: u16 = ports::HANDSHAKE_WITH_TEST_PEER + 1;
const SECOND_PEER: u16 = ports::HANDSHAKE_WITH_TEST_PEER + 2;

/// Dials the node and hands it `peer`'s address, as a node that dialled it would:
/// `[own address, ...connected addresses]`.
fn introduce(peer: &TestPeer) {
    let mut client = Client::connect(NODE).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_json(&json!({"type": "HANDSHAKE", "data": [peer.address(), address(NODE)]}))
        .unwrap_or_else(|e| panic!("{e}"));
    client.close();
}

#[test]
fn a_test_peer_is_dialled_back_and_dropped_from_handshakes_once_it_closes() {
    let scratch = Scratch::new();
    let node = Node::start_ready(&scratch.node_folder("node-1", &NodeSpec::new(NODE)));

    let mut first = TestPeer::bind(FIRST_PEER);
    introduce(&first);
    let handshake = first.wait_for_handshake(DEADLINE, |_| true);
    assert_eq!(
        handshake.first(),
        Some(&node.address()),
        "a HANDSHAKE starts with the sender's own address: {handshake:?}"
    );
    assert!(
        handshake.contains(&first.address()),
        "the HANDSHAKE on the new connection lists that connection's address: {handshake:?}"
    );
    let status = node.status().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.connected.contains(&first.address()),
        "the node dialled the peer but does not list it as connected: {}",
        status.raw
    );

    // The peer goes away: its server stops and every connection drops.
    first.close();
    let mut last = None;
    let forgotten = wait_until(DEADLINE, || {
        let status = node.status().ok();
        let gone = status
            .as_ref()
            .is_some_and(|status| !status.connected.contains(&first.address()));
        last = status;
        gone
    });
    assert!(
        forgotten,
        "the node still lists a closed peer as connected: {last:?}"
    );

    // The next HANDSHAKE it sends, to a new peer, no longer lists the first one.
    let second = TestPeer::bind(SECOND_PEER);
    introduce(&second);
    let handshake = second.wait_for_handshake(DEADLINE, |_| true);
    assert_eq!(handshake.first(), Some(&node.address()), "{handshake:?}");
    assert!(handshake.contains(&second.address()), "{handshake:?}");
    assert!(
        !handshake.contains(&first.address()),
        "the HANDSHAKE still lists the closed peer {}: {handshake:?}",
        first.address()
    );
    assert!(
        !handshake[1..].contains(&node.address()),
        "the node lists itself as a connection: {handshake:?}"
    );
}
