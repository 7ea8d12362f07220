//! Unit tests of the overlay mode (`Config::overlay`), one rule each.
use super::*;
use crate::config::Overlay;

/// A node on [`PORT`] in overlay mode knowing `known`, with `active` links at most.
fn overlay_config(known: &[&str], active: usize) -> Config {
    let mut config = config(known);
    config.overlay = Some(Overlay {
        active,
        ..Overlay::default()
    });
    config
}

/// Accepts `conn` from the overlay node at `port`, which sends `ask` (JOIN, NEIGHBOR…)
/// after its HANDSHAKE; the actions that follow.
fn link_from(node: &mut Node, conn: u64, port: u16, ask: &str, now: Time) -> Vec<Action> {
    let conn = ConnId(conn);
    node.handle_accepted(conn, now);
    let handshake = frame::handshake_overlay(&Address::localhost(port), 1);
    node.handle_text(conn, &handshake, now);
    node.handle_text(conn, ask, now);
    drain(node)
}

/// The frames of `kind` among `frames`.
fn of_type(frames: Vec<String>, kind: &str) -> Vec<String> {
    let head = format!(r#"{{"type":"{kind}""#);
    frames
        .into_iter()
        .filter(|f| f.starts_with(&head))
        .collect()
}

fn active(node: &Node) -> Vec<String> {
    node.active_view().map(ToString::to_string).collect()
}

fn frames_on(actions: &[Action], conn: u64) -> Vec<String> {
    frames_to(actions, ConnId(conn))
        .iter()
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn a_new_node_dials_one_known_peer_and_joins_through_it() {
    let (mut node, actions) = started(overlay_config(
        &["ws://localhost:4002", "ws://localhost:4003"],
        5,
    ));
    assert!(matches!(actions[0], Action::Listen { .. }));
    let dialled = dialled_addresses(&actions);
    assert_eq!(dialled, ["ws://localhost:4002"], "one contact, not a mesh");
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(5));
    let sent = frames_on(&drain(&mut node), 1);
    assert!(
        sent[0].contains(r#""overlay":true"#) && sent[0].contains(r#"["ws://localhost:4001"]"#)
    );
    assert_eq!(sent[1], frame::JOIN);
    // Linked once the contact says so.
    assert!(active(&node).is_empty());
    node.handle_text(ConnId(1), &frame::neighbor_reply(true), ms(6));
    assert_eq!(active(&node), ["ws://localhost:4002"]);
    let status = node.status().overlay.expect("overlay status");
    // Linked, not yet in a tree: until the contact says where the root is, nothing is
    // pushed over the link, only announced.
    assert_eq!(
        (status.eager, status.passive, status.isolated),
        (0, 0, false)
    );
}

#[test]
fn a_contact_that_never_answers_a_join_is_let_go_at_the_dial_timeout() {
    // A node of the full mesh (or anything else) refuses JOIN and says nothing.
    let (mut node, actions) = started(overlay_config(&["ws://localhost:4002"], 5));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(5));
    drain(&mut node);
    let timeout = Backoff::default().dial_timeout;
    node.handle_timeout(ms(5) + timeout);
    assert_eq!(closes(&drain(&mut node)), [ConnId(1)]);
    assert!(active(&node).is_empty());
}

#[test]
fn a_join_is_linked_without_a_dial_back_and_walked_from_every_other_link() {
    let (mut node, _) = started(overlay_config(&[], 5));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    link_from(&mut node, 2, 4003, frame::JOIN, ms(2));
    let actions = link_from(&mut node, 3, 4004, frame::JOIN, ms(3));
    assert!(
        dials(&actions).is_empty(),
        "an overlay HANDSHAKE is not dialled back"
    );
    assert!(
        frames_on(&actions, 3).contains(&frame::neighbor_reply(true)),
        "granted"
    );
    let walk = frame::forward_join(&Address::localhost(4004), 6);
    for conn in [1, 2] {
        assert!(frames_on(&actions, conn).contains(&walk), "{actions:?}");
    }
    assert!(!frames_on(&actions, 3).contains(&walk));
    assert_eq!(active(&node).len(), 3);
}

#[test]
fn a_full_view_refuses_a_low_neighbor_and_makes_room_for_a_high_one() {
    let (mut node, _) = started(overlay_config(&[], 2));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    link_from(&mut node, 2, 4003, frame::JOIN, ms(2));
    let refused = link_from(&mut node, 3, 4004, &frame::neighbor(false), ms(3));
    assert_eq!(
        frames_on(&refused, 3),
        [frame::HELLO.to_owned(), frame::neighbor_reply(false)]
    );
    assert_eq!(active(&node).len(), 2);
    let granted = link_from(&mut node, 4, 4005, &frame::neighbor(true), ms(4));
    assert!(frames_on(&granted, 4).contains(&frame::neighbor_reply(true)));
    let dropped: Vec<ConnId> = closes(&granted);
    assert_eq!(dropped.len(), 1, "one link makes room: {granted:?}");
    assert_eq!(
        frames_on(&granted, dropped[0].0),
        [frame::DISCONNECT.to_owned()]
    );
    assert_eq!(active(&node).len(), 2);
    assert!(active(&node).contains(&"ws://localhost:4005".to_owned()));
    // The dropped peer is kept to replace a link later.
    assert_eq!(node.status().overlay.map(|s| s.passive), Some(1));
}

/// A node linked to 4002 (conn 1), its parent toward the root 4000 (a smaller address
/// than its own), and to 4003 (conn 2), whose parent it is; the tree told both ways.
fn in_a_tree() -> Node {
    let (mut node, _) = started(overlay_config(&[], 5));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    link_from(&mut node, 2, 4003, frame::JOIN, ms(2));
    let root = Address::localhost(4000);
    node.handle_text(ConnId(1), &frame::tree(&root, 1, false), ms(3));
    node.handle_text(ConnId(2), &frame::tree(&root, 3, true), ms(3));
    node.handle_timeout(ms(100));
    drain(&mut node);
    node
}

#[test]
fn a_node_takes_as_parent_the_link_nearest_the_smallest_root_and_tells_it() {
    let (mut node, _) = started(overlay_config(&[], 5));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    link_from(&mut node, 2, 4003, frame::JOIN, ms(2));
    node.handle_timeout(ms(100));
    // Alone, the node is its own root; each new link is told so.
    let alone = frame::tree(&Address::localhost(PORT), 0, false);
    let told = drain(&mut node);
    assert!(frames_on(&told, 1).contains(&alone) && frames_on(&told, 2).contains(&alone));
    let root = Address::localhost(4000);
    node.handle_text(ConnId(2), &frame::tree(&root, 4, false), ms(110));
    node.handle_text(ConnId(1), &frame::tree(&root, 1, false), ms(111));
    node.handle_timeout(ms(200));
    let actions = drain(&mut node);
    // Told together, once: 4002 is the parent (distance 2 through it), 4003 is not.
    assert_eq!(frames_on(&actions, 1), [frame::tree(&root, 2, true)]);
    assert_eq!(frames_on(&actions, 2), [frame::tree(&root, 2, false)]);
    let status = node.status().overlay.expect("overlay status");
    assert_eq!((status.root, status.dist, status.eager), (root, 2, 1));
}

#[test]
fn a_push_goes_on_over_the_tree_and_is_announced_elsewhere() {
    let mut node = in_a_tree();
    assert_eq!(
        node.status().overlay.map(|s| s.eager),
        Some(2),
        "parent and child"
    );
    link_from(&mut node, 3, 4004, frame::JOIN, ms(5));
    drain(&mut node);
    let first = tx(1);
    node.handle_text(ConnId(1), &first.to_frame(), ms(10));
    let actions = drain(&mut node);
    assert!(
        frames_on(&actions, 2)
            .iter()
            .any(|f| f.contains(first.body())),
        "pushed to the child"
    );
    // Announced off the tree, together with what else comes within 250 ms.
    assert!(
        of_type(frames_on(&actions, 3), "IHAVE").is_empty(),
        "not yet"
    );
    let second = tx(2);
    node.handle_text(ConnId(1), &second.to_frame(), ms(200));
    drain(&mut node);
    node.handle_timeout(ms(259));
    assert!(
        of_type(frames_on(&drain(&mut node), 3), "IHAVE").is_empty(),
        "not yet"
    );
    node.handle_timeout(ms(260));
    let later = drain(&mut node);
    assert_eq!(
        of_type(frames_on(&later, 3), "IHAVE"),
        [frame::hashes_frame("IHAVE", [first.hash(), second.hash()])],
        "announced off the tree"
    );
    assert!(
        frames_on(&actions, 1)
            .iter()
            .all(|f| !f.contains(first.hash())),
        "not back"
    );
    // A duplicate changes nothing: the tree is the TREE frames' to decide.
    node.handle_text(ConnId(3), &first.to_frame(), ms(20));
    assert!(effects(&drain(&mut node)).is_empty());
}

#[test]
fn a_burst_is_not_announced_but_left_to_catch_up() {
    // Within one gathering: 1,024 hashes are announced, 1,025 are not (the burst's
    // announcements would cost as much as the burst).
    for (count, announced) in [(1024, true), (1025, false)] {
        let mut node = in_a_tree();
        link_from(&mut node, 3, 4004, frame::JOIN, ms(5));
        drain(&mut node);
        for n in 0..count {
            node.handle_text(ConnId(1), &tx(1000 + n).to_frame(), ms(10));
        }
        drain(&mut node);
        node.handle_timeout(ms(300));
        let ihave = of_type(frames_on(&drain(&mut node), 3), "IHAVE");
        assert_eq!(
            !ihave.is_empty(),
            announced,
            "{count}: {} IHAVE frames",
            ihave.len()
        );
    }
}

#[test]
fn a_transaction_made_here_goes_over_the_tree_and_is_announced_elsewhere() {
    // Over the tree only: a copy over another link could come first by a quicker way
    // that is longer in hops (in the simulator at 1,000 nodes, ldh 14 -> 25).
    let mut node = in_a_tree();
    link_from(&mut node, 3, 4004, frame::JOIN, ms(5));
    drain(&mut node);
    let mine = tx(2);
    node.add_transaction(mine.clone(), ms(10));
    let actions = drain(&mut node);
    let carries = |conn| {
        frames_on(&actions, conn)
            .iter()
            .any(|f| f.contains(mine.body()))
    };
    assert_eq!((carries(1), carries(2), carries(3)), (true, true, false));
    node.handle_timeout(ms(260));
    assert_eq!(
        of_type(frames_on(&drain(&mut node), 3), "IHAVE"),
        [frame::hashes_frame("IHAVE", [mine.hash()])]
    );
}

#[test]
fn losing_the_parent_makes_the_next_best_link_the_parent() {
    let mut node = in_a_tree();
    node.handle_closed(ConnId(1), ms(10));
    node.handle_timeout(ms(50));
    let actions = drain(&mut node);
    // 4003 was its child: never taken as the parent, so the node is its own root again,
    // until 4003 hears of a better way. A change for the worse is held for 100 ms.
    assert!(frames_on(&actions, 2).is_empty(), "{actions:?}");
    node.handle_timeout(ms(110));
    let alone = frame::tree(&Address::localhost(PORT), 0, false);
    assert_eq!(frames_on(&drain(&mut node), 2), [alone]);
    // A change for the better goes within 20 ms.
    let root = Address::localhost(4000);
    node.handle_text(ConnId(2), &frame::tree(&root, 5, false), ms(120));
    node.handle_timeout(ms(140));
    let actions = drain(&mut node);
    assert_eq!(frames_on(&actions, 2), [frame::tree(&root, 6, true)]);
}

#[test]
fn a_worse_place_held_back_and_undone_within_the_hold_is_never_told() {
    let mut node = in_a_tree();
    let root = Address::localhost(4000);
    // The parent's way gets longer (distance 2 -> 5 through it), then short again.
    node.handle_text(ConnId(1), &frame::tree(&root, 4, false), ms(10));
    node.handle_text(ConnId(1), &frame::tree(&root, 1, false), ms(50));
    node.handle_timeout(ms(200));
    let actions = drain(&mut node);
    assert!(
        of_type(frames_on(&actions, 1), "TREE").is_empty(),
        "{actions:?}"
    );
    assert!(
        of_type(frames_on(&actions, 2), "TREE").is_empty(),
        "{actions:?}"
    );
    assert_eq!(node.status().overlay.map(|s| s.dist), Some(2));
}

#[test]
fn a_root_that_is_gone_is_forgotten_when_the_distances_count_past_the_bound() {
    let (mut node, _) = started(overlay_config(&[], 5));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    let root = Address::localhost(4000);
    node.handle_text(ConnId(1), &frame::tree(&root, 31, false), ms(2));
    assert_eq!(node.status().overlay.map(|s| s.dist), Some(32));
    node.handle_text(ConnId(1), &frame::tree(&root, 32, false), ms(3));
    let status = node.status().overlay.expect("overlay status");
    assert_eq!((status.root, status.dist), (Address::localhost(PORT), 0));
}

#[test]
fn an_announced_transaction_not_pushed_in_time_is_grafted_from_its_announcer() {
    let (mut node, _) = started(overlay_config(&[], 5));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    let (late, early) = (tx(7), tx(8));
    let ihave = frame::hashes_frame("IHAVE", [late.hash(), early.hash()]);
    node.handle_text(ConnId(1), &ihave, ms(100));
    drain(&mut node);
    let graft_after = Overlay::default().graft_after;
    assert!(node
        .poll_timeout()
        .is_some_and(|t| t <= ms(100) + graft_after));
    // One of them comes by push in time: only the other is asked for.
    node.handle_text(ConnId(1), &early.to_frame(), ms(120));
    node.handle_timeout(ms(100) + graft_after);
    let sent = of_type(frames_on(&drain(&mut node), 1), "GRAFT");
    assert_eq!(sent, [frame::hashes_frame("GRAFT", [late.hash()])]);
}

#[test]
fn a_graft_is_answered_with_the_bodies_asked_for() {
    let mut node = in_a_tree();
    let first = tx(1);
    node.handle_text(ConnId(1), &first.to_frame(), ms(10));
    drain(&mut node);
    let graft = frame::hashes_frame("GRAFT", [first.hash(), "unknown"]);
    node.handle_text(ConnId(2), &graft, ms(30));
    let sent = frames_on(&drain(&mut node), 2);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains(first.body()));
}

