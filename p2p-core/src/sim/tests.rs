//! Unit tests of the simulated network, one behaviour each.
use std::collections::BTreeSet;
use std::time::Duration;

use super::links::{conn_id, DIALLER};
use super::queue::Pending;
use super::*;
use crate::node::{Action, DialId, Payload};
use crate::time::Time;

/// `nodes` nodes that know the curriculum's peers 4001 and 4003, those that exist.
fn sim(seed: u64, nodes: usize) -> Sim {
    let mut config = SimConfig::new(seed);
    config.known_peers.truncate(nodes.div_ceil(2));
    let mut sim = Sim::new(config);
    sim.add_nodes(nodes).unwrap();
    sim
}

fn meshed(seed: u64, nodes: usize) -> Sim {
    let mut sim = sim(seed, nodes);
    for id in sim.nodes().collect::<Vec<_>>() {
        sim.start(id).unwrap();
    }
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    assert!(sim.is_full_mesh(), "{}", sim.story());
    sim
}

fn assert_clean(sim: &Sim) {
    let faults = sim.check();
    assert!(faults.is_empty(), "{}", sim.story());
}

#[test]
fn node_i_serves_port_4001_plus_i() {
    let sim = sim(1, 3);
    assert_eq!(
        sim.address(NodeId(2)).map(ToString::to_string).as_deref(),
        Some("ws://localhost:4003")
    );
    assert_eq!(sim.node_at(&Address::localhost(4002)), Some(NodeId(1)));
    assert_eq!(sim.node_at(&Address::localhost(4004)), None);
    assert_eq!(sim.node_at(&"ws://example.org:4001".parse().unwrap()), None);
}

#[test]
fn a_dial_to_an_address_nobody_serves_fails_after_a_latency() {
    let mut sim = Sim::new(SimConfig::new(2));
    sim.add_node().unwrap();
    sim.start(NodeId(0)).unwrap();
    // Node 0 knows 4001 (itself, skipped) and 4003, which nobody serves.
    let event = std::iter::from_fn(|| sim.step())
        .find(|e| matches!(e, Event::DialFailed { .. }))
        .unwrap();
    assert_eq!(
        event,
        Event::DialFailed {
            from: NodeId(0),
            address: Address::localhost(4003)
        }
    );
    assert!(sim.now() >= Time::from_millis(1));
    assert_eq!(sim.counters().dials_failed, 1);
    assert_clean(&sim);
}

#[test]
fn frames_on_one_connection_arrive_in_the_order_sent() {
    let mut sim = meshed(3, 2);
    let link = sim.links.iter().position(Option::is_some).unwrap() as u64;
    let dialler = sim.link(link).unwrap().nodes[DIALLER];
    for i in 0..50 {
        let frame: Payload = format!(r#"{{"type":"PING","n":{i}}}"#).into();
        sim.send(dialler, conn_id(link, DIALLER), frame);
        sim.now = sim.now + Duration::from_micros(100);
    }
    let mut arrivals: Vec<(u64, Time)> = sim
        .queue
        .iter()
        .filter(|(_, _, what)| matches!(what, Pending::Deliver { link: l, .. } if *l == link))
        .map(|(at, seq, _)| (seq, at))
        .collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 50);
    assert!(arrivals.windows(2).all(|w| w[0].1 <= w[1].1));
}

