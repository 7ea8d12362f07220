//! A WebSocket handshake that never finishes costs a node nothing that lasts, whichever side
//! leaves it unfinished.
//!
//! - Inbound: 1,000 TCP connections that send nothing, or half an HTTP upgrade request, and
//!   are held open. The node keeps serving meanwhile (it answers STATUS, a new node meshes
//!   with it and a transaction crosses) and stays within 32 MiB of its size before.
//! - Outbound: a known peer that is a black hole (it accepts the TCP connection and never
//!   answers the upgrade). Outbound dials have a deadline (10 s by default): each dial to it
//!   is abandoned at the deadline, its socket closed, and retried with backoff; over four
//!   dials (some 30 s) the node's open file descriptors do not grow with each retry.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tests::{
    open_fds, pid_of, pool_file_mentions, ports, raise_fd_limit, wait_for_full_mesh, wait_until,
    BlackHole, Client, MemoryWatch, Node, NodeSpec, Scratch, TestTransaction,
    CURRICULUM_PUBLIC_KEY, DEADLINE,
};

const ATTACKED: u16 = ports::UNFINISHED_WEBSOCKET_HANDSHAKE;
const NEWCOMER: u16 = ports::UNFINISHED_WEBSOCKET_HANDSHAKE + 1;
const DIALLING: u16 = ports::UNFINISHED_WEBSOCKET_HANDSHAKE + 2;
const BLACK_HOLE: u16 = ports::UNFINISHED_WEBSOCKET_HANDSHAKE + 3;

/// Unfinished connections held open against the node.
const UNFINISHED: usize = 1000;
/// What they may cost the node, over its resident size before them.
const ALLOWANCE_MIB: u64 = 32;
/// Dials to the black hole watched: the first, and three retries after abandoned ones.
const DIALS: usize = 4;
/// The default deadline of an outbound dial.
const DIAL_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn a_thousand_unfinished_inbound_handshakes_do_not_stop_the_node_serving() {
    raise_fd_limit();
    let scratch = Scratch::new();
    let mut node = Node::start_ready(&scratch.node_folder("node-1", &NodeSpec::new(ATTACKED)));
    let watch = MemoryWatch::start(&node, ALLOWANCE_MIB);

    // Half send nothing at all; half stop in the middle of the upgrade request.
    let half_request =
        format!("GET / HTTP/1.1\r\nHost: localhost:{ATTACKED}\r\nUpgrade: websocket\r\nConn");
    let started = Instant::now();
    let held: Vec<TcpStream> = (0..UNFINISHED)
        .map(|index| {
            let mut stream = TcpStream::connect(("127.0.0.1", ATTACKED))
                .unwrap_or_else(|e| panic!("unfinished connection {index}: {e}"));
            if index % 2 == 1 {
                stream
                    .write_all(half_request.as_bytes())
                    .unwrap_or_else(|e| panic!("unfinished connection {index}: {e}"));
            }
            stream
        })
        .collect();
    eprintln!(
        "opened {} unfinished connections in {:?}",
        held.len(),
        started.elapsed()
    );

    // With all of them held open, the node still answers...
    let mut last = Err(String::new());
    assert!(
        wait_until(DEADLINE, || {
            last = node.status();
            last.is_ok()
        }),
        "{} stopped answering STATUS under {UNFINISHED} unfinished handshakes: {last:?}",
        node.name()
    );
    // ... a new node meshes with it ...
    let newcomer = Node::start_ready(
        &scratch.node_folder("node-2", &NodeSpec::new(NEWCOMER).knowing(&[ATTACKED])),
    );
    wait_for_full_mesh([&node, &newcomer], DEADLINE);
    // ... and a transaction crosses.
    let tx = TestTransaction::new(CURRICULUM_PUBLIC_KEY, 4, 1_700_000_000_000);
    let mut client = Client::connect(NEWCOMER).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_text(tx.frame())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_until(DEADLINE, || pool_file_mentions(node.dir(), &tx.hash)),
        "a transaction sent to the new node did not reach {}'s pool file",
        node.name()
    );
    eprintln!("{}", watch.summary());
    watch.assert_within_budget(&format!(
        "{UNFINISHED} unfinished WebSocket handshakes were held open against it"
    ));
    node.assert_running();
    drop(held);
}

#[test]
fn an_abandoned_dial_to_a_black_hole_leaves_no_socket_behind() {
    let scratch = Scratch::new();
    let hole = BlackHole::bind([BLACK_HOLE]);
    let mut node = Node::start_ready(
        &scratch.node_folder("node-3", &NodeSpec::new(DIALLING).knowing(&[BLACK_HOLE])),
    );
    let pid = pid_of(&node);

    assert!(
        wait_until(DEADLINE, || hole.accepted() >= 1),
        "{} never dialled its known peer",
        node.name()
    );
    // With the first dial hanging, what the node holds open is its baseline.
    let baseline = open_fds(pid).unwrap_or_else(|| panic!("cannot count {}'s fds", node.name()));
    let mut most = baseline;
    let started = Instant::now();
    let limit = DIAL_DEADLINE * DIALS as u32 + DEADLINE;
    let mut retried = false;
    while started.elapsed() < limit {
        node.assert_running();
        most = most.max(open_fds(pid).unwrap_or(0));
        if hole.accepted() >= DIALS {
            retried = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let fds = open_fds(pid).unwrap_or(0);
    most = most.max(fds);
    eprintln!(
        "{} dials reached the black hole in {:?}; the node held {baseline} fds with the first \
         pending, {fds} now, at most {most}; closed by the node: {:?}",
        hole.accepted(),
        started.elapsed(),
        hole.closed_by_dialler()
    );
    assert!(
        retried,
        "{} did not dial its black-hole known peer {DIALS} times within {limit:?} (the dial \
         deadline is {DIAL_DEADLINE:?}): {} dials reached it",
        node.name(),
        hole.accepted()
    );
    // Every dial before the last was abandoned: its socket must be closed.
    let mut closed = Vec::new();
    let all_closed = wait_until(Duration::from_secs(5), || {
        closed = hole.closed_by_dialler();
        closed[..DIALS - 1].iter().all(|&closed| closed)
    });
    assert!(
        all_closed,
        "{} left its abandoned dials to the black hole open (closed by the node, dial by \
         dial: {closed:?})",
        node.name()
    );
    assert!(
        most <= baseline + 1,
        "{}'s open file descriptors grew from {baseline} to {most} over {DIALS} dials to a \
         black hole: abandoned dials leak their sockets",
        node.name()
    );
    node.answering_status();
}
