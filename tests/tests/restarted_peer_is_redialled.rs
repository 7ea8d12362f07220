//! A node whose known peer stops and starts again redials it by itself: the restarted peer
//! knows no one and dials no one, so only the first node's own retries (with backoff) can
//! bring the two back together; no one's HANDSHAKE names the restarted peer to it.

use tests::{ports, wait_for_full_mesh, wait_until, Node, NodeSpec, Scratch, DEADLINE};

const A: u16 = ports::RESTARTED_PEER_IS_REDIALLED;
const B: u16 = ports::RESTARTED_PEER_IS_REDIALLED + 1;

#[test]
fn a_restarted_peer_is_redialled_without_anyones_handshake() {
    let scratch = Scratch::new();
    let mut b = Node::start_ready(&scratch.node_folder("node-b", &NodeSpec::new(B)));
    let a = Node::start_ready(&scratch.node_folder("node-a", &NodeSpec::new(A).knowing(&[B])));
    // A dials B; B dials A back once A's HANDSHAKE arrives.
    wait_for_full_mesh([&a, &b], DEADLINE);

    let exit = b.stop(DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.success(), "{} exited with {exit} on SIGTERM", b.name());
    let mut last = None;
    let noticed = wait_until(DEADLINE, || {
        last = Some(a.status());
        matches!(&last, Some(Ok(status)) if !status.connected.contains(&b.address()))
    });
    assert!(
        noticed,
        "{} still lists the stopped {} as connected: {last:?}",
        a.name(),
        b.name()
    );

    // B knows no one: only A's redial can reconnect them; B dials back on A's HANDSHAKE.
    b.restart();
    b.wait_ready(DEADLINE);
    wait_for_full_mesh([&a, &b], DEADLINE);
}