#[test]
fn a_close_reaches_the_far_end_after_the_frames_sent_before_it() {
    let mut sim = meshed(4, 2);
    let link = sim.links.iter().position(Option::is_some).unwrap() as u64;
    let [dialler, server] = sim.link(link).unwrap().nodes;
    sim.send(dialler, conn_id(link, DIALLER), r#"{"type":"PING"}"#.into());
    sim.close(dialler, conn_id(link, DIALLER));
    let mut order = Vec::new();
    while let Some(event) = sim.step() {
        match event {
            Event::Delivered { .. } | Event::Closed { .. } => order.push(event),
            _ => {}
        }
        if order.len() == 3 {
            break;
        }
    }
    let delivered_at = order
        .iter()
        .position(|e| matches!(e, Event::Delivered { to, .. } if *to == server));
    let closed_at = order
        .iter()
        .position(|e| matches!(e, Event::Closed { node, .. } if *node == server));
    assert!(delivered_at < closed_at, "{order:?}");
}

#[test]
fn a_crash_closes_every_connection_of_the_node_on_both_sides() {
    let mut sim = meshed(5, 3);
    sim.crash(NodeId(1)).unwrap();
    assert_eq!(sim.state(NodeId(1)), Some(NodeState::Down));
    sim.run_for(Duration::from_millis(100));
    for id in [NodeId(0), NodeId(2)] {
        assert_eq!(
            sim.connected_to(id),
            vec![if id == NodeId(0) {
                NodeId(2)
            } else {
                NodeId(0)
            }]
        );
    }
    assert!(sim.is_full_mesh());
    assert!(sim
        .links
        .iter()
        .flatten()
        .all(|l| !l.nodes.contains(&NodeId(1))));
    assert_clean(&sim);
}

#[test]
fn a_restarted_node_gets_its_stored_pool_back() {
    let mut sim = meshed(6, 3);
    let tx = sim.add_new_transaction(NodeId(0)).unwrap();
    sim.run_until_quiet(Duration::from_secs(60));
    sim.crash(NodeId(2)).unwrap();
    assert!(sim.has_transaction(NodeId(2), tx.hash()));
    assert_eq!(sim.stored_pool(NodeId(2)), std::slice::from_ref(&tx));
    sim.restart(NodeId(2)).unwrap();
    assert_eq!(sim.node(NodeId(2)).unwrap().pool(), &[tx]);
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    assert!(sim.is_full_mesh());
    assert_clean(&sim);
}

#[test]
fn a_partition_cuts_connections_across_and_healing_mends_them() {
    let mut sim = meshed(7, 4);
    sim.partition(&[vec![NodeId(0), NodeId(1)], vec![NodeId(2), NodeId(3)]])
        .unwrap();
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.connected_to(NodeId(0)), vec![NodeId(1)]);
    assert_eq!(sim.connected_to(NodeId(3)), vec![NodeId(2)]);
    assert!(!sim.is_full_mesh());
    sim.heal();
    assert!(sim.run_until_quiet(Duration::from_secs(60)).is_quiet());
    assert!(sim.is_full_mesh(), "{}", sim.story());
    assert_clean(&sim);
}

#[test]
fn commands_a_node_cannot_take_are_refused_not_panicked_on() {
    let mut sim = sim(8, 2);
    assert_eq!(sim.crash(NodeId(5)), Err(SimError::UnknownNode(NodeId(5))));
    assert_eq!(sim.crash(NodeId(0)), Err(SimError::NotStarted(NodeId(0))));
    assert_eq!(sim.restart(NodeId(0)), Err(SimError::NotStarted(NodeId(0))));
    sim.start(NodeId(0)).unwrap();
    assert_eq!(
        sim.start(NodeId(0)),
        Err(SimError::AlreadyStarted(NodeId(0)))
    );
    assert_eq!(sim.restart(NodeId(0)), Err(SimError::Running(NodeId(0))));
    assert_eq!(
        sim.add_new_transaction(NodeId(1)).map(|_| ()),
        Err(SimError::NotStarted(NodeId(1)))
    );
    assert_eq!(
        sim.partition(&[vec![NodeId(9)]]),
        Err(SimError::UnknownNode(NodeId(9)))
    );
    sim.crash(NodeId(0)).unwrap();
    assert_eq!(
        sim.apply(Command::AddTransaction(NodeId(0))),
        Err(SimError::NoLiveNode)
    );
}

#[test]
fn a_scheduled_transaction_at_a_node_that_is_down_goes_to_the_next_running_one() {
    let mut sim = meshed(9, 3);
    sim.crash(NodeId(1)).unwrap();
    sim.schedule(sim.now(), Command::AddTransaction(NodeId(1)));
    sim.step();
    let tx = &sim.transactions()[0];
    assert!(sim.node(NodeId(2)).unwrap().has_transaction(tx.hash()));
}

#[test]
fn new_transactions_never_share_a_hash() {
    let mut sim = sim(10, 0);
    let hashes: BTreeSet<String> = (0..1000)
        .map(|_| sim.new_transaction().hash().to_owned())
        .collect();
    assert_eq!(hashes.len(), 1000);
}

