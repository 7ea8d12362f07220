//! The JavaScript face of the demo, run as WebAssembly in Node by wasm-bindgen-test:
//! `cargo test -p wasm-demo --target wasm32-unknown-unknown`.
#![cfg(target_arch = "wasm32")]

mod common;

use common::message;
use serde_json::Value;
use wasm_bindgen_test::wasm_bindgen_test;
use wasm_demo::Demo;

fn demo() -> Demo {
    Demo::new(7.0, 20.0, 80.0).expect("a whole seed and a latency range are accepted")
}

fn snapshot(demo: &Demo) -> Value {
    serde_json::from_str(&demo.snapshot().expect("snapshot")).expect("snapshot is JSON")
}

fn node(demo: &Demo, node: u32) -> Value {
    serde_json::from_str(&demo.node(node).expect("node")).expect("node is JSON")
}

/// node-1, then node-2, then node-3, then a transaction at node-2.
fn curriculum(demo: &mut Demo) -> String {
    for _ in 0..3 {
        demo.add_node(None).expect("add");
    }
    for i in 0..3 {
        demo.start(i).expect("start");
        demo.advance(1000.0).expect("advance");
    }
    let hash = demo.add_transaction(1).expect("transaction");
    demo.advance(2000.0).expect("advance");
    hash
}

