//! The overlay mode with real processes: eight nodes of ours started with `P2P_OVERLAY=on`,
//! each knowing one or two started before it, and one JavaScript node
//! (`tests/interop/node.js`) that knows one of ours.
//!
//! - Every node of ours reports (STATUS `overlay`) an active view that is not empty and
//!   holds at most 5 peers (`Overlay::default().active`), only nodes of ours, and the links
//!   together form one connected graph.
//! - The JavaScript node is served as in the mesh: the node it dialled dials it back.
//! - Transactions made at a node of ours and at the JavaScript node land in every
//!   `transactions.json`, the JavaScript node's included, each exactly once.
//! - No node of ours holds more than its links plus its JavaScript peers: STATUS lists no
//!   dialled peer but the JavaScript node, and the process holds at most 5 established
//!   TCP connections plus 2 per JavaScript peer (the one it accepted and the one it dialled
//!   back), counted from `/proc`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use tests::{
    add_transaction, address, established_tcp_connections, js_add_transaction, pid_of, ports,
    wait_for_pools_exactly, wait_until, JsNode, Node, NodeSpec, Scratch, Status, DEADLINE,
};

const BASE: u16 = ports::OVERLAY_WITH_JAVASCRIPT;
/// How many nodes of ours: ports `BASE` to `BASE + 7`.
const OURS: u16 = 8;
const PORT_JS: u16 = BASE + OURS;
/// `Overlay::default().active`: the most links a node of ours keeps.
const ACTIVE_MAX: usize = 5;
/// The node of ours the JavaScript node knows.
const JS_CONTACT: usize = 3;

/// A key shaped like the curriculum's (an uncompressed public key in hex), one per port, so
/// that every node's transactions get hashes of their own.
fn public_key(port: u16) -> String {
    format!("04{}", format!("{port:04x}").repeat(32))
}