#[test]
fn the_first_full_mesh_is_when_every_node_runs_in_one() {
    let mut sim = sim(11, 3);
    sim.start(NodeId(0)).unwrap();
    sim.start(NodeId(1)).unwrap();
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.first_full_mesh(), None);
    sim.start(NodeId(2)).unwrap();
    sim.run_until_quiet(Duration::from_secs(60));
    let when = sim.first_full_mesh().unwrap();
    assert!(when > Time::from_millis(5000));
}

#[test]
fn frames_are_counted_by_type_and_by_link() {
    let mut sim = meshed(12, 3);
    // Every node dialled both others and sent each one HANDSHAKE.
    assert_eq!(sim.counters().sent.handshake, 6);
    assert_eq!(sim.link_frames(NodeId(0), NodeId(1)).handshake, 1);
    sim.add_new_transaction(NodeId(0)).unwrap();
    sim.run_until_quiet(Duration::from_secs(60));
    assert!(sim.counters().sent.transaction >= 2);
    let total: u64 = sim.links().map(|(_, c)| c.total()).sum();
    assert_eq!(total, sim.counters().sent.total());
}

#[test]
fn the_log_tells_the_story_per_node() {
    let sim = meshed(13, 2);
    let line = sim.node_log(NodeId(1)).next().unwrap();
    assert_eq!(line, "0.000s node-2: listening on ws://localhost:4002");
    assert!(sim.log().any(|l| l.contains(" sim: node-1 starts")));
}

#[test]
fn the_checks_catch_a_node_dialling_itself() {
    let mut sim = meshed(14, 3);
    sim.carry_out(
        NodeId(1),
        Action::Dial {
            dial: DialId(999),
            address: "ws://127.0.0.1:4002/".parse().unwrap(),
        },
    );
    let faults = sim.check();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0].node, NodeId(1));
    assert!(faults[0].what.starts_with("dials itself"), "{}", faults[0]);
}

#[test]
fn the_checks_catch_a_second_dial_to_a_connected_server() {
    let mut sim = meshed(15, 3);
    sim.carry_out(
        NodeId(0),
        Action::Dial {
            dial: DialId(999),
            address: Address::localhost(4002),
        },
    );
    let faults = sim.check();
    assert!(
        faults
            .iter()
            .any(|f| f.what.contains("which it is connected to")),
        "{faults:?}"
    );
}

#[test]
fn the_checks_catch_a_handshake_listing_what_is_not_open() {
    let mut sim = meshed(16, 3);
    let (link, _) = sim
        .links
        .iter()
        .enumerate()
        .find_map(|(i, l)| Some((i as u64, l.as_ref()?)).filter(|(_, l)| l.nodes[0] == NodeId(0)))
        .unwrap();
    let frame = r#"{"type":"HANDSHAKE","data":["ws://localhost:4001","ws://localhost:4009"]}"#;
    sim.send(NodeId(0), conn_id(link, DIALLER), frame.into());
    let faults: Vec<String> = sim.check().iter().map(|f| f.what.clone()).collect();
    assert!(
        faults
            .iter()
            .any(|f| f.contains("listing ws://localhost:4009")),
        "{faults:?}"
    );
    assert!(
        faults
            .iter()
            .any(|f| f.contains("does not list the connection it is sent on")),
        "{faults:?}"
    );
}

#[test]
fn a_dial_answered_after_the_node_gave_up_on_it_is_no_violation() {
    // Dials take 12 s; the node gives up on a dial after 10 s and dials again.
    let mut config = SimConfig::new(17);
    config.latency = Latency::from_millis(12_000, 12_000);
    config.known_peers.truncate(1);
    let mut sim = Sim::new(config);
    sim.add_nodes(2).unwrap();
    sim.start(NodeId(0)).unwrap();
    sim.start(NodeId(1)).unwrap();
    while sim.now() < Time::from_millis(60_000) {
        sim.step();
        assert_clean(&sim);
    }
    assert!(sim
        .log()
        .any(|l| l.contains("could not reach ws://localhost:4001")));
}

/// `nodes` nodes meshed, then a dial-only, watching node (a page) knowing only the first.
fn meshed_with_a_page(seed: u64, nodes: usize) -> (Sim, NodeId) {
    let mut sim = meshed(seed, nodes);
    let page = sim
        .add_node_with(|config| {
            config.known_peers = vec![Address::localhost(4001)];
            config.dial_only = true;
            config.watch = true;
        })
        .unwrap();
    sim.start(page).unwrap();
    sim.run_for(Duration::from_secs(2));
    (sim, page)
}

