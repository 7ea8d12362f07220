//! A peer that said it is one of ours (a HANDSHAKE with an `ext` key; the node answers
//! HELLO) is answered in catch-up, but its requests are de-duplicated and the replies are
//! made as its connection drains. It sends SYNC frames whose `need` lists repeat one hash
//! thousands of times, and frames asking for the whole pool of 50,000 again and again:
//!
//! - a peer that never reads (45 frames: one hash 2,000 times, the whole pool, 2,000
//!   hashes by name, in turn) costs the node at most 32 MiB more than before, and the node
//!   keeps serving: it answers STATUS and relays a new transaction to the peer it dialled;
//! - a peer that reads everything gets the repeated hash's body at most once per frame that
//!   asked for it (and at least once), not ten thousand times per frame, and no body more
//!   often than the frames that asked for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use async_std::future::timeout;
use async_std::task;
use async_tungstenite::tungstenite::Message;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use tests::{
    everything_range, handshake_marked_ours, need_range, ports, sync_frame, transactions,
    wait_until, write_pool, Client, MemoryWatch, Node, NodeSpec, Scratch, TestPeer,
    TestTransaction, CURRICULUM_PUBLIC_KEY, DEADLINE,
};

const NOT_READING: u16 = ports::DUPLICATE_NEED_LISTS;
const NOT_READING_SELF: u16 = ports::DUPLICATE_NEED_LISTS + 1;
const READING: u16 = ports::DUPLICATE_NEED_LISTS + 2;
const READING_SELF: u16 = ports::DUPLICATE_NEED_LISTS + 3;

/// Transactions in the node's pool.
const POOL: usize = 50_000;
/// How many times one `need` list of the reading peer names the same hash (about 670 KB of
/// frame, under the 1 MiB frame limit).
const REPEATS: usize = 10_000;
/// How many hashes one `need` list of the peer that does not read names (about 134 KB):
/// small frames, so that what the node holds is its answers, not requests it has yet to
/// read (those are another budget).
const LIST: usize = 2_000;
/// What the requests may cost the node, over its resident size before them.
const ALLOWANCE_MIB: u64 = 32;
/// How long the node is watched after the last request of the peer that does not read.
const WATCH_AFTER: Duration = Duration::from_secs(10);
/// The reading peer is done once nothing has come for this long after its last request.
const QUIET: Duration = Duration::from_secs(5);

/// A node holding `pool`, and a test peer for the address the requester gives as its own
/// (the node dials it back, as it does any peer's first address).
fn start(scratch: &Scratch, port: u16, own: u16, pool: &[TestTransaction]) -> (Node, TestPeer) {
    let dir = scratch.node_folder(&format!("node-{port}"), &NodeSpec::new(port));
    write_pool(&dir, pool);
    let node = Node::start_ready(&dir);
    (node, TestPeer::bind(own))
}

/// Names `hash` `times` times in one `need` list.
fn repeated_need(hash: &str, times: usize) -> String {
    sync_frame(&[need_range(&vec![hash; times])])
}

/// Asks for the whole pool: "I hold nothing".
fn everything() -> String {
    sync_frame(&[everything_range()])
}

#[test]
fn a_peer_of_ours_that_does_not_read_costs_a_bounded_budget_however_often_it_asks() {
    let scratch = Scratch::new();
    let pool = transactions(POOL, 2);
    let (mut node, peer) = start(&scratch, NOT_READING, NOT_READING_SELF, &pool);
    let watch = MemoryWatch::start(&node, ALLOWANCE_MIB);

    let mut requester = Client::connect(NOT_READING).unwrap_or_else(|e| panic!("{e}"));
    requester
        .send_text(handshake_marked_ours(&[peer.address()]))
        .unwrap_or_else(|e| panic!("{e}"));
    // The same hash two thousand times; the whole pool; two thousand hashes by name: again
    // and again, 45 frames, about 4 MB of requests and hundreds of MB of answers.
    let frames: Vec<String> = (0..45)
        .map(|i| match i % 3 {
            0 => repeated_need(&pool[i].hash, LIST),
            1 => everything(),
            _ => {
                let named: Vec<&str> = pool
                    .iter()
                    .cycle()
                    .skip(i * LIST % POOL)
                    .take(LIST)
                    .map(|tx| tx.hash.as_str())
                    .collect();
                sync_frame(&[need_range(&named)])
            }
        })
        .collect();
    let started = Instant::now();
    let attack = thread::spawn(move || {
        let mut sent = 0;
        for frame in frames {
            if requester.send_text(frame).is_err() {
                break;
            }
            sent += 1;
        }
        // Never read, never closed: held until the test ends.
        (requester, sent)
    });
    let (_requester, sent) = attack.join().expect("the requesting thread panicked");
    eprintln!("sent {sent} of 45 SYNC frames in {:?}", started.elapsed());
    watch.watch_for(&mut node, WATCH_AFTER);

    watch.assert_within_budget("a peer of ours asked for everything again and again");
    node.assert_running();
    node.assert_answers_with_pool(POOL);

    // It still relays a new transaction to the peer it dialled back.
    let new = TestTransaction::new(CURRICULUM_PUBLIC_KEY, 9, 1_700_000_000_000);
    let mut client = Client::connect(NOT_READING).unwrap_or_else(|e| panic!("{e}"));
    client
        .send_text(new.frame())
        .unwrap_or_else(|e| panic!("{e}"));
    let relayed = wait_until(DEADLINE, || {
        peer.connections().iter().flatten().any(|frame| {
            frame.json().is_some_and(|frame| {
                frame["type"] == "TRANSACTION" && frame["data"]["hash"] == new.hash
            })
        })
    });
    assert!(
        relayed,
        "{} did not relay a new transaction to the peer it dialled",
        node.name()
    );
    watch.assert_within_budget("a peer of ours asked for everything again and again");
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct HashOnly {
    hash: String,
}

/// What the reading peer received.
#[derive(Debug, Default)]
struct Received {
    hello: bool,
    /// How many times each transaction's body came in TXS frames.
    bodies: HashMap<String, u32>,
    txs_frames: usize,
    /// The connection ended.
    closed: bool,
}

impl Received {
    fn take(&mut self, text: &str) {
        let Ok(frame) = serde_json::from_str::<Envelope<'_>>(text) else {
            return;
        };
        match frame.kind.as_str() {
            "HELLO" => self.hello = true,
            "TXS" => {
                self.txs_frames += 1;
                let list: Vec<HashOnly> = frame
                    .data
                    .and_then(|data| serde_json::from_str(data.get()).ok())
                    .unwrap_or_default();
                for tx in list {
                    *self.bodies.entry(tx.hash).or_default() += 1;
                }
            }
            _ => {}
        }
    }

    fn count(&self, hash: &str) -> u32 {
        self.bodies.get(hash).copied().unwrap_or(0)
    }
}

