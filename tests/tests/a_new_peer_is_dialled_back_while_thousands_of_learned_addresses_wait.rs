//! Fair dialling: the sender of a HANDSHAKE (its first address) is dialled back at once,
//! ahead of addresses it merely listed, which take only a share of the dial slots and of
//! the address book; retries of failing learned addresses never delay a new peer.
//!
//! One client names 5,400 addresses where nothing useful listens: 400 black holes first
//! (servers that accept the TCP connection and never answer the WebSocket upgrade, so each
//! dial hangs until the dial deadline), then 5,000 ports no one listens on (refused at
//! once); it names them again in HANDSHAKEs of a thousand, so that thousands of them wait
//! in the node's book however many it takes from one HANDSHAKE. Once black-hole dials hang,
//! a new peer (a real server) sends a HANDSHAKE with its own address first: the node must
//! dial it back while the black-hole dials are still pending, not after they have all run
//! out (with 32 dials in flight and a 10 s deadline each, 400 black holes take over two
//! minutes), and must never have more than 32 dials in flight meanwhile.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::{
    address, ports, raise_fd_limit, wait_until, BlackHole, Client, Node, NodeSpec, Scratch, Status,
    TestPeer, DEADLINE,
};

const NODE: u16 = ports::NEW_PEER_DIALLED_BACK;
const NEW_PEER: u16 = ports::NEW_PEER_DIALLED_BACK + 1;
const BLACK_HOLES: u16 = 400;
const REFUSED: u16 = 5000;
/// Addresses named in each of the HANDSHAKEs that follow the first.
const PER_HANDSHAKE: usize = 1000;

/// The core's default `Limits::max_concurrent_dials` (p2p-core/src/config.rs).
const MAX_CONCURRENT_DIALS: usize = 32;

fn handshake(addresses: &[String]) -> serde_json::Value {
    json!({"type": "HANDSHAKE", "data": addresses})
}

#[test]
fn a_new_peer_is_dialled_back_while_thousands_of_learned_addresses_wait() {
    raise_fd_limit();
    let scratch = Scratch::new();
    let holes =
        BlackHole::bind((0..BLACK_HOLES).map(|i| ports::NEW_PEER_DIALLED_BACK_BLACK_HOLES + i));
    let peer = TestPeer::bind(NEW_PEER);
    let node = Node::start_ready(&scratch.node_folder("node-1", &NodeSpec::new(NODE)));

    let hole_addresses: BTreeSet<String> = holes.addresses().into_iter().collect();
    let mut learned = holes.addresses();
    learned.extend((0..REFUSED).map(|i| address(ports::NEW_PEER_DIALLED_BACK_REFUSED + i)));
    let mut attacker = Client::connect(NODE).unwrap_or_else(|e| panic!("{e}"));
    attacker
        .send_json(&handshake(&learned))
        .unwrap_or_else(|e| panic!("{e}"));
    for chunk in learned[1..].chunks(PER_HANDSHAKE) {
        let mut list = vec![learned[0].clone()];
        list.extend_from_slice(chunk);
        attacker
            .send_json(&handshake(&list))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    let mut most_dialling = 0;
    let mut check_dials = |status: &Status| {
        most_dialling = most_dialling.max(status.dialling.len());
        assert!(
            status.dialling.len() <= MAX_CONCURRENT_DIALS,
            "{} has {} dials in flight (its limit is {MAX_CONCURRENT_DIALS}): {}",
            node.name(),
            status.dialling.len(),
            status.raw
        );
    };

    // Black-hole dials hang...
    assert!(
        wait_until(DEADLINE, || holes.accepted() >= 1),
        "{} did not dial any of the black holes it was handed",
        node.name()
    );
    std::thread::sleep(Duration::from_secs(2));
    check_dials(&node.status().unwrap_or_else(|e| panic!("{e}")));

    // ... when a new peer says hello.
    let mut newcomer = Client::connect(NODE).unwrap_or_else(|e| panic!("{e}"));
    newcomer
        .send_json(&handshake(&[peer.address()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let asked = Instant::now();
    let mut last: Option<Status> = None;
    let mut dialled_back = None;
    while asked.elapsed() < DEADLINE {
        if !peer.handshakes().is_empty() {
            dialled_back = Some(asked.elapsed());
            break;
        }
        let status = node
            .status()
            .unwrap_or_else(|e| panic!("{} stopped answering STATUS: {e}", node.name()));
        check_dials(&status);
        last = Some(status);
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(latency) = dialled_back else {
        panic!(
            "{} did not dial back the new peer {} within {DEADLINE:?} of its HANDSHAKE; \
             {} dials reached the {BLACK_HOLES} black holes meanwhile; its last status: {}",
            node.name(),
            peer.address(),
            holes.accepted(),
            last.map_or_else(|| "none".to_owned(), |status| status.raw.to_string())
        )
    };
    let status = node.status().unwrap_or_else(|e| panic!("{e}"));
    check_dials(&status);
    let pending: Vec<&String> = status.dialling.intersection(&hole_addresses).collect();
    println!(
        "dialled back the new peer {} ms after its HANDSHAKE, with {} black-hole dials \
         pending and {} of {BLACK_HOLES} black holes dialled so far; at most {most_dialling} \
         dials in flight",
        latency.as_millis(),
        pending.len(),
        holes.accepted()
    );
    assert!(
        !pending.is_empty(),
        "{} dialled the new peer back only once no black-hole dial was pending any more \
         (after {} ms): the learned addresses were not waiting behind it. Status: {}",
        node.name(),
        latency.as_millis(),
        status.raw
    );
    drop(newcomer);
    drop(attacker);
}
