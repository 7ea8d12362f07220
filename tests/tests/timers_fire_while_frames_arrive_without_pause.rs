//! Due timers fire even while frames arrive without pause: a node whose known peer is a
//! black hole (it accepts TCP and never answers the WebSocket upgrade) abandons that dial
//! at its deadline, and closes the socket, while clients keep it busy with frames as
//! fast as it takes them. A host that ran its timers only when no event waited would never
//! get to the deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tests::{
    ports, wait_until, BlackHole, Client, Node, NodeSpec, Scratch, TestTransaction,
    CURRICULUM_PUBLIC_KEY,
};

const NODE: u16 = ports::TIMERS_UNDER_LOAD;
const HOLE: u16 = ports::TIMERS_UNDER_LOAD + 1;
/// The node's dial deadline (`Backoff::dial_timeout`), and how long past it the flood
/// goes on at most.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
const FLOOD_FOR: Duration = Duration::from_secs(25);
/// Connections flooding at once, so that a frame always waits.
const FLOODERS: usize = 4;

#[test]
fn timers_fire_while_frames_arrive_without_pause() {
    let hole = BlackHole::bind([HOLE]);
    let scratch = Scratch::new();
    let dir = scratch.node_folder("node-1", &NodeSpec::new(NODE).knowing(&[HOLE]));
    let mut node = Node::start_ready(&dir);
    assert!(
        wait_until(Duration::from_secs(10), || hole.accepted() >= 1),
        "{} never dialled its known peer",
        node.name()
    );

    // The same transaction again and again: each frame is parsed and dropped as a
    // duplicate, cheap for the node, and never a pause in its input.
    let frame = TestTransaction::new(CURRICULUM_PUBLIC_KEY, 7, 1_700_000_000_000).frame();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let floods: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let mut client = Client::connect(NODE).unwrap_or_else(|e| panic!("{e}"));
            let (frame, flooding) = (frame.clone(), stop.clone());
            thread::spawn(move || {
                let mut sent = 0u64;
                while !flooding.load(Ordering::Relaxed) && started.elapsed() < FLOOD_FOR {
                    if client.send_text(frame.clone()).is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let abandoned = wait_until(FLOOD_FOR, || {
        hole.closed_by_dialler().first() == Some(&true)
    });
    let at = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = floods
        .into_iter()
        .map(|f| f.join().expect("a flooding thread panicked"))
        .sum();
    eprintln!(
        "{sent} frames in {at:?} of flood; the dial to the black hole was {} (its deadline: {DIAL_TIMEOUT:?})",
        if abandoned { "abandoned" } else { "never abandoned" }
    );
    assert!(
        sent > 1_000,
        "the flood did not keep the node busy ({sent} frames)"
    );
    assert!(
        abandoned,
        "{} never abandoned its dial to a black hole while frames kept arriving",
        node.name()
    );
    node.assert_running();
}