/// The addresses of a node's active view, from its STATUS (`None` outside the overlay mode).
fn active_view(status: &Status) -> Option<BTreeSet<String>> {
    let active = status.raw["data"]["overlay"]["active"].as_array()?;
    Some(
        active
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// Whether the links named in `views` (each node's active view, by its address) join all
/// of `nodes` into one graph, links taken both ways.
fn connected_graph(nodes: &[String], views: &BTreeMap<String, BTreeSet<String>>) -> bool {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (node, view) in views {
        for peer in view {
            edges.entry(node).or_default().insert(peer);
            edges.entry(peer).or_default().insert(node);
        }
    }
    let Some(first) = nodes.first() else {
        return true;
    };
    let mut seen = BTreeSet::from([first.as_str()]);
    let mut stack = vec![first.as_str()];
    while let Some(node) = stack.pop() {
        for &next in edges.get(node).into_iter().flatten() {
            if seen.insert(next) {
                stack.push(next);
            }
        }
    }
    nodes.iter().all(|node| seen.contains(node.as_str()))
}

/// Every node's STATUS, or why it could not be had.
fn statuses(nodes: &[Node]) -> Vec<Result<Status, String>> {
    nodes.iter().map(Node::status).collect()
}

fn describe(nodes: &[Node], statuses: &[Result<Status, String>]) -> String {
    nodes
        .iter()
        .zip(statuses)
        .map(|(node, status)| match status {
            Ok(status) => format!(
                "  {}: overlay {}, connected {:?}, inbound {}",
                node.name(),
                status.raw["data"]["overlay"],
                status.connected,
                status.inbound
            ),
            Err(e) => format!("  {}: {e}", node.name()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until every node of ours reports an active view of 1 to `ACTIVE_MAX` nodes of
/// ours and the views form one connected graph. Panics with every STATUS otherwise.
fn wait_for_connected_overlay(nodes: &[Node]) {
    let ours: Vec<String> = nodes.iter().map(Node::address).collect();
    let mut last = Vec::new();
    let formed = wait_until(DEADLINE, || {
        last = statuses(nodes);
        let mut views = BTreeMap::new();
        for (own, status) in ours.iter().zip(&last) {
            let Some(view) = status.as_ref().ok().and_then(active_view) else {
                return false;
            };
            let fitting = (1..=ACTIVE_MAX).contains(&view.len())
                && !view.contains(own)
                && view.iter().all(|peer| ours.contains(peer));
            if !fitting {
                return false;
            }
            views.insert(own.clone(), view);
        }
        connected_graph(&ours, &views)
    });
    assert!(
        formed,
        "no connected overlay of the {} nodes (each with 1 to {ACTIVE_MAX} links, to nodes of \
         ours only) within {DEADLINE:?}; last STATUS of each:\n{}",
        nodes.len(),
        describe(nodes, &last)
    );
}

#[test]
fn an_overlay_of_eight_real_processes_and_a_javascript_node_gets_every_transaction_once() {
    let scratch = Scratch::new();
    let ports: Vec<u16> = (BASE..BASE + OURS).collect();
    // Started one after another, node i knowing nodes i - 1 and i - 2, as a person would
    // start them.
    let nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            let knows = &ports[i.saturating_sub(2)..i];
            let spec = NodeSpec::new(port)
                .knowing(knows)
                .public_key(&public_key(port))
                .env("P2P_OVERLAY", "on");
            Node::start_ready(&scratch.node_folder(&format!("node-{}", i + 1), &spec))
        })
        .collect();
    wait_for_connected_overlay(&nodes);

    // The JavaScript node dials one of ours (it never retries a dial, so it comes last),
    // which dials it back, as in the mesh.
    let contact = &nodes[JS_CONTACT];
    let js_spec = NodeSpec::new(PORT_JS)
        .knowing(&[contact.port()])
        .public_key(&public_key(PORT_JS));
    let mut js = JsNode::start_ready(&scratch.node_folder("node-js", &js_spec));
    let addr_js = address(PORT_JS);
    let dialled_back = wait_until(DEADLINE, || {
        contact
            .status()
            .is_ok_and(|status| status.connected.contains(&addr_js))
    });
    assert!(
        dialled_back,
        "{} did not dial the JavaScript node back within {DEADLINE:?}:\n{}\n--- JavaScript \
         node's log ---\n{}",
        contact.name(),
        describe(&nodes, &statuses(&nodes)),
        js.log()
    );
    // A JavaScript node is never a link: the overlay is as it was.
    wait_for_connected_overlay(&nodes);

    // Transactions made at two nodes of ours, far apart, and at the JavaScript node.
    let made_at_ours = add_transaction(nodes[0].dir()).hash;
    let made_at_last = add_transaction(nodes[OURS as usize - 1].dir()).hash;
    let made_at_js = js_add_transaction(js.dir()).hash;
    let dirs: Vec<&std::path::Path> = nodes.iter().map(Node::dir).chain([js.dir()]).collect();
    wait_for_pools_exactly(
        &dirs,
        &[&made_at_ours, &made_at_last, &made_at_js],
        DEADLINE,
    );
    js.assert_running();

    // Each node of ours holds its links and its JavaScript peers, nothing more.
    let last = statuses(&nodes);
    for (node, status) in nodes.iter().zip(&last) {
        let status = status
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", node.name()));
        let view = active_view(status).unwrap_or_default();
        assert!(
            (1..=ACTIVE_MAX).contains(&view.len()),
            "{} has {} links, not 1 to {ACTIVE_MAX}: {}",
            node.name(),
            view.len(),
            status.raw
        );
        let js_peers = usize::from(status.connected.contains(&addr_js));
        assert_eq!(
            status.connected.iter().filter(|a| **a != addr_js).count(),
            0,
            "{} lists dialled peers other than the JavaScript node (links are not dials of \
             the mesh): {}",
            node.name(),
            status.raw
        );
        // The STATUS request itself is one of the accepted connections.
        let accepted = usize::try_from(status.inbound).unwrap_or(usize::MAX);
        assert!(
            accepted.saturating_sub(1) <= ACTIVE_MAX + js_peers,
            "{} accepted {} connections besides the STATUS request: more than {ACTIVE_MAX} \
             links and {js_peers} JavaScript peer(s): {}",
            node.name(),
            accepted.saturating_sub(1),
            status.raw
        );
    }
    // The processes themselves, counted by the system (no STATUS request open now). A link
    // may be briefly doubled while two nodes dial each other at once: give it a moment.
    let mut counts = Vec::new();
    let bounded = wait_until(Duration::from_secs(10), || {
        counts = nodes
            .iter()
            .zip(&last)
            .map(|(node, status)| {
                let js_peers = status
                    .as_ref()
                    .map_or(0, |s| usize::from(s.connected.contains(&addr_js)));
                let held = established_tcp_connections(pid_of(node)).unwrap_or(usize::MAX);
                (node.name(), held, ACTIVE_MAX + 2 * js_peers)
            })
            .collect();
        counts.iter().all(|(_, held, most)| held <= most)
    });
    assert!(
        bounded,
        "a node holds more TCP connections than {ACTIVE_MAX} links and 2 per JavaScript peer \
         (name, held, most): {counts:?}\n{}",
        describe(&nodes, &statuses(&nodes))
    );
    for node in &nodes {
        let log = node.log();
        assert!(
            !log.contains("panicked"),
            "{} panicked:\n{log}",
            node.name()
        );
    }
    js.assert_running();
}
