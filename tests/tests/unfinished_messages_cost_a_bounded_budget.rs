//! Long messages from many connections cost a node a bounded budget, whether left
//! unfinished or sent whole.
//!
//! - **Unfinished**: 300 WebSocket connections each begin a frame of 1,000,000 bytes, send
//!   900,000 of it and stop (270 MB in all). The node reads at most
//!   `Limits::max_inbound_total` (32 MiB) of them at a time, fails each connection whose
//!   message is not finished within `stall_timeout` (here 3 s), and meanwhile still
//!   answers STATUS and relays a new transaction. Before that budget a node held every
//!   byte, for as long as the connections stayed open (943 MiB for a thousand of them).
//! - **Whole**: 300 connections each send one frame of 900,000 bytes (not JSON: refused).
//!   The WebSocket layer keeps a buffer of a connection's longest frame until it closes;
//!   the node keeps at most `Limits::max_frame_buffers` (32 MiB) of such buffers and
//!   closes the connections past it. Before, the same 885 MiB for a thousand.
//!
//! Either way the node stays within 96 MiB of its size before.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tests::{
    pool_file_mentions, ports, raise_fd_limit, wait_for_full_mesh, wait_until, Client, MemoryWatch,
    Node, NodeSpec, Scratch, TestTransaction, CURRICULUM_PUBLIC_KEY, DEADLINE,
};

/// Connections of each attack.
const CONNECTIONS: usize = 300;
/// Bytes of a long message each sends.
const SENT: usize = 900_000;
/// The length an unfinished frame announces.
const ANNOUNCED: usize = 1_000_000;
/// `Limits::max_frame_buffers`: what the node keeps of buffers for long frames.
const KEPT: usize = 32 << 20;
/// What an attack may cost the node, over its resident size before it.
const ALLOWANCE_MIB: u64 = 96;
/// `P2P_STALL_TIMEOUT` of the attacked node, in seconds: how long a message may take.
const STALL_SECONDS: u64 = 3;

/// One whole text frame from a client (masked with a zero mask: the payload is as is).
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 1 << 16 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(payload);
    frame
}

/// A raw WebSocket connection to `port` (the upgrade done by hand), or why not.
fn upgraded(port: u16) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(DEADLINE))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let mut byte = [0; 1];
    while !response.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => response.push(byte[0]),
            Ok(_) => return Err("closed during the upgrade".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(stream)
}

/// Writes as much of `bytes` as the socket takes without waiting (the node may not be
/// reading); the rest is dropped.
fn write_what_fits(stream: &mut TcpStream, bytes: &[u8]) {
    stream
        .set_nonblocking(true)
        .expect("a socket can be made non-blocking");
    let mut at = 0;
    while at < bytes.len() {
        match stream.write(&bytes[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => break,
        }
    }
}

/// Whether the node has closed `stream` (end of stream or reset), waiting up to `limit`.
fn closed_by_node(mut stream: &TcpStream, limit: Duration) -> bool {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(limit));
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A close frame: read on to the end.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Starts the attacked node (with its peer, to relay to) and watches its memory.
fn attacked(scratch: &Scratch, first_port: u16) -> (Node, Node, MemoryWatch) {
    let (a, b) = (first_port, first_port + 1);
    let spec_a = NodeSpec::new(a)
        .knowing(&[b])
        .env("P2P_STALL_TIMEOUT", STALL_SECONDS);
    let node = Node::start_ready(&scratch.node_folder("node-1", &spec_a));
    let peer = Node::start_ready(&scratch.node_folder("node-2", &NodeSpec::new(b).knowing(&[a])));
    wait_for_full_mesh([&node, &peer], DEADLINE);
    let watch = MemoryWatch::start(&node, ALLOWANCE_MIB);
    (node, peer, watch)
}

/// The node still serves: it answers STATUS and relays a new transaction to its peer.
fn still_serves(node: &mut Node, peer: &Node, amount: u64) {
    node.assert_running();
    node.answering_status();
    let new = TestTransaction::new(CURRICULUM_PUBLIC_KEY, amount, 1_700_000_000_000);
    let mut client = Client::connect(node.port()).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_text(new.frame())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_until(DEADLINE, || pool_file_mentions(peer.dir(), &new.hash)),
        "a new transaction did not reach {}",
        peer.name()
    );
}

#[test]
fn unfinished_long_messages_are_read_within_the_budget_and_failed_at_the_deadline() {
    raise_fd_limit();
    let scratch = Scratch::new();
    let (mut node, peer, watch) = attacked(&scratch, ports::UNFINISHED_MESSAGES);

    // A frame of `ANNOUNCED` bytes, never finished.
    let mut unfinished = client_frame(&vec![b'x'; ANNOUNCED]);
    unfinished.truncate(unfinished.len() - (ANNOUNCED - SENT));
    let started = Instant::now();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..CONNECTIONS {
        // An upgrade may wait for the budget (and fail at the node's handshake timeout):
        // the node reads nothing while it holds its whole budget.
        match upgraded(node.port()) {
            Ok(mut stream) => {
                write_what_fits(&mut stream, &unfinished);
                held.push(stream);
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!(
        "{} connections began a message of {SENT} bytes ({refused} upgrades not answered) in \
         {:?}; {}",
        held.len(),
        started.elapsed(),
        watch.summary()
    );
    watch.assert_within_budget("connections left long messages unfinished");

    // Every one of them is failed by the node once its message is overdue.
    let limit = Duration::from_secs(STALL_SECONDS) + DEADLINE;
    let open = held
        .iter()
        .filter(|stream| !closed_by_node(stream, limit))
        .count();
    assert_eq!(
        open, 0,
        "connections that left a message unfinished were not closed by the node"
    );
    still_serves(&mut node, &peer, 7);
    watch.assert_within_budget("connections left long messages unfinished");
}

#[test]
fn long_frames_sent_whole_keep_buffers_within_the_budget() {
    raise_fd_limit();
    let scratch = Scratch::new();
    let (mut node, peer, watch) = attacked(&scratch, ports::UNFINISHED_MESSAGES + 5);

    let frame = client_frame(&vec![b'x'; SENT]);
    let mut held = Vec::new();
    for index in 0..CONNECTIONS {
        let mut stream =
            upgraded(node.port()).unwrap_or_else(|e| panic!("connection {index}: {e}"));
        write_what_fits(&mut stream, &frame);
        held.push(stream);
    }
    eprintln!(
        "{CONNECTIONS} connections sent a frame of {SENT} bytes; {}",
        watch.summary()
    );
    // A few keep their buffer (and stay open); the node closes the rest.
    let room = KEPT / SENT;
    let mut open = held.len();
    let mut closed = vec![false; held.len()];
    wait_until(DEADLINE, || {
        for (stream, closed) in held.iter().zip(closed.iter_mut()) {
            *closed = *closed || closed_by_node(stream, Duration::from_millis(50));
        }
        open = closed.iter().filter(|closed| !**closed).count();
        open <= room
    });
    assert!(
        open <= room,
        "{open} connections that sent a frame of {SENT} bytes stay open: room for {room}"
    );
    still_serves(&mut node, &peer, 8);
    watch.assert_within_budget("connections sent frames of 900,000 bytes");
}