#[test]
fn a_page_learns_every_node_through_one_and_nobody_dials_it() {
    for seed in 1..=10 {
        let (sim, page) = meshed_with_a_page(seed, 5);
        let reached: BTreeSet<NodeId> = sim
            .connected_addresses(page)
            .iter()
            .filter_map(|a| sim.node_at(a))
            .collect();
        assert_eq!(reached.len(), 5, "seed {seed}: {}", sim.story());
        for id in sim.nodes().filter(|&id| id != page) {
            let reached = sim.connected_to(id);
            assert!(
                !reached.contains(&page),
                "seed {seed}: {id} dialled the page"
            );
        }
        assert!(sim.counters().watched > 0, "seed {seed}");
        assert_clean(&sim);
    }
}

#[test]
fn a_page_gets_every_transaction_and_every_node_gets_the_pages_through_crashes() {
    for seed in 1..=10 {
        let (mut sim, page) = meshed_with_a_page(seed, 5);
        let made_at_node = sim.add_new_transaction(NodeId(2)).unwrap();
        let made_at_page = sim.add_new_transaction(page).unwrap();
        // Both by push, well before catch-up (which sends nothing younger than 1 s).
        sim.run_for(Duration::from_millis(300));
        assert!(
            sim.has_transaction(page, made_at_node.hash()),
            "seed {seed}"
        );
        for id in sim.nodes() {
            assert!(
                sim.has_transaction(id, made_at_page.hash()),
                "seed {seed}: {id}"
            );
        }
        // A node the page reaches goes down and comes back; what is made meanwhile, at
        // the page and at the others, reaches everyone.
        sim.crash(NodeId(3)).unwrap();
        sim.run_for(Duration::from_millis(200));
        sim.add_new_transaction(page).unwrap();
        sim.add_new_transaction(NodeId(4)).unwrap();
        sim.run_for(Duration::from_secs(1));
        sim.restart(NodeId(3)).unwrap();
        sim.add_new_transaction(NodeId(3)).unwrap();
        sim.run_for(Duration::from_secs(20));
        assert_eq!(sim.delivered(), 1.0, "seed {seed}: {}", sim.story());
        assert_clean(&sim);
    }
}

#[test]
fn a_stable_full_mesh_delivers_each_transaction_once_per_node_in_one_hop() {
    let mut scenario = Scenario::new(30, 40, 5);
    scenario.measure_spread = true;
    let mut sim = scenario.build().unwrap();
    let report = sim.run_until_quiet(Duration::from_secs(600));
    assert!(report.is_quiet());
    let summary = Summary::of(&sim, 5);
    assert_eq!(summary.delivered, 1.0);
    assert_eq!((summary.rmr, summary.ldh_max), (0.0, 1), "{summary:?}");
    assert_eq!(summary.active_view_max, 29);
    assert_eq!(summary.connections_per_node, 58.0);
}

// ----- the overlay mode ------------------------------------------------------------------

fn overlay_sim(seed: u64, nodes: usize) -> Sim {
    let mut config = SimConfig::new(seed);
    config.overlay = Some(crate::config::Overlay::default());
    let mut sim = Sim::new(config);
    sim.add_nodes(nodes).unwrap();
    for id in sim.nodes().collect::<Vec<_>>() {
        sim.start(id).unwrap();
    }
    sim
}

#[test]
fn the_overlay_graph_the_simulator_keeps_is_each_nodes_own_active_view() {
    let mut sim = overlay_sim(3, 20);
    for _ in 0..20 {
        sim.run_for(Duration::from_millis(250));
        for id in sim.nodes() {
            let noted: Vec<NodeId> = sim.overlay.views[id.0]
                .iter()
                .filter_map(|&(_, peer)| peer)
                .collect();
            assert_eq!(noted, sim.active_view(id), "{id} at {}", sim.now());
        }
    }
    assert!(sim.is_overlay_connected(), "{}", sim.story());
    assert!((1..=5).contains(&sim.active_view_max()));
    assert_clean(&sim);
    // A crash takes the node out of the graph at once, before anyone hears of it.
    sim.crash(NodeId(4)).unwrap();
    assert!(sim.overlay.views[4].is_empty());
    assert!(!sim.overlay.running[4]);
}

