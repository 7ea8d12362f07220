//! The browser host's glue, events in and actions out, as WebAssembly in Node by
//! wasm-bindgen-test: `cargo test -p wasm-demo --target wasm32-unknown-unknown`.
#![cfg(target_arch = "wasm32")]

mod common;

use common::message;
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;
use wasm_demo::LivePeer;

/// Every action waiting, as JSON values.
fn drain(peer: &mut LivePeer) -> Vec<Value> {
    std::iter::from_fn(|| peer.poll_action().expect("actions are JSON"))
        .map(|text| serde_json::from_str(&text).expect("an action is JSON"))
        .collect()
}

/// The actions that are not log lines.
fn effects(actions: &[Value]) -> Vec<Value> {
    actions
        .iter()
        .filter(|a| a["kind"] != "log")
        .cloned()
        .collect()
}

fn view(peer: &LivePeer) -> Value {
    serde_json::from_str(&peer.view().expect("view")).expect("view is JSON")
}

/// A peer that joined through ws://localhost:4001, whose dial opened as connection 1 at
/// 5 ms and was answered with HELLO (a node of ours) at 6 ms; the actions of that.
fn joined() -> (LivePeer, Vec<Value>) {
    let mut peer = LivePeer::new(42.0).expect("a whole seed");
    peer.join("ws://localhost:4001").expect("a node's address");
    peer.start(1.0).expect("start");
    let actions = drain(&mut peer);
    assert_eq!(
        effects(&actions),
        [json!({"kind": "dial", "dial": 0, "address": "ws://localhost:4001"})]
    );
    peer.dial_opened(0.0, 1.0, 5.0).expect("opened");
    let sent = effects(&drain(&mut peer));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let handshake: Value =
        serde_json::from_str(sent[0]["frame"].as_str().expect("a frame")).expect("JSON");
    assert_eq!(handshake["type"], "HANDSHAKE");
    assert_eq!(handshake["data"], json!([]), "a page lists no address");
    assert_eq!(handshake["dialOnly"], true);
    peer.text(1.0, r#"{"type":"HELLO","data":1}"#, 6.0)
        .expect("text");
    let actions = drain(&mut peer);
    (peer, actions)
}

#[wasm_bindgen_test]
fn an_address_that_is_not_a_nodes_is_refused_with_a_message_for_people() {
    let mut peer = LivePeer::new(1.0).expect("a whole seed");
    let error = message(peer.join("localhost:4001").expect_err("no ws://"));
    assert!(error.contains("is not a node's address"), "{error}");
    assert!(
        error.contains("ws://localhost:4001"),
        "says what one looks like: {error}"
    );
    let error = message(peer.start(0.0).expect_err("nothing joined"));
    assert_eq!(error, "join an address first");
    assert!(LivePeer::new(-1.0).is_err());
    assert!(LivePeer::new(0.5).is_err());
}

#[wasm_bindgen_test]
fn a_node_of_ours_is_asked_for_catch_up_and_to_be_watched() {
    let (_, actions) = joined();
    let frames: Vec<String> = effects(&actions)
        .iter()
        .map(|a| {
            assert_eq!(a["kind"], "send");
            assert_eq!(a["conn"], 1);
            let frame: Value = serde_json::from_str(a["frame"].as_str().unwrap()).unwrap();
            frame["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(frames, ["SYNC", "WATCH"]);
}

#[wasm_bindgen_test]
fn events_of_a_watched_node_are_handed_to_the_page_as_json() {
    let (mut peer, _) = joined();
    let event = r#"{"type":"EVENT","data":{"kind":"pooled","pool":1,"hashes":["ab"],"more":0}}"#;
    peer.text(1.0, event, 7.0).expect("text");
    assert_eq!(
        effects(&drain(&mut peer)),
        [json!({"kind": "watched", "from": "ws://localhost:4001",
            "event": {"kind": "pooled", "pool": 1, "hashes": ["ab"], "more": 0}})]
    );
}

#[wasm_bindgen_test]
fn a_transaction_made_in_the_page_is_sent_to_the_node_and_listed_in_the_view() {
    let (mut peer, actions) = joined();
    for action in &actions {
        if action["kind"] == "send" {
            let bytes = action["frame"].as_str().unwrap().len() as f64;
            peer.written(1.0, bytes, 6.0).expect("written");
        }
    }
    drain(&mut peer);
    let hash = peer
        .add_transaction(42.0, 1_700_000_000_000.0, 8.0)
        .expect("made");
    let actions = effects(&drain(&mut peer));
    assert_eq!(actions[0], json!({"kind": "persist", "hash": hash}));
    let frame: Value = serde_json::from_str(actions[1]["frame"].as_str().unwrap()).unwrap();
    assert_eq!(frame["type"], "TRANSACTION");
    assert_eq!(frame["data"]["amount"], 42);
    assert_eq!(frame["data"]["toAddress"], Value::Null);
    assert_eq!(frame["data"]["hash"], hash.as_str());
    let view = view(&peer);
    assert_eq!(view["connected"], json!(["ws://localhost:4001"]));
    assert_eq!(view["pool"], 1);
    assert_eq!(view["recent"], json!([hash]));
    assert!(peer.add_transaction(0.0, 1.0, 9.0).is_err());
}

#[wasm_bindgen_test]
fn a_node_that_goes_away_is_redialled_when_the_node_says() {
    let (mut peer, _) = joined();
    peer.closed(1.0, 10.0).expect("closed");
    drain(&mut peer);
    assert_eq!(view(&peer)["connected"], json!([]));
    let due = peer.poll_timeout_ms().expect("a redial is due");
    assert!(due > 10.0, "after a backoff: {due}");
    peer.timeout(due).expect("timeout");
    let dials: Vec<Value> = effects(&drain(&mut peer))
        .into_iter()
        .filter(|a| a["kind"] == "dial")
        .collect();
    assert_eq!(dials.len(), 1);
    assert_eq!(dials[0]["address"], "ws://localhost:4001");
    // It fails: the node backs off again, and says so for people only in a log line.
    peer.dial_failed(dials[0]["dial"].as_f64().unwrap(), due + 1.0)
        .expect("failed");
    let actions = drain(&mut peer);
    assert!(effects(&actions).is_empty(), "{actions:?}");
    assert!(actions.iter().any(|a| a["kind"] == "log"));
    assert!(peer.poll_timeout_ms().expect("tried again later") > due + 1.0);
}