/// Sends `frames` on `client` while reading everything the node sends, until `QUIET` passes
/// without a frame after the last one was sent (or the connection ends, or `limit` passes).
fn exchange(client: Client, frames: Vec<String>, limit: Duration) -> Received {
    let (mut sink, mut stream) = client.into_inner().split();
    let sent_all = AtomicBool::new(false);
    let mut received = Received::default();
    task::block_on(async {
        let writer = async {
            for frame in frames {
                if sink.send(Message::text(frame)).await.is_err() {
                    break;
                }
            }
            sent_all.store(true, Ordering::SeqCst);
        };
        let reader = async {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                match timeout(QUIET, stream.next()).await {
                    Err(_) if sent_all.load(Ordering::SeqCst) => break,
                    Err(_) => {}
                    Ok(Some(Ok(Message::Text(text)))) => received.take(text.as_str()),
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(_)) | None) => {
                        received.closed = true;
                        break;
                    }
                }
            }
        };
        futures::join!(writer, reader);
    });
    received
}

#[test]
fn a_hash_repeated_in_need_lists_is_sent_at_most_once_per_request() {
    let scratch = Scratch::new();
    let pool = transactions(POOL, 2);
    let (node, peer) = start(&scratch, READING, READING_SELF, &pool);
    let repeated = &pool[123].hash;
    let control = &pool[456].hash;

    let mut requester = Client::connect(READING).unwrap_or_else(|e| panic!("{e}"));
    requester
        .send_text(handshake_marked_ours(&[peer.address()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let hello = wait_until(DEADLINE, || {
        matches!(requester.receive(Duration::from_millis(500)), Some(frame)
            if frame.json().is_some_and(|frame| frame["type"] == "HELLO"))
    });
    assert!(
        hello,
        "{} did not answer a HANDSHAKE marked as ours with HELLO",
        node.name()
    );

    // One plain request first (it must be answered), then ten frames naming one hash ten
    // thousand times each and five asking for the whole pool, interleaved.
    let mut frames = vec![sync_frame(&[need_range(&[control.as_str()])])];
    let mut asking_for_repeated = 0;
    let mut asking_for_everything = 0;
    for i in 0..15 {
        if i % 3 == 2 {
            frames.push(everything());
            asking_for_everything += 1;
        } else {
            frames.push(repeated_need(repeated, REPEATS));
        }
        asking_for_repeated += 1;
    }
    let received = exchange(requester, frames, Duration::from_secs(120));
    let most = received
        .bodies
        .iter()
        .filter(|(hash, _)| *hash != repeated && *hash != control)
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0);
    eprintln!(
        "received {} TXS frames; the repeated hash's body {} times, the control's {} times; \
         any other body at most {most} times; {} distinct bodies{}",
        received.txs_frames,
        received.count(repeated),
        received.count(control),
        received.bodies.len(),
        if received.closed {
            "; the node closed the connection"
        } else {
            ""
        }
    );

    assert!(
        received.count(control) >= 1,
        "{} never sent the body of the one hash a peer of ours asked for plainly",
        node.name()
    );
    assert!(
        received.count(repeated) >= 1,
        "{} never sent the body of the hash asked for in {asking_for_repeated} frames",
        node.name()
    );
    assert!(
        received.count(repeated) <= asking_for_repeated,
        "{} sent the body of one hash {} times for {asking_for_repeated} frames asking for \
         it (each naming it {REPEATS} times): a repeated hash must be answered at most once \
         per request",
        node.name(),
        received.count(repeated)
    );
    assert!(
        most <= asking_for_everything,
        "{} sent a body {most} times for {asking_for_everything} frames asking for the whole \
         pool",
        node.name()
    );
    node.assert_answers_with_pool(POOL);
}