#[wasm_bindgen_test]
fn the_curriculum_forms_a_full_mesh_and_fills_every_pool() {
    let mut demo = demo();
    let hash = curriculum(&mut demo);
    let snap = snapshot(&demo);
    assert_eq!(snap["fullMesh"], true);
    assert_eq!(snap["transactions"], 1);
    assert_eq!(snap["delivered"], 1.0);
    assert_eq!(snap["violations"], 0);
    for i in 0..3 {
        let detail = node(&demo, i);
        assert_eq!(detail["state"], "up");
        assert_eq!(
            detail["connectedAddresses"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(detail["pool"][0]["hash"], hash.as_str());
        assert_eq!(
            snap["nodes"][i as usize]["connected"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }
    assert_eq!(node(&demo, 0)["address"], "ws://localhost:4001");
    assert!(demo.check().is_empty(), "{:?}", demo.check());
    // Each transaction crosses about one link per receiving node, not N(N-1).
    assert_eq!(snap["counters"]["sent"]["TRANSACTION"], 2);
}

#[wasm_bindgen_test]
fn frames_in_flight_carry_their_type_endpoints_and_progress() {
    let mut demo = demo();
    demo.add_node(None).expect("add");
    demo.add_node(Some(vec!["ws://localhost:4001".into()]))
        .expect("add with known peers");
    demo.start(0).expect("start");
    demo.start(1).expect("start");
    // Step until node 1's dial to node 0 opens and its HANDSHAKE is on the wire.
    let mut frames = Vec::new();
    for _ in 0..50 {
        if demo.step().expect("a step").is_none() {
            break;
        }
        frames = snapshot(&demo)["frames"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !frames.is_empty() {
            break;
        }
    }
    let frame = frames.first().expect("a frame in flight");
    assert_eq!(frame["type"], "HANDSHAKE");
    assert_eq!(frame["from"], 1);
    assert_eq!(frame["to"], 0);
    let progress = frame["progress"].as_f64().expect("progress");
    assert!((0.0..=1.0).contains(&progress), "{progress}");
    assert!(frame["arrivesMs"].as_f64() > frame["sentMs"].as_f64());
}

#[wasm_bindgen_test]
fn a_crash_closes_connections_and_a_restart_rejoins() {
    let mut demo = demo();
    curriculum(&mut demo);
    let before = snapshot(&demo)["counters"]["closes"].as_u64();
    demo.crash(2).expect("crash");
    demo.advance(1000.0).expect("advance");
    let snap = snapshot(&demo);
    assert_eq!(snap["nodes"][2]["state"], "down");
    assert!(snap["counters"]["closes"].as_u64() > before);
    assert_eq!(snap["nodes"][0]["connected"], serde_json::json!([1]));
    demo.restart(2).expect("restart");
    demo.advance(3000.0).expect("advance");
    let snap = snapshot(&demo);
    assert_eq!(snap["nodes"][2]["state"], "up");
    assert_eq!(snap["fullMesh"], true);
    assert_eq!(
        snap["nodes"][2]["pool"], 1,
        "the stored pool survives the crash"
    );
}

#[wasm_bindgen_test]
fn a_partition_splits_the_mesh_until_it_heals() {
    let mut demo = demo();
    curriculum(&mut demo);
    demo.partition(vec![0]).expect("partition");
    demo.advance(500.0).expect("advance");
    let snap = snapshot(&demo);
    assert_eq!(snap["nodes"][0]["group"], 1);
    assert_eq!(snap["nodes"][1]["group"], 0);
    assert_eq!(snap["fullMesh"], false);
    assert_eq!(snap["nodes"][0]["connected"], serde_json::json!([]));
    demo.heal();
    demo.advance(10_000.0).expect("advance");
    let snap = snapshot(&demo);
    assert_eq!(snap["nodes"][0]["group"], 0);
    assert_eq!(snap["fullMesh"], true);
}

#[wasm_bindgen_test]
fn scheduled_commands_run_at_their_time() {
    let mut demo = demo();
    demo.add_node(None).expect("add");
    demo.schedule(500.0, "start", Some(0)).expect("schedule");
    demo.schedule(600.0, "addTransaction", Some(0))
        .expect("schedule");
    demo.advance(499.0).expect("advance");
    assert_eq!(snapshot(&demo)["nodes"][0]["state"], "notStarted");
    demo.advance(200.0).expect("advance");
    let snap = snapshot(&demo);
    assert_eq!(snap["nodes"][0]["state"], "up");
    assert_eq!(snap["transactions"], 1);
    assert_eq!(demo.now_ms(), 699.0);
}

#[wasm_bindgen_test]
fn one_seed_is_one_run() {
    let (mut a, mut b) = (demo(), demo());
    curriculum(&mut a);
    curriculum(&mut b);
    assert_eq!(a.snapshot().ok(), b.snapshot().ok());
    assert_eq!(a.log(1000), b.log(1000));
}

#[wasm_bindgen_test]
fn the_random_scenario_converges() {
    let mut demo = Demo::scenario(3.0, 6, 4, 1, true, 5.0, 40.0).expect("scenario");
    assert_eq!(demo.node_count(), 6);
    demo.advance(30_000.0).expect("advance");
    let snap = snapshot(&demo);
    assert_eq!(snap["fullMesh"], true);
    assert_eq!(snap["delivered"], 1.0);
    assert_eq!(snap["violations"], 0);
}

#[wasm_bindgen_test]
fn refusals_are_thrown_as_errors_not_panics() {
    let mut demo = demo();
    assert!(message(demo.crash(3).unwrap_err()).contains("there is no node-4"));
    demo.add_node(None).expect("add");
    assert!(message(demo.crash(0).unwrap_err()).contains("has not started"));
    assert!(message(demo.add_transaction(0).unwrap_err()).contains("has not started"));
    demo.start(0).expect("start");
    assert!(message(demo.start(0).unwrap_err()).contains("has started before"));
    assert!(message(demo.restart(0).unwrap_err()).contains("is running"));
    assert!(demo.node(9).is_err());
    assert!(demo.partition(vec![0, 42]).is_err());
    assert!(demo.add_node(Some(vec!["not an address".into()])).is_err());
    assert!(demo.advance(-1.0).is_err());
    assert!(demo.advance(f64::NAN).is_err());
    assert!(demo.schedule(0.0, "explode", Some(0)).is_err());
    assert!(demo.schedule(0.0, "crash", None).is_err());
    assert!(Demo::new(-1.0, 1.0, 2.0).is_err());
    assert!(Demo::new(1.5, 1.0, 2.0).is_err());
    assert!(Demo::new(1.0, f64::INFINITY, 2.0).is_err());
    // Still usable after all that.
    demo.advance(100.0).expect("advance");
    assert_eq!(snapshot(&demo)["nodes"][0]["state"], "up");
}

#[wasm_bindgen_test]
fn the_log_tail_is_the_newest_lines() {
    let mut demo = demo();
    curriculum(&mut demo);
    let all = demo.log(u32::MAX);
    let tail = demo.log(3);
    assert_eq!(tail.len(), 3);
    assert_eq!(tail[..], all[all.len() - 3..]);
    assert!(demo.log(0).is_empty());
}

#[wasm_bindgen_test]
fn the_story_comes_as_json_entries_matching_the_log_lines() {
    let mut demo = demo();
    curriculum(&mut demo);
    let lines = demo.log(5);
    let story: Vec<Value> = serde_json::from_str(&demo.story(5).expect("story")).expect("JSON");
    assert_eq!(story.len(), 5);
    for (line, entry) in lines.iter().zip(&story) {
        let text = entry["text"].as_str().expect("text");
        assert!(line.ends_with(text), "{line:?} / {entry}");
        assert_eq!(entry["violation"], false);
        match entry["node"].as_u64() {
            // node i is node-(i+1) in the line's own words
            Some(i) => assert!(line.contains(&format!(" node-{}: ", i + 1)), "{line}"),
            None => assert!(line.contains(" sim: "), "{line}"),
        }
    }
    assert_eq!(demo.story(0).expect("story"), "[]");
}

#[wasm_bindgen_test]
fn a_step_says_what_happened_as_json_naming_nodes_by_port() {
    let mut demo = demo();
    demo.add_node(None).expect("add");
    demo.add_node(Some(vec!["ws://localhost:4001".into()]))
        .expect("add with known peers");
    demo.schedule(0.0, "start", Some(0)).expect("schedule");
    demo.schedule(1.0, "start", Some(1)).expect("schedule");
    let steps: Vec<Value> = std::iter::from_fn(|| demo.step().expect("a step"))
        .take(20)
        .map(|text| serde_json::from_str(&text).expect("a step is JSON"))
        .collect();
    assert_eq!(steps[0]["kind"], "command");
    assert_eq!(steps[0]["text"], "start :4001");
    let opened = steps
        .iter()
        .find(|s| s["kind"] == "dialOpened")
        .expect("node 1's dial opens");
    assert_eq!(
        (&opened["from"], &opened["to"]),
        (&Value::from(1), &Value::from(0))
    );
    assert_eq!(opened["text"], ":4002's dial to :4001 opened");
    let delivered = steps
        .iter()
        .find(|s| s["kind"] == "delivered")
        .expect("a frame arrives");
    assert_eq!(delivered["text"], "HANDSHAKE from :4002 reached :4001");
}
