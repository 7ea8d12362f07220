//! Fuzzing of everything a peer (or a confused host) can hand the core: arbitrary bytes,
//! arbitrary JSON, and well-typed frames with arbitrary data, fed to the frame decoder
//! and to a node on accepted and dialled connections, in any order with any ids. The
//! property: no panic, ever, and the node keeps its books straight (it never lists
//! itself, and its STATUS still serialises).
//!
//! `FUZZ_CASES` sets the number of cases per property (default 256, what CI runs).

mod common;

use common::cases_from;
use p2p_core::{frame, Action, Address, Config, ConnId, DialId, Node, Time};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop_oneof![
            Just("ws://localhost:4001"),
            Just("ws://localhost:4002"),
            Just("ws://127.0.0.1:4001/"),
            Just("ws://[::1]:4003"),
            Just("wss://x:1"),
            Just("ws://example.org:99999"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A frame of a known or unknown type whose data (and extra keys) are arbitrary.
fn typed_frame() -> impl Strategy<Value = String> {
    let kinds = prop_oneof![
        Just("HANDSHAKE"),
        Just("TRANSACTION"),
        Just("STATUS_REQUEST"),
        Just("HELLO"),
        Just("SYNC"),
        Just("TXS"),
        Just("PING"),
    ];
    (kinds, any_json(), any_json()).prop_map(|(kind, data, extra)| {
        json!({"type": kind, "data": data, "ext": extra}).to_string()
    })
}

/// A SYNC frame with ranges of arbitrary bounds and modes.
fn sync_frame() -> impl Strategy<Value = String> {
    let hash = "[0-9a-f]{0,6}";
    let range = (
        hash,
        prop::option::of(hash),
        0u8..4,
        prop::collection::vec(hash, 0..5),
        any::<u64>(),
    )
        .prop_map(|(lo, ub, mode, ids, n)| match mode {
            0 => json!({"lo": lo, "ub": ub, "n": n % 10, "fp": format!("{n:016x}")}),
            1 => json!({"lo": lo, "ub": ub, "ids": ids}),
            2 => json!({"lo": lo, "ub": ub, "need": ids}),
            _ => json!({"lo": lo, "ub": ub, "ids": ids, "need": ids}),
        });
    prop::collection::vec(range, 0..6)
        .prop_map(|ranges| json!({"type": "SYNC", "data": ranges}).to_string())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        any_json().prop_map(|v| v.to_string()),
        typed_frame(),
        sync_frame(),
    ]
}

/// What a host (or a peer through it) can do to a node.
#[derive(Debug, Clone)]
enum Input {
    Text(u8, String),
    Binary(u8, usize),
    Accepted(u8),
    Closed(u8),
    DialOpened(u8, u8),
    DialFailed(u8),
    Timeout(u16),
    Transaction(u8),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (any::<u8>(), any_text()).prop_map(|(c, t)| Input::Text(c % 8, t)),
        1 => (any::<u8>(), 0usize..100).prop_map(|(c, n)| Input::Binary(c % 8, n)),
        2 => any::<u8>().prop_map(|c| Input::Accepted(c % 8)),
        1 => any::<u8>().prop_map(|c| Input::Closed(c % 8)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(d, c)| Input::DialOpened(d % 8, c % 8)),
        1 => any::<u8>().prop_map(|d| Input::DialFailed(d % 8)),
        1 => any::<u16>().prop_map(Input::Timeout),
        1 => any::<u8>().prop_map(Input::Transaction),
    ]
}

fn drain(node: &mut Node) -> Vec<Action> {
    std::iter::from_fn(|| node.poll_action()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases_from("FUZZ_CASES", 256)))]

    #[test]
    fn the_frame_decoder_never_panics_on_any_text(text in any_text()) {
        let _ = frame::decode(&text, 1 << 20);
    }

    #[test]
    fn the_frame_decoder_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = frame::decode(&text, 1 << 20);
    }

    #[test]
    fn any_sequence_of_inputs_leaves_the_node_standing(inputs in prop::collection::vec(input(), 1..60)) {
        let mut config = Config::new(Address::localhost(4001));
        config.known_peers = vec![Address::localhost(4002), Address::localhost(4003)];
        let mut node = Node::new(config, Vec::new());
        let mut now = Time::ZERO;
        node.start(now);
        drain(&mut node);
        for input in inputs {
            now = now + std::time::Duration::from_millis(3);
            match input {
                Input::Text(c, text) => node.handle_text(ConnId(c.into()), &text, now),
                Input::Binary(c, n) => node.handle_binary(ConnId(c.into()), n, now),
                Input::Accepted(c) => node.handle_accepted(ConnId(c.into()), now),
                Input::Closed(c) => node.handle_closed(ConnId(c.into()), now),
                Input::DialOpened(d, c) => {
                    node.handle_dial_opened(DialId(d.into()), ConnId(c.into()), now)
                }
                Input::DialFailed(d) => node.handle_dial_failed(DialId(d.into()), now),
                Input::Timeout(ms) => {
                    now = now + std::time::Duration::from_millis(ms.into());
                    node.handle_timeout(now);
                }
                Input::Transaction(n) => {
                    let tx = p2p_core::Transaction::create(None, u64::from(n), 1);
                    node.add_transaction(tx, now);
                }
            }
            drain(&mut node);
            let own = node.address().clone();
            prop_assert!(!node.connected_addresses().contains(&own));
            prop_assert!(!node.dialling().any(|a| *a == own));
            prop_assert!(serde_json::to_string(&node.status()).is_ok());
        }
    }
}