#[test]
fn an_overlay_run_ends_once_every_pool_is_full_and_a_fresh_sample_finds_it_connected() {
    let mut sim = overlay_sim(4, 12);
    sim.run_for(Duration::from_secs(3));
    sim.add_new_transaction(NodeId(5)).unwrap();
    let report = sim.run_until_overlay_converged(Duration::from_secs(60));
    assert_eq!(report.outcome, Outcome::Converged, "{}", sim.story());
    assert!(sim.is_overlay_converged());
    assert!(sim.is_overlay_connected());
    assert_eq!(sim.delivered(), 1.0);
    assert_eq!(sim.overlay_sampled_connected(), Some(true));
    // Another transaction: not converged until every pool holds it.
    sim.add_new_transaction(NodeId(0)).unwrap();
    assert!(!sim.is_overlay_converged());
    let report = sim.run_until_overlay_converged(Duration::from_secs(60));
    assert_eq!(report.outcome, Outcome::Converged);
    assert_eq!(sim.delivered(), 1.0);
}

#[test]
fn reconnection_is_the_first_sample_after_the_instant_that_finds_the_overlay_whole() {
    let mut sim = Sim::new(SimConfig::new(1));
    let t = Time::from_millis;
    sim.overlay.changes = vec![
        (t(0), false),
        (t(500), true),
        (t(2000), false),
        (t(2600), true),
    ];
    // Split at 2.0 s, whole again at 2.6 s.
    assert_eq!(sim.overlay_reconnected_after(t(1900)), Some(t(2600)));
    assert_eq!(sim.overlay_reconnected_after(t(2000)), Some(t(2600)));
    // Whole throughout after 2.6 s: no sample saw a split.
    assert_eq!(sim.overlay_reconnected_after(t(3000)), Some(t(3000)));
    // Split at the instant itself (a sample at that instant counts as before it).
    assert_eq!(sim.overlay_reconnected_after(t(100)), Some(t(500)));
    sim.overlay.changes.push((t(4000), false));
    assert_eq!(sim.overlay_reconnected_after(t(3000)), None);
    assert_eq!(sim.overlay_reconnected_after(t(5000)), None);
}

#[test]
fn a_mass_crash_comes_first_when_the_traffic_starts_then_every_survivor_sends() {
    let mut scenario = Scenario::new(10, 3, 7);
    scenario.settle = Duration::from_secs(2);
    scenario.crash_at_once = 4;
    scenario.all_send = true;
    let crashed = scenario.crashed();
    assert_eq!(crashed.len(), 4);
    let at = scenario.traffic_starts();
    assert_eq!(at, Time::from_millis(3000));
    let plan = scenario.plan();
    let after: Vec<&Command> = plan
        .iter()
        .filter(|(when, _)| *when >= at)
        .map(|(when, command)| {
            assert_eq!(*when, at);
            command
        })
        .collect();
    let crashes: Vec<Command> = crashed.iter().map(|&id| Command::Crash(id)).collect();
    let sends: Vec<Command> = (0..10)
        .map(NodeId)
        .filter(|id| !crashed.contains(id))
        .map(Command::AddTransaction)
        .collect();
    assert_eq!(after[..4], crashes.iter().collect::<Vec<_>>()[..]);
    assert_eq!(after[4..], sends.iter().collect::<Vec<_>>()[..]);
}

#[test]
fn a_plan_without_the_overlay_options_is_the_plan_it_always_was() {
    // Taken from the build before the settling time, the mass crash and all-send existed.
    let mut scenario = Scenario::new(4, 2, 11);
    scenario.churn = 1;
    scenario.partition = true;
    let node = NodeId;
    let before = vec![
        (44_445, Command::Start(node(2))),
        (269_729, Command::Start(node(1))),
        (344_436, Command::Start(node(3))),
        (387_664, Command::Start(node(0))),
        (
            1_813_264,
            Command::Partition(vec![vec![node(0), node(1)], vec![node(2), node(3)]]),
        ),
        (2_642_671, Command::AddTransaction(node(1))),
        (3_516_962, Command::AddTransaction(node(1))),
        (3_531_989, Command::Heal),
        (4_212_404, Command::Crash(node(3))),
        (4_827_758, Command::Restart(node(3))),
    ];
    let plan: Vec<(u64, Command)> = scenario
        .plan()
        .into_iter()
        .map(|(when, command)| (when.as_micros(), command))
        .collect();
    assert_eq!(plan, before);
}
