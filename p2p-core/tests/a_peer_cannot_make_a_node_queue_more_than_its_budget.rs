//! The budget of one connection holds whatever its peer sends: a node fed any sequence of
//! frames on connections that read slowly or not at all never hands its host a frame for
//! a connection whose queued bytes (handed, not yet reported written) have reached
//! `Limits::max_send_buffer`. So the bytes queued for one connection stay within the
//! budget plus one frame, however the peers behave.
//!
//! `FUZZ_CASES` sets the number of cases (default 256, what CI runs).

mod common;

use common::cases_from;
use std::collections::HashMap;

use p2p_core::{Action, Address, Config, ConnId, Node, Time, Transaction};
use proptest::prelude::*;
use serde_json::json;

/// The budget under test: small, so that it bites within a few frames.
const BUDGET: usize = 16 << 10;
/// Transactions the node holds at start.
const POOL: u64 = 600;

fn pool() -> Vec<Transaction> {
    (0..POOL)
        .map(|i| Transaction::create(Some("04ab"), i % 100 + 1, 1_700_000_000_000 + i))
        .collect()
}

/// What a hostile or slow peer (or the host) can do next.
#[derive(Debug, Clone)]
enum Input {
    /// A frame on one of the connections.
    Frame { conn: u64, text: String },
    /// The host wrote this share (in 1/8) of what is queued for a connection.
    Written { conn: u64, eighths: u8 },
    /// Time passes.
    Tick { ms: u64 },
    /// A transaction made at the node (pushed to its peers).
    Add { n: u64 },
}

/// Requests shaped as an attacker would: the whole pool, one hash many times, ranges
/// over everything with wrong fingerprints, overlapping or not.
fn request(hashes: &[String]) -> impl Strategy<Value = String> {
    let hashes = hashes.to_vec();
    let whole = Just(json!({"type": "SYNC", "data": [{"lo": "", "ub": null, "ids": []}]}));
    let same = (0..hashes.len(), 1usize..2000).prop_map({
        let hashes = hashes.clone();
        move |(i, times)| {
            json!({"type": "SYNC", "data": [{"lo": "", "ub": null, "need": vec![hashes[i].clone(); times]}]})
        }
    });
    let wrong_fp = (1usize..40, any::<u64>()).prop_map(|(parts, fp)| {
        let ranges: Vec<_> = (0..parts)
            .map(|p| {
                let lo = format!("{:x}", p * 16 / parts);
                let ub = (p + 1 < parts).then(|| format!("{:x}", (p + 1) * 16 / parts));
                json!({"lo": lo, "ub": ub, "n": 1, "fp": format!("{fp:016x}")})
            })
            .collect();
        json!({"type": "SYNC", "data": ranges})
    });
    let overlapping = (1usize..50).prop_map(|times| {
        let range = json!({"lo": "", "ub": null, "n": 0, "fp": "0000000000000000"});
        json!({"type": "SYNC", "data": vec![range; times]})
    });
    let status = Just(json!({"type": "STATUS_REQUEST"}));
    let hello = Just(
        json!({"type": "HANDSHAKE", "data": ["ws://localhost:4999"], "ext": "00000000000000aa"}),
    );
    prop_oneof![whole, same, wrong_fp, overlapping, status, hello].prop_map(|v| v.to_string())
}

fn input(hashes: &[String]) -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (10u64..13, request(hashes)).prop_map(|(conn, text)| Input::Frame { conn, text }),
        2 => (prop_oneof![Just(1u64), Just(2), Just(10), Just(11), Just(12)], 0u8..=8)
            .prop_map(|(conn, eighths)| Input::Written { conn, eighths }),
        1 => (1u64..3_000).prop_map(|ms| Input::Tick { ms }),
        2 => (0u64..1_000_000).prop_map(|n| Input::Add { n }),
    ]
}

/// A node holding [`POOL`] transactions, dialled to 4002 (one of ours, conn 1) and 4003
/// (a JavaScript node, conn 2), with three accepted connections (10, 11, 12) whose peers
/// said they are ours.
fn node() -> Node {
    let mut config = Config::new(Address::localhost(4001));
    config.known_peers = vec![Address::localhost(4002), Address::localhost(4003)];
    config.limits.max_send_buffer = BUDGET;
    config.limits.max_backlog = 64;
    config.limits.catch_up_burst = 1_000;
    let mut node = Node::new(config, pool());
    node.start(Time::ZERO);
    let dials: Vec<_> = std::iter::from_fn(|| node.poll_action())
        .filter_map(|a| match a {
            Action::Dial { dial, .. } => Some(dial),
            _ => None,
        })
        .collect();
    for (i, dial) in dials.into_iter().enumerate() {
        node.handle_dial_opened(dial, ConnId(i as u64 + 1), Time::ZERO);
    }
    node.handle_text(ConnId(1), r#"{"type":"HELLO","data":1}"#, Time::ZERO);
    for conn in 10..13 {
        node.handle_accepted(ConnId(conn), Time::ZERO);
        let from = format!("ws://localhost:{}", 5000 + conn);
        let handshake = json!({"type": "HANDSHAKE", "data": [from], "ext": "00000000000000ab"});
        node.handle_text(ConnId(conn), &handshake.to_string(), Time::ZERO);
    }
    node
}

/// Carries out the node's actions, checking each frame against the budget; `queued`
/// is what the host holds for each connection.
fn drain(
    node: &mut Node,
    queued: &mut HashMap<ConnId, usize>,
    now: Time,
) -> Result<(), TestCaseError> {
    while let Some(action) = node.poll_action() {
        match action {
            Action::Send { conn, frame } => {
                let before = queued.entry(conn).or_insert(0);
                prop_assert!(
                    *before < BUDGET,
                    "a frame for {conn} with {before} bytes already queued (budget {BUDGET})"
                );
                *before += frame.len();
            }
            Action::Close { conn } => {
                queued.remove(&conn);
                node.handle_closed(conn, now);
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases_from("FUZZ_CASES", 256)))]

    #[test]
    fn the_bytes_queued_for_a_connection_stay_within_its_budget(
        inputs in prop::collection::vec(input(&pool().iter().map(|t| t.hash().to_owned()).collect::<Vec<_>>()), 1..60)
    ) {
        let mut node = node();
        let mut queued = HashMap::new();
        // The start's HANDSHAKEs and HELLOs are written at once.
        while let Some(action) = node.poll_action() {
            if let Action::Send { conn, frame } = action {
                node.handle_written(conn, frame.len(), Time::ZERO);
            }
        }
        let mut now = Time::ZERO;
        for input in inputs {
            match input {
                Input::Frame { conn, text } => node.handle_text(ConnId(conn), &text, now),
                Input::Written { conn, eighths } => {
                    let conn = ConnId(conn);
                    let held = queued.get(&conn).copied().unwrap_or(0);
                    let bytes = held * usize::from(eighths) / 8;
                    queued.insert(conn, held - bytes);
                    node.handle_written(conn, bytes, now);
                }
                Input::Tick { ms } => {
                    now = now + std::time::Duration::from_millis(ms);
                    node.handle_timeout(now);
                }
                Input::Add { n } => {
                    node.add_transaction(Transaction::create(None, n % 100 + 1, n), now);
                }
            }
            drain(&mut node, &mut queued, now)?;
        }
    }
}