#[test]
fn overlay_frames_are_refused_from_outside_the_overlay() {
    // A connection that never said it runs the overlay.
    let (mut node, _) = started(overlay_config(&[], 5));
    node.handle_accepted(ConnId(1), ms(1));
    node.handle_text(ConnId(1), &handshake_frame(&["ws://localhost:4002"]), ms(1));
    node.handle_text(ConnId(1), frame::JOIN, ms(2));
    assert_eq!(refusals(&drain(&mut node)), 1);
    assert!(active(&node).is_empty());
    // A node of the full mesh takes none.
    let (mut mesh, _) = started(config(&[]));
    let actions = link_from(&mut mesh, 1, 4002, frame::JOIN, ms(1));
    assert_eq!(refusals(&actions), 1);
    assert!(active(&mesh).is_empty());
    assert!(mesh.status().overlay.is_none());
}

#[test]
fn a_lost_link_is_replaced_from_the_passive_view() {
    let (mut node, _) = started(overlay_config(&[], 5));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    let addresses = [Address::localhost(4002), Address::localhost(4009)];
    node.handle_text(ConnId(1), &frame::shuffle("SHUFFLE", &addresses), ms(2));
    let reply = frames_on(&drain(&mut node), 1);
    assert!(
        reply[0].starts_with(r#"{"type":"SHUFFLE_REPLY""#),
        "{reply:?}"
    );
    node.handle_closed(ConnId(1), ms(3));
    assert!(node.status().overlay.is_some_and(|s| s.isolated));
    node.handle_timeout(ms(3));
    let actions = drain(&mut node);
    assert_eq!(
        dialled_addresses(&actions),
        ["ws://localhost:4009"],
        "the passive address"
    );
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4009"), ConnId(5), ms(10));
    let sent = frames_on(&drain(&mut node), 5);
    assert_eq!(
        sent[1],
        frame::neighbor(true),
        "no link at all: high priority"
    );
    node.handle_text(ConnId(5), &frame::neighbor_reply(true), ms(20));
    assert_eq!(active(&node), ["ws://localhost:4009"]);
}

#[test]
fn a_peer_that_dropped_our_link_is_not_dialled_again_until_that_connection_closed() {
    // Found by the stable-overlay property test: a link dropped and re-dialled in one
    // step (a repair or a SWAP picking the address just made passive) left two dialled
    // connections to one server.
    let (mut node, _) = started(overlay_config(&[], 5));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    let addresses = [Address::localhost(4009)];
    node.handle_text(ConnId(1), &frame::shuffle("SHUFFLE", &addresses), ms(2));
    node.handle_closed(ConnId(1), ms(3));
    node.handle_timeout(ms(3));
    let actions = drain(&mut node);
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4009"), ConnId(5), ms(10));
    node.handle_text(ConnId(5), &frame::neighbor_reply(true), ms(20));
    drain(&mut node);
    // 4009 drops the link: it is passive again, the only address to repair from.
    node.handle_text(ConnId(5), frame::DISCONNECT, ms(30));
    let mut actions = drain(&mut node);
    for at in (40..=3_000).step_by(20) {
        node.handle_timeout(ms(at));
        actions.extend(drain(&mut node));
    }
    assert!(dials(&actions).is_empty(), "{actions:?}");
    node.handle_closed(ConnId(5), ms(3_010));
    for at in (3_020..=40_000).step_by(500) {
        node.handle_timeout(ms(at));
        actions.extend(drain(&mut node));
    }
    assert_eq!(dialled_addresses(&actions), ["ws://localhost:4009"]);
}

#[test]
fn announced_hashes_awaited_at_once_are_capped() {
    let mut config = overlay_config(&[], 5);
    config.overlay.as_mut().expect("set").max_missing = 2;
    let (mut node, _) = started(config);
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    let txs: Vec<Transaction> = (0..5).map(tx).collect();
    let ihave = frame::hashes_frame("IHAVE", txs.iter().map(|t| t.hash()));
    node.handle_text(ConnId(1), &ihave, ms(10));
    drain(&mut node);
    node.handle_timeout(ms(10) + Overlay::default().graft_after);
    let sent = of_type(frames_on(&drain(&mut node), 1), "GRAFT");
    assert_eq!(sent.len(), 1);
    let asked = txs.iter().filter(|t| sent[0].contains(t.hash())).count();
    assert_eq!(asked, 2, "{sent:?}");
}

/// A node with a full view of two: 4002 (conn 1) and 4003 (conn 2).
fn full_of_two() -> Node {
    let (mut node, _) = started(overlay_config(&[], 2));
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    link_from(&mut node, 2, 4003, frame::JOIN, ms(2));
    node
}

#[test]
fn a_swap_into_a_full_view_trades_a_link_and_tells_it_whom_to_link_with() {
    let mut node = full_of_two();
    let drop = Address::localhost(4009);
    let actions = link_from(&mut node, 3, 4005, &frame::swap(&drop), ms(3));
    let given = closes(&actions);
    assert_eq!(given.len(), 1, "{actions:?}");
    let (given_conn, given_port) = if given[0] == ConnId(1) {
        (1, 4002)
    } else {
        (2, 4003)
    };
    assert_eq!(frames_on(&actions, given_conn), [frame::rewire(&drop)]);
    let reply = frame::swap_reply(true, Some(&Address::localhost(given_port)));
    assert!(frames_on(&actions, 3).contains(&reply), "{actions:?}");
    assert_eq!(active(&node).len(), 2, "the view keeps its size");
    assert!(active(&node).contains(&"ws://localhost:4005".to_owned()));
}

#[test]
fn a_swap_offering_a_link_we_hold_is_refused() {
    let mut node = full_of_two();
    let actions = link_from(
        &mut node,
        3,
        4005,
        &frame::swap(&Address::localhost(4002)),
        ms(3),
    );
    assert!(frames_on(&actions, 3).contains(&frame::swap_reply(false, None)));
    assert!(closes(&actions).is_empty());
    assert_eq!(
        active(&node),
        ["ws://localhost:4002", "ws://localhost:4003"]
    );
}

#[test]
fn a_full_node_trades_a_link_at_a_shuffle_and_rewires_the_one_it_drops() {
    let mut config = overlay_config(&[], 2);
    let sizes = config.overlay.as_mut().expect("set");
    sizes.rewire_rounds = 1;
    // Within the stall timeout: these tests never report frames written.
    sizes.shuffle_every = Duration::from_secs(1);
    sizes.rewire_every = Duration::from_secs(1);
    let (mut node, _) = started(config);
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    link_from(&mut node, 2, 4003, frame::JOIN, ms(2));
    let passive = [Address::localhost(4002), Address::localhost(4009)];
    node.handle_text(ConnId(1), &frame::shuffle("SHUFFLE_REPLY", &passive), ms(3));
    drain(&mut node);
    let shuffle_at = ms(2_000);
    node.handle_timeout(shuffle_at);
    let actions = drain(&mut node);
    assert_eq!(dialled_addresses(&actions), ["ws://localhost:4009"]);
    node.handle_dial_opened(
        dial_to(&actions, "ws://localhost:4009"),
        ConnId(7),
        shuffle_at,
    );
    let sent = frames_on(&drain(&mut node), 7);
    let offered = sent
        .iter()
        .find(|f| f.starts_with(r#"{"type":"SWAP""#))
        .expect("a SWAP");
    let drop_port = if offered.contains("4002") { 4002 } else { 4003 };
    let drop_conn = if drop_port == 4002 { 1 } else { 2 };
    // 4009 gave up its link to 4020 for us: the link we drop is told to link with it.
    let to = Address::localhost(4020);
    node.handle_text(ConnId(7), &frame::swap_reply(true, Some(&to)), shuffle_at);
    let actions = drain(&mut node);
    assert_eq!(frames_on(&actions, drop_conn), [frame::rewire(&to)]);
    assert_eq!(closes(&actions), [ConnId(drop_conn)]);
    assert!(active(&node).contains(&"ws://localhost:4009".to_owned()));
    assert_eq!(active(&node).len(), 2);
    // The next shuffle trades nothing: the rounds are over.
    node.handle_timeout(ms(4_000));
    assert!(dials(&drain(&mut node)).is_empty());
}

#[test]
fn a_rewired_link_is_replaced_by_the_one_named_the_smaller_address_dialling() {
    let mut node = full_of_two();
    // To a larger address: we dial it, and it must accept.
    node.handle_text(ConnId(1), &frame::rewire(&Address::localhost(4030)), ms(5));
    let actions = drain(&mut node);
    assert_eq!(closes(&actions), [ConnId(1)]);
    assert_eq!(dialled_addresses(&actions), ["ws://localhost:4030"]);
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4030"), ConnId(8), ms(6));
    assert!(frames_on(&drain(&mut node), 8).contains(&frame::neighbor(true)));
    // To a smaller one: it dials us; we wait.
    node.handle_text(ConnId(2), &frame::rewire(&Address::localhost(4000)), ms(7));
    assert!(dials(&drain(&mut node)).is_empty());
}

#[test]
fn a_join_that_fails_is_tried_again_later_and_later() {
    let (mut node, actions) = started(overlay_config(&["ws://localhost:4002"], 5));
    let mut dial = dial_to(&actions, "ws://localhost:4002");
    let mut gaps = Vec::new();
    let mut now = ms(10);
    let mut last = Time::ZERO;
    for _ in 0..4 {
        node.handle_dial_failed(dial, now);
        // Not at once: the contact is down.
        assert!(dials(&drain(&mut node)).is_empty());
        let at = node.poll_timeout().expect("a retry is due");
        node.handle_timeout(at);
        dial = dial_to(&drain(&mut node), "ws://localhost:4002");
        gaps.push(at.since(last));
        last = at;
        now = at + Duration::from_millis(10);
    }
    assert!(
        gaps.windows(2).skip(1).all(|w| w[1] > w[0]),
        "backing off: {gaps:?}"
    );
}

#[test]
fn the_first_shuffles_come_every_rewire_period_then_every_shuffle_period() {
    let mut config = overlay_config(&[], 5);
    let sizes = config.overlay.as_mut().expect("set");
    sizes.rewire_rounds = 2;
    sizes.rewire_every = Duration::from_secs(1);
    sizes.shuffle_every = Duration::from_secs(8);
    let (mut node, _) = started(config);
    link_from(&mut node, 1, 4002, frame::JOIN, ms(1));
    link_from(&mut node, 2, 4003, frame::JOIN, ms(2));
    let mut shuffles = 0;
    for at in (10..=3_900).step_by(10) {
        node.handle_timeout(ms(at));
        let actions = drain(&mut node);
        shuffles += [1, 2]
            .into_iter()
            .map(|conn| of_type(frames_on(&actions, conn), "SHUFFLE").len())
            .sum::<usize>();
    }
    // Each period is drawn between half and one and a half of it: two rounds within
    // 2.5 s, and the third no sooner than 4 s after the second.
    assert_eq!(shuffles, 2);
}
