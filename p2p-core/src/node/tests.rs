//! Unit tests of the node, one behaviour each.
use super::*;
use std::time::Duration;

use crate::config::{Backoff, Limits};

/// The port of the node under test.
const PORT: u16 = 4001;

fn addr(text: &str) -> Address {
    text.parse().expect("a valid test address")
}

fn ms(millis: u64) -> Time {
    Time::from_millis(millis)
}

/// A node on [`PORT`] knowing `known`, with default limits and backoff.
fn config(known: &[&str]) -> Config {
    let mut config = Config::new(Address::localhost(PORT));
    config.known_peers = known.iter().map(|text| addr(text)).collect();
    config
}

/// A node made from `config`, started at time zero, and the actions of its start.
fn started(config: Config) -> (Node, Vec<Action>) {
    let mut node = Node::new(config, Vec::new());
    node.start(Time::ZERO);
    let actions = drain(&mut node);
    (node, actions)
}

fn drain(node: &mut Node) -> Vec<Action> {
    std::iter::from_fn(|| node.poll_action()).collect()
}

fn dials(actions: &[Action]) -> Vec<(DialId, Address)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Dial { dial, address } => Some((*dial, address.clone())),
            _ => None,
        })
        .collect()
}

fn dialled_addresses(actions: &[Action]) -> Vec<String> {
    dials(actions)
        .into_iter()
        .map(|(_, address)| address.to_string())
        .collect()
}

/// The dial to `address` among `actions`.
fn dial_to(actions: &[Action], address: &str) -> DialId {
    let address = addr(address);
    dials(actions)
        .into_iter()
        .find_map(|(dial, a)| (a == address).then_some(dial))
        .unwrap_or_else(|| panic!("no dial to {address} in {actions:?}"))
}

fn sends(actions: &[Action]) -> Vec<(ConnId, String)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send { conn, frame } => Some((*conn, frame.to_string())),
            _ => None,
        })
        .collect()
}

/// The frames among `actions` sent on `conn`, as handed over (shared, not copied).
fn frames_to(actions: &[Action], conn: ConnId) -> Vec<Payload> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { conn: c, frame } if *c == conn => Some(Arc::clone(frame)),
            _ => None,
        })
        .collect()
}

fn closes(actions: &[Action]) -> Vec<ConnId> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Close { conn } => Some(*conn),
            _ => None,
        })
        .collect()
}

fn persists(actions: &[Action]) -> Vec<Transaction> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Persist { transaction } => Some(transaction.clone()),
            _ => None,
        })
        .collect()
}

fn notices(actions: &[Action]) -> Vec<Notice> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Log(notice) => Some(notice.clone()),
            _ => None,
        })
        .collect()
}

fn refusals(actions: &[Action]) -> usize {
    notices(actions)
        .iter()
        .filter(|n| matches!(n, Notice::Refused { .. }))
        .count()
}

/// The actions other than log lines.
fn effects(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|action| !matches!(action, Action::Log(_)))
        .cloned()
        .collect()
}

/// The retry delays of the failed dials among `actions` (`None`: forgotten).
fn retry_delays(actions: &[Action]) -> Vec<Option<Duration>> {
    notices(actions)
        .into_iter()
        .filter_map(|notice| match notice {
            Notice::DialFailed { retry_in, .. } => Some(retry_in),
            _ => None,
        })
        .collect()
}

/// A HANDSHAKE frame our node sent, with its random `ext` nonce checked and cut off.
fn without_nonce(text: &str) -> String {
    let (body, nonce) = text
        .rsplit_once(r#","ext":""#)
        .unwrap_or_else(|| panic!("no ext nonce in {text}"));
    assert_eq!(
        nonce.len(),
        18,
        "16 hex digits, a quote and a brace: {nonce}"
    );
    assert!(nonce[..16].bytes().all(|b| b.is_ascii_hexdigit()));
    format!("{body}}}")
}

fn handshake_frame(list: &[&str]) -> String {
    let data = serde_json::to_string(list).expect("strings serialise");
    format!(r#"{{"type":"HANDSHAKE","data":{data}}}"#)
}

fn tx(amount: u64) -> Transaction {
    Transaction::create(Some("04ab"), amount, 1_700_000_000_000)
}

/// Opens every dial among `actions`, naming the connections 1, 2, … in order, and drains
/// what follows; returns each address with its connection.
/// The host wrote every frame of `actions` at `now`; returns what the node did then.
fn written(node: &mut Node, actions: &[Action], now: Time) -> Vec<Action> {
    for action in actions {
        if let Action::Send { conn, frame } = action {
            node.handle_written(*conn, frame.len(), now);
        }
    }
    drain(node)
}

fn open_all(node: &mut Node, actions: &[Action]) -> Vec<(Address, ConnId)> {
    let mut opened = Vec::new();
    for (n, (dial, address)) in dials(actions).into_iter().enumerate() {
        let conn = ConnId(n as u64 + 1);
        node.handle_dial_opened(dial, conn, ms(1));
        let actions = drain(node);
        written(node, &actions, ms(1));
        opened.push((address, conn));
    }
    opened
}

/// A started node whose known peers (4002, 4003, 4004) are all connected, on
/// connections 1, 2 and 3.
fn meshed() -> Node {
    let (mut node, actions) = started(config(&[
        "ws://localhost:4002",
        "ws://localhost:4003",
        "ws://localhost:4004",
    ]));
    let opened = open_all(&mut node, &actions);
    assert_eq!(
        opened,
        [
            (addr("ws://localhost:4002"), ConnId(1)),
            (addr("ws://localhost:4003"), ConnId(2)),
            (addr("ws://localhost:4004"), ConnId(3)),
        ]
    );
    node
}

/// [`meshed`] once its peers, which never said whether they are ours, are taken for
/// ones that are not (`Sync::settle` after their dials opened, at 1 ms).
fn meshed_and_told() -> Node {
    let mut node = meshed();
    let told = ms(1) + node.config().sync.settle;
    assert_eq!(node.poll_timeout(), Some(told));
    node.handle_timeout(told);
    drain(&mut node);
    node
}

/// Accepts connection `conn` and has it say it is `from` in a HANDSHAKE.
fn accept_from(node: &mut Node, conn: ConnId, from: &str, now: Time) -> Vec<Action> {
    node.handle_accepted(conn, now);
    node.handle_text(conn, &handshake_frame(&[from]), now);
    drain(node)
}

/// Fails `dial` at `now` and returns its retry delay (`None`: the address was forgotten).
fn fail_dial(node: &mut Node, dial: DialId, now: Time) -> Option<Duration> {
    node.handle_dial_failed(dial, now);
    let delays = retry_delays(&drain(node));
    assert_eq!(delays.len(), 1, "one failure reported");
    delays[0]
}

// Start.

#[test]
fn start_emits_listen_and_dials_every_known_peer() {
    let (node, actions) = started(config(&["ws://localhost:4002", "ws://localhost:4003"]));
    assert_eq!(
        actions.first(),
        Some(&Action::Listen {
            address: Address::localhost(PORT)
        })
    );
    assert_eq!(
        dialled_addresses(&actions),
        ["ws://localhost:4002", "ws://localhost:4003"]
    );
    assert_eq!(node.dialling().count(), 2);
}

#[test]
fn nothing_happens_before_start() {
    let mut node = Node::new(config(&["ws://localhost:4002"]), Vec::new());
    assert!(drain(&mut node).is_empty());
    assert_eq!(node.poll_timeout(), None);
}

#[test]
fn second_start_does_nothing() {
    let (mut node, _) = started(config(&["ws://localhost:4002"]));
    node.start(ms(5));
    assert!(drain(&mut node).is_empty());
}

#[test]
fn known_peers_never_include_itself_under_any_spelling() {
    let (_, actions) = started(config(&[
        "ws://localhost:4001",
        "ws://127.0.0.1:4001",
        "ws://localhost:4001/",
        "ws://[::1]:4001",
        "ws://LOCALHOST:4001",
        "ws://0.0.0.0:4001",
        "ws://localhost:4002",
    ]));
    assert_eq!(dialled_addresses(&actions), ["ws://localhost:4002"]);
}

#[test]
fn handshake_listing_itself_under_any_spelling_dials_only_others() {
    let (mut node, _) = started(config(&[]));
    node.handle_accepted(ConnId(10), ms(1));
    node.handle_text(
        ConnId(10),
        &handshake_frame(&[
            "ws://localhost:4002",
            "ws://127.0.0.1:4001",
            "ws://localhost:4001/",
            "ws://[::1]:4001",
            "ws://localhost:4001",
        ]),
        ms(1),
    );
    assert_eq!(
        dialled_addresses(&drain(&mut node)),
        ["ws://localhost:4002"]
    );
}

#[test]
fn aliases_of_itself_are_never_dialled() {
    let mut config = Config::new(addr("ws://192.168.1.5:4001"));
    config.aliases = vec![Address::localhost(PORT)];
    config.known_peers = vec![addr("ws://127.0.0.1:4001")];
    let (mut node, actions) = started(config);
    assert!(dials(&actions).is_empty());
    node.handle_accepted(ConnId(10), ms(1));
    node.handle_text(
        ConnId(10),
        &handshake_frame(&["ws://192.168.1.5:4001/", "ws://[::1]:4001"]),
        ms(1),
    );
    assert!(dials(&drain(&mut node)).is_empty());
}

#[test]
fn two_spellings_of_one_known_peer_give_one_dial() {
    let (_, actions) = started(config(&[
        "ws://localhost:4002",
        "ws://127.0.0.1:4002/",
        "ws://[::1]:4002",
    ]));
    assert_eq!(dialled_addresses(&actions), ["ws://localhost:4002"]);
}

#[test]
fn handshake_spelling_a_dialled_peer_differently_starts_no_second_dial() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    node.handle_accepted(ConnId(10), ms(1));
    node.handle_text(
        ConnId(10),
        &handshake_frame(&["ws://127.0.0.1:4002", "ws://[::1]:4002/"]),
        ms(1),
    );
    assert!(dials(&drain(&mut node)).is_empty());

    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(2));
    drain(&mut node);
    node.handle_text(
        ConnId(10),
        &handshake_frame(&["ws://127.0.0.1:4002/", "ws://[::ffff:127.0.0.1]:4002"]),
        ms(3),
    );
    assert!(dials(&drain(&mut node)).is_empty());
    assert_eq!(node.connected_addresses(), [addr("ws://localhost:4002")]);
}

// A dial opens.

#[test]
fn opened_dial_leaves_dialling_and_joins_connected_addresses() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(1));
    assert_eq!(node.dialling().count(), 0);
    assert_eq!(node.connected_addresses(), [addr("ws://localhost:4002")]);
}

#[test]
fn opened_dial_is_sent_a_handshake_of_own_address_then_every_connected_address() {
    let (mut node, actions) = started(config(&["ws://localhost:4002", "ws://localhost:4003"]));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(1));
    let sent = sends(&drain(&mut node));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, ConnId(1));
    assert_eq!(
        without_nonce(&sent[0].1),
        r#"{"type":"HANDSHAKE","data":["ws://localhost:4001","ws://localhost:4002"]}"#
    );
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4003"), ConnId(2), ms(2));
    let sent = sends(&drain(&mut node));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, ConnId(2));
    assert_eq!(
        without_nonce(&sent[0].1),
        r#"{"type":"HANDSHAKE","data":["ws://localhost:4001","ws://localhost:4002","ws://localhost:4003"]}"#
    );
}

// A HANDSHAKE arrives.

#[test]
fn handshake_dials_every_listed_address_not_itself_connected_or_being_dialled() {
    let (mut node, actions) = started(config(&["ws://localhost:4002", "ws://localhost:4003"]));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(1));
    drain(&mut node);
    node.handle_accepted(ConnId(10), ms(2));
    node.handle_text(
        ConnId(10),
        &handshake_frame(&[
            "ws://localhost:4004",
            "ws://localhost:4001",
            "ws://localhost:4002",
            "ws://localhost:4003",
            "ws://localhost:4005",
        ]),
        ms(2),
    );
    assert_eq!(
        dialled_addresses(&drain(&mut node)),
        ["ws://localhost:4004", "ws://localhost:4005"]
    );
}

#[test]
fn handshake_dials_at_once_a_listed_peer_waiting_out_its_backoff() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    let retry_in = fail_dial(&mut node, dial_to(&actions, "ws://localhost:4002"), ms(1));
    assert!(retry_in.is_some());
    let _ = accept_from(&mut node, ConnId(10), "ws://localhost:4003", ms(2));
    node.handle_text(
        ConnId(10),
        &handshake_frame(&["ws://localhost:4003", "ws://localhost:4002"]),
        ms(2),
    );
    assert_eq!(
        dialled_addresses(&drain(&mut node)),
        ["ws://localhost:4002"]
    );
}

#[test]
fn transaction_from_a_handshaken_inbound_peer_is_not_sent_back_to_it() {
    let mut node = meshed();
    // The peer spells itself differently from our dial to it.
    let _ = accept_from(&mut node, ConnId(10), "ws://127.0.0.1:4002", ms(2));
    let tx = tx(1);
    node.handle_text(ConnId(10), &tx.to_frame(), ms(3));
    let sent_to: Vec<ConnId> = sends(&drain(&mut node))
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(sent_to, [ConnId(2), ConnId(3)]);
}

// A dialled connection closes.

#[test]
fn closed_dial_leaves_connected_addresses() {
    let mut node = meshed();
    node.handle_closed(ConnId(1), ms(10));
    assert_eq!(
        node.connected_addresses(),
        [addr("ws://localhost:4003"), addr("ws://localhost:4004")]
    );
}

#[test]
fn handshake_after_a_closed_dial_no_longer_lists_it() {
    let (mut node, actions) = started(config(&[
        "ws://localhost:4002",
        "ws://localhost:4003",
        "ws://localhost:4004",
    ]));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(1));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4003"), ConnId(2), ms(1));
    node.handle_closed(ConnId(1), ms(2));
    drain(&mut node);
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4004"), ConnId(3), ms(3));
    let sent = sends(&drain(&mut node));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, ConnId(3));
    assert_eq!(
        without_nonce(&sent[0].1),
        r#"{"type":"HANDSHAKE","data":["ws://localhost:4001","ws://localhost:4003","ws://localhost:4004"]}"#
    );
}

#[test]
fn closed_dial_is_redialled_at_poll_timeout_after_backoff() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(1));
    drain(&mut node);
    let closed_at = ms(1000);
    node.handle_closed(ConnId(1), closed_at);
    assert!(dials(&drain(&mut node)).is_empty());

    let wake = node.poll_timeout().expect("a redial is pending");
    let initial = Backoff::default().initial;
    assert!(wake - closed_at >= initial / 2 && wake - closed_at <= initial);
    node.handle_timeout(Time::from_micros(wake.as_micros() - 1));
    assert!(dials(&drain(&mut node)).is_empty());
    node.handle_timeout(wake);
    assert_eq!(
        dialled_addresses(&drain(&mut node)),
        ["ws://localhost:4002"]
    );
}

// A dial fails.

#[test]
fn failed_dial_leaves_the_dialling_set() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    node.handle_dial_failed(dial_to(&actions, "ws://localhost:4002"), ms(1));
    assert_eq!(node.dialling().count(), 0);
    assert!(node.connected_addresses().is_empty());
}

/// Fails every dial to a known peer `failures` times, each retried at `poll_timeout`;
/// returns the retry delays.
fn retry_delays_of_a_dead_peer(seed: u64, failures: usize) -> Vec<Duration> {
    let mut config = config(&["ws://localhost:4002"]);
    config.seed = seed;
    config.backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        ..Backoff::default()
    };
    let (mut node, actions) = started(config);
    let mut dial = dial_to(&actions, "ws://localhost:4002");
    let mut now = ms(1);
    let mut delays = Vec::new();
    for _ in 0..failures {
        let delay = fail_dial(&mut node, dial, now).expect("a known peer is retried");
        assert_eq!(node.poll_timeout(), Some(now + delay));
        node.handle_timeout(Time::from_micros((now + delay).as_micros() - 1));
        assert!(
            dials(&drain(&mut node)).is_empty(),
            "no retry before its time"
        );
        now = now + delay;
        node.handle_timeout(now);
        dial = dial_to(&drain(&mut node), "ws://localhost:4002");
        delays.push(delay);
    }
    delays
}

#[test]
fn failed_dials_are_retried_with_capped_exponential_backoff_and_jitter() {
    let delays = retry_delays_of_a_dead_peer(7, 10);
    let mut jittered = false;
    for (n, delay) in delays.iter().enumerate() {
        let cap = (Duration::from_millis(100) * (1 << n)).min(Duration::from_secs(1));
        assert!(
            *delay >= cap / 2 && *delay <= cap,
            "retry {} after {delay:?}, not within [{:?}, {cap:?}]",
            n + 1,
            cap / 2
        );
        jittered |= *delay != cap;
    }
    assert!(jittered, "delays are jittered: {delays:?}");
}

#[test]
fn same_seed_gives_same_retry_delays() {
    assert_eq!(
        retry_delays_of_a_dead_peer(42, 8),
        retry_delays_of_a_dead_peer(42, 8)
    );
    assert_ne!(
        retry_delays_of_a_dead_peer(42, 8),
        retry_delays_of_a_dead_peer(43, 8)
    );
}

#[test]
fn learned_address_is_forgotten_after_forget_after_failed_dials() {
    let mut config = config(&[]);
    config.backoff.forget_after = 3;
    let (mut node, _) = started(config);
    let actions = accept_from(&mut node, ConnId(10), "ws://localhost:4005", ms(1));
    let mut dial = dial_to(&actions, "ws://localhost:4005");
    let mut now = ms(1);
    for _ in 1..3 {
        let delay = fail_dial(&mut node, dial, now).expect("retried before forget_after");
        now = now + delay;
        node.handle_timeout(now);
        dial = dial_to(&drain(&mut node), "ws://localhost:4005");
    }
    assert_eq!(fail_dial(&mut node, dial, now), None);
    assert_eq!(node.poll_timeout(), None);
    node.handle_timeout(now + Duration::from_secs(3600));
    assert!(dials(&drain(&mut node)).is_empty());
}

#[test]
fn known_peer_is_never_forgotten() {
    let mut config = config(&["ws://localhost:4002"]);
    config.backoff.forget_after = 3;
    let (mut node, actions) = started(config);
    let mut dial = dial_to(&actions, "ws://localhost:4002");
    let mut now = ms(1);
    for _ in 0..10 {
        let delay = fail_dial(&mut node, dial, now).expect("a known peer is retried");
        now = now + delay;
        node.handle_timeout(now);
        dial = dial_to(&drain(&mut node), "ws://localhost:4002");
    }
}

#[test]
fn learned_address_once_reached_is_never_forgotten() {
    let mut config = config(&[]);
    config.backoff.forget_after = 2;
    let (mut node, _) = started(config);
    let actions = accept_from(&mut node, ConnId(10), "ws://localhost:4005", ms(1));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4005"), ConnId(1), ms(2));
    node.handle_closed(ConnId(1), ms(3));
    drain(&mut node);
    let mut now = node.poll_timeout().expect("redial pending");
    node.handle_timeout(now);
    let mut dial = dial_to(&drain(&mut node), "ws://localhost:4005");
    for _ in 0..5 {
        let delay = fail_dial(&mut node, dial, now).expect("a reached peer is retried");
        now = now + delay;
        node.handle_timeout(now);
        dial = dial_to(&drain(&mut node), "ws://localhost:4005");
    }
}

// A dial times out.

#[test]
fn unanswered_dial_fails_at_dial_timeout() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    dial_to(&actions, "ws://localhost:4002");
    let timeout = Backoff::default().dial_timeout;
    assert_eq!(node.poll_timeout(), Some(Time::ZERO + timeout));

    node.handle_timeout(Time::from_micros((Time::ZERO + timeout).as_micros() - 1));
    assert!(retry_delays(&drain(&mut node)).is_empty());
    assert_eq!(node.dialling().count(), 1);

    node.handle_timeout(Time::ZERO + timeout);
    let actions = drain(&mut node);
    assert!(notices(&actions).contains(&Notice::DialFailed {
        address: addr("ws://localhost:4002"),
        attempt: 1,
        retry_in: retry_delays(&actions)[0],
    }));
    assert_eq!(node.dialling().count(), 0);
    assert!(node.poll_timeout().is_some(), "it is retried");
}

#[test]
fn dial_timeout_counts_toward_forgetting_a_learned_address() {
    let mut config = config(&[]);
    config.backoff.forget_after = 1;
    let (mut node, _) = started(config);
    let actions = accept_from(&mut node, ConnId(10), "ws://localhost:4005", ms(0));
    dial_to(&actions, "ws://localhost:4005");
    node.handle_timeout(Time::ZERO + Backoff::default().dial_timeout);
    assert_eq!(retry_delays(&drain(&mut node)), [None]);
    assert_eq!(node.poll_timeout(), None);
}

#[test]
fn dial_opened_after_its_timeout_is_closed() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    let dial = dial_to(&actions, "ws://localhost:4002");
    node.handle_timeout(Time::ZERO + Backoff::default().dial_timeout);
    drain(&mut node);
    node.handle_dial_opened(dial, ConnId(9), ms(10_001));
    assert_eq!(
        effects(&drain(&mut node)),
        [Action::Close { conn: ConnId(9) }]
    );
    assert!(node.connected_addresses().is_empty());
}

#[test]
fn failure_reported_after_a_dial_timed_out_is_not_counted_again() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    let dial = dial_to(&actions, "ws://localhost:4002");
    let timed_out_at = Time::ZERO + Backoff::default().dial_timeout;
    node.handle_timeout(timed_out_at);
    drain(&mut node);
    let retry_at = node.poll_timeout();
    node.handle_dial_failed(dial, timed_out_at);
    assert_eq!(drain(&mut node), []);
    assert_eq!(node.poll_timeout(), retry_at);
}

#[test]
fn early_or_repeated_timeouts_do_nothing() {
    let (mut node, _) = started(config(&["ws://localhost:4002"]));
    for millis in [0, 1, 1, 500] {
        node.handle_timeout(ms(millis));
    }
    assert_eq!(drain(&mut node), []);
    assert_eq!(node.dialling().count(), 1);
}

// Transactions.

#[test]
fn the_action_queue_keeps_little_room_once_a_burst_is_drained() {
    let mut node = meshed();
    node.handle_accepted(ConnId(10), ms(2));
    for n in 0..5_000 {
        let frame = format!(r#"{{"type":"TRANSACTION","data":{}}}"#, tx(n).body());
        node.handle_text(ConnId(10), &frame, ms(3));
    }
    assert!(node.actions.len() > 5_000, "{}", node.actions.len());
    let actions = drain(&mut node);
    assert_eq!(persists(&actions).len(), 5_000);
    assert!(
        node.actions.capacity() <= ACTIONS_KEPT,
        "{}",
        node.actions.capacity()
    );
}

#[test]
fn new_transaction_is_persisted_and_sent_unchanged_on_every_open_dialled_connection() {
    let mut node = meshed();
    node.handle_accepted(ConnId(10), ms(2));
    let text = r#"{"z":1,"fromAddress":null,"amount":5,"hash":"abc","extra":[1,{"b":2}]}"#;
    let tx = Transaction::from_json(text).unwrap();
    let frame = format!(r#"{{"type":"TRANSACTION","data":{text}}}"#);
    node.handle_text(ConnId(10), &frame, ms(3));
    let actions = drain(&mut node);
    assert_eq!(persists(&actions), [tx]);
    assert_eq!(
        sends(&actions),
        [
            (ConnId(1), frame.clone()),
            (ConnId(2), frame.clone()),
            (ConnId(3), frame)
        ]
    );
    assert!(node.has_transaction("abc"));
}

#[test]
fn new_transaction_is_not_sent_back_on_the_dial_it_came_from() {
    let mut node = meshed();
    node.handle_text(ConnId(1), &tx(1).to_frame(), ms(3));
    let actions = drain(&mut node);
    assert_eq!(persists(&actions).len(), 1);
    let sent_to: Vec<ConnId> = sends(&actions).into_iter().map(|(c, _)| c).collect();
    assert_eq!(sent_to, [ConnId(2), ConnId(3)]);
}

#[test]
fn seen_transaction_is_dropped() {
    let mut node = meshed();
    node.handle_accepted(ConnId(10), ms(2));
    node.handle_accepted(ConnId(11), ms(2));
    node.handle_text(ConnId(10), &tx(1).to_frame(), ms(3));
    drain(&mut node);
    node.handle_text(ConnId(11), &tx(1).to_frame(), ms(4));
    node.handle_text(ConnId(2), &tx(1).to_frame(), ms(4));
    assert_eq!(effects(&drain(&mut node)), []);
    assert_eq!(node.pool().len(), 1);
}

#[test]
fn stored_pool_counts_as_seen() {
    let mut node = Node::new(config(&["ws://localhost:4002"]), vec![tx(1), tx(2)]);
    node.start(Time::ZERO);
    let actions = drain(&mut node);
    assert_eq!(open_all(&mut node, &actions).len(), 1);
    node.handle_accepted(ConnId(10), ms(2));
    node.handle_text(ConnId(10), &tx(2).to_frame(), ms(3));
    assert_eq!(effects(&drain(&mut node)), []);
    assert_eq!(node.pool(), [tx(1), tx(2)]);
}

#[test]
fn stored_pool_keeps_one_copy_of_each_hash_in_order() {
    let node = Node::new(config(&[]), vec![tx(1), tx(2), tx(1), tx(3)]);
    assert_eq!(node.pool(), [tx(1), tx(2), tx(3)]);
}

#[test]
fn added_transaction_is_persisted_and_sent_on_every_dial_once() {
    let mut node = meshed();
    assert!(node.add_transaction(tx(1), ms(2)));
    let actions = drain(&mut node);
    assert_eq!(persists(&actions), [tx(1)]);
    let sent_to: Vec<ConnId> = sends(&actions).into_iter().map(|(c, _)| c).collect();
    assert_eq!(sent_to, [ConnId(1), ConnId(2), ConnId(3)]);
    assert!(!node.add_transaction(tx(1), ms(3)));
    assert_eq!(effects(&drain(&mut node)), []);
}

// STATUS_REQUEST.

#[test]
fn status_request_is_answered_with_status_on_the_same_connection() {
    let (mut node, actions) = started(config(&["ws://localhost:4002", "ws://localhost:4003"]));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(1));
    node.add_transaction(tx(1), ms(1));
    node.handle_accepted(ConnId(10), ms(2));
    drain(&mut node);
    node.handle_text(ConnId(10), r#"{"type":"STATUS_REQUEST"}"#, ms(3));
    assert_eq!(
        effects(&drain(&mut node)),
        [Action::Send {
            conn: ConnId(10),
            frame: r#"{"type":"STATUS","data":{"address":"ws://localhost:4001","connected":["ws://localhost:4002"],"dialling":["ws://localhost:4003"],"inbound":1,"pages":0,"watchers":0,"pool":1,"sent":{"handshake":1,"transaction":1,"transactions":0,"status":0,"hello":0,"sync":0,"txs":0,"event":0,"membership":0,"ihave":0,"graft":0,"tree":0},"overlay":null}}"#.into(),
        }]
    );
}

// Frames the node cannot use.

#[test]
fn frames_it_cannot_use_are_refused_without_effect() {
    let mut config = config(&[]);
    config.limits.max_refused_frames = u32::MAX;
    let (mut node, _) = started(config);
    node.handle_accepted(ConnId(10), ms(1));
    drain(&mut node);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bad = [
        "not json",
        "",
        "{",
        "[]",
        "null",
        "\u{0}\u{fffd}",
        deep.as_str(),
        r#"{"data":[]}"#,
        r#"{"type":7}"#,
        r#"{"type":null,"data":[]}"#,
        r#"{"type":"HANDSHAKE"}"#,
        r#"{"type":"HANDSHAKE","data":null}"#,
        r#"{"type":"HANDSHAKE","data":"ws://localhost:4002"}"#,
        r#"{"type":"HANDSHAKE","data":[1,2]}"#,
        r#"{"type":"HANDSHAKE","data":{"a":"ws://localhost:4002"}}"#,
        r#"{"type":"TRANSACTION"}"#,
        r#"{"type":"TRANSACTION","data":[]}"#,
        r#"{"type":"TRANSACTION","data":"abc"}"#,
        r#"{"type":"TRANSACTION","data":{"amount":1}}"#,
        r#"{"type":"TRANSACTION","data":{"hash":""}}"#,
        r#"{"type":"TRANSACTION","data":{"hash":7}}"#,
    ];
    for text in bad {
        node.handle_text(ConnId(10), text, ms(2));
        let actions = drain(&mut node);
        assert_eq!(refusals(&actions), 1, "{text:.40}");
        assert_eq!(effects(&actions), [], "{text:.40}");
    }
    assert!(node.pool().is_empty());
}

#[test]
fn binary_frames_are_refused() {
    let (mut node, _) = started(config(&[]));
    node.handle_accepted(ConnId(10), ms(1));
    drain(&mut node);
    node.handle_binary(ConnId(10), 12, ms(2));
    let actions = drain(&mut node);
    assert_eq!(
        notices(&actions),
        [Notice::Refused {
            conn: ConnId(10),
            error: FrameError::Binary(12)
        }]
    );
}

#[test]
fn frames_over_max_frame_bytes_are_refused() {
    let mut config = config(&[]);
    config.limits.max_frame_bytes = 100;
    let (mut node, _) = started(config);
    node.handle_accepted(ConnId(10), ms(1));
    drain(&mut node);
    let frame = tx(1).to_frame();
    assert!(frame.len() > 100);
    node.handle_text(ConnId(10), &frame, ms(2));
    let actions = drain(&mut node);
    assert_eq!(
        notices(&actions),
        [Notice::Refused {
            conn: ConnId(10),
            error: FrameError::TooLarge {
                len: frame.len(),
                limit: 100
            }
        }]
    );
    assert_eq!(effects(&actions), []);
}

#[test]
fn connection_sending_max_refused_frames_unusable_frames_is_closed() {
    let (mut node, _) = started(config(&[]));
    let limit = Limits::default().max_refused_frames;
    node.handle_accepted(ConnId(10), ms(1));
    drain(&mut node);
    for n in 1..limit {
        if n % 2 == 0 {
            node.handle_binary(ConnId(10), 3, ms(2));
        } else {
            node.handle_text(ConnId(10), "garbage", ms(2));
        }
    }
    assert_eq!(closes(&drain(&mut node)), []);
    node.handle_text(ConnId(10), "garbage", ms(3));
    let actions = drain(&mut node);
    assert_eq!(closes(&actions), [ConnId(10)]);
    assert!(notices(&actions).contains(&Notice::Misbehaving {
        conn: ConnId(10),
        peer: None
    }));
}

#[test]
fn frames_from_a_connection_being_closed_are_ignored() {
    let mut config = config(&[]);
    config.limits.max_refused_frames = 1;
    let (mut node, _) = started(config);
    node.handle_accepted(ConnId(10), ms(1));
    node.handle_text(ConnId(10), "garbage", ms(2));
    assert_eq!(closes(&drain(&mut node)), [ConnId(10)]);
    node.handle_text(ConnId(10), "garbage", ms(3));
    node.handle_binary(ConnId(10), 3, ms(3));
    node.handle_text(ConnId(10), &tx(1).to_frame(), ms(3));
    assert_eq!(drain(&mut node), []);
    assert!(node.pool().is_empty());
}

#[test]
fn unknown_types_are_ignored_and_not_counted_as_refused() {
    let (mut node, _) = started(config(&[]));
    let limit = Limits::default().max_refused_frames;
    node.handle_accepted(ConnId(10), ms(1));
    drain(&mut node);
    for _ in 0..limit * 4 {
        node.handle_text(ConnId(10), r#"{"type":"PING","data":{"x":1}}"#, ms(2));
    }
    let actions = drain(&mut node);
    assert_eq!(effects(&actions), []);
    assert_eq!(refusals(&actions), 0);
    assert!(notices(&actions).contains(&Notice::UnknownType {
        conn: ConnId(10),
        kind: "PING".to_owned()
    }));
    // One short of the limit of frames it cannot use still leaves the connection open.
    for _ in 1..limit {
        node.handle_text(ConnId(10), "garbage", ms(3));
    }
    assert_eq!(closes(&drain(&mut node)), []);
}

#[test]
fn handshake_addresses_that_are_not_ws_urls_are_not_dialled() {
    let (mut node, _) = started(config(&[]));
    node.handle_accepted(ConnId(10), ms(1));
    node.handle_text(
        ConnId(10),
        &handshake_frame(&[
            "http://localhost:4002",
            "wss://localhost:4003",
            "localhost:4004",
            "ws://localhost:4005/path",
            "",
            "ws://localhost:99999",
            "ws://localhost:4006",
        ]),
        ms(1),
    );
    let actions = drain(&mut node);
    assert_eq!(dialled_addresses(&actions), ["ws://localhost:4006"]);
    assert!(notices(&actions).contains(&Notice::Handshake {
        conn: ConnId(10),
        from: None,
        listed: 7,
        invalid: 6,
    }));
}

#[test]
fn handshake_addresses_beyond_max_handshake_addresses_are_ignored() {
    let mut config = config(&[]);
    config.limits.max_handshake_addresses = 10;
    config.limits.max_concurrent_dials = 100_000;
    let (mut node, _) = started(config);
    node.handle_accepted(ConnId(10), ms(1));
    let listed: Vec<String> = (5000..8000)
        .map(|p| format!("ws://localhost:{p}"))
        .collect();
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    node.handle_text(ConnId(10), &handshake_frame(&listed), ms(1));
    let actions = drain(&mut node);
    assert_eq!(dialled_addresses(&actions), listed[..10]);
    assert!(notices(&actions).contains(&Notice::Limit {
        what: "addresses taken from one HANDSHAKE",
        limit: 10
    }));
}

// Limits.

#[test]
fn inbound_connections_over_max_inbound_are_closed() {
    let mut config = config(&[]);
    config.limits.max_inbound = 2;
    let (mut node, _) = started(config);
    node.handle_accepted(ConnId(10), ms(1));
    node.handle_accepted(ConnId(11), ms(1));
    assert_eq!(closes(&drain(&mut node)), []);
    node.handle_accepted(ConnId(12), ms(1));
    assert_eq!(closes(&drain(&mut node)), [ConnId(12)]);
    node.handle_closed(ConnId(12), ms(2));
    assert_eq!(node.status().inbound, 2);
}

#[test]
fn closed_inbound_connection_frees_its_slot() {
    let mut config = config(&[]);
    config.limits.max_inbound = 1;
    let (mut node, _) = started(config);
    node.handle_accepted(ConnId(10), ms(1));
    node.handle_closed(ConnId(10), ms(2));
    node.handle_accepted(ConnId(11), ms(3));
    assert_eq!(closes(&drain(&mut node)), []);
    assert_eq!(node.status().inbound, 1);
}

#[test]
fn address_book_stops_growing_at_max_address_book() {
    let mut config = config(&["ws://localhost:4002"]);
    config.limits.max_address_book = 3;
    config.limits.learned_book_share = 100;
    let (mut node, _) = started(config);
    node.handle_accepted(ConnId(10), ms(1));
    let listed: Vec<String> = (5000..5010)
        .map(|p| format!("ws://localhost:{p}"))
        .collect();
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    node.handle_text(ConnId(10), &handshake_frame(&listed), ms(1));
    let actions = drain(&mut node);
    assert_eq!(dialled_addresses(&actions), listed[..2]);
    assert!(notices(&actions).contains(&Notice::Limit {
        what: "address book",
        limit: 3
    }));
}

#[test]
fn max_concurrent_dials_caps_dials_in_flight_and_the_rest_start_as_slots_free() {
    let mut config = config(&[
        "ws://localhost:4002",
        "ws://localhost:4003",
        "ws://localhost:4004",
        "ws://localhost:4005",
        "ws://localhost:4006",
    ]);
    config.limits.max_concurrent_dials = 2;
    let (mut node, actions) = started(config);
    assert_eq!(
        dialled_addresses(&actions),
        ["ws://localhost:4002", "ws://localhost:4003"]
    );

    node.handle_dial_failed(dial_to(&actions, "ws://localhost:4002"), ms(1));
    let after_failure = drain(&mut node);
    assert_eq!(dialled_addresses(&after_failure), ["ws://localhost:4004"]);

    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4003"), ConnId(1), ms(2));
    let after_open = drain(&mut node);
    assert_eq!(dialled_addresses(&after_open), ["ws://localhost:4005"]);

    // 4004 and 4005 fill both slots: the dial timeout of 4004 frees one for 4006.
    assert_eq!(node.dialling().count(), 2);
    node.handle_timeout(ms(1) + Backoff::default().dial_timeout);
    assert_eq!(
        dialled_addresses(&drain(&mut node)),
        ["ws://localhost:4006"]
    );
    assert_eq!(node.dialling().count(), 2);
}

#[test]
fn poll_timeout_waits_for_a_dial_slot_rather_than_a_due_dial() {
    let mut config = config(&["ws://localhost:4002", "ws://localhost:4003"]);
    config.limits.max_concurrent_dials = 1;
    let (node, _) = started(config);
    // 4003 is due now but has no slot: the next thing that can happen is 4002 timing out.
    assert_eq!(
        node.poll_timeout(),
        Some(Time::ZERO + Backoff::default().dial_timeout)
    );
}

#[test]
fn poll_timeout_is_none_when_nothing_is_pending() {
    let (node, _) = started(config(&[]));
    assert_eq!(node.poll_timeout(), None);

    let mut node = meshed_and_told();
    node.handle_accepted(ConnId(10), ms(1002));
    assert_eq!(node.poll_timeout(), None);
}

#[test]
fn frames_not_yet_written_set_a_stall_check_until_written() {
    let mut node = meshed_and_told();
    node.handle_accepted(ConnId(10), ms(1002));
    node.handle_text(ConnId(10), r#"{"type":"STATUS_REQUEST"}"#, ms(1003));
    let actions = drain(&mut node);
    let stall = node.config().limits.stall_timeout;
    assert_eq!(node.poll_timeout(), Some(ms(1003) + stall));
    written(&mut node, &actions, ms(1004));
    assert_eq!(node.poll_timeout(), None);
}

// Relay and catch-up between nodes of ours.

/// Accepts connection `conn` and has it say, in our marked HANDSHAKE, it is `from`.
fn accept_ours(node: &mut Node, conn: ConnId, from: &str, now: Time) -> Vec<Action> {
    node.handle_accepted(conn, now);
    node.handle_text(conn, &frame::handshake(&addr(from), [], 0x5eed), now);
    drain(node)
}

/// [`meshed`], and 4002 and 4003 dialled it back on connections 10 and 11, saying in
/// their HANDSHAKEs they are ours (at 5 ms).
fn meshed_with_ours_dialling_in() -> Node {
    let mut node = meshed();
    accept_ours(&mut node, ConnId(10), "ws://localhost:4002", ms(5));
    accept_ours(&mut node, ConnId(11), "ws://localhost:4003", ms(5));
    node
}

fn sync_frames(actions: &[Action]) -> Vec<(ConnId, String)> {
    sends(actions)
        .into_iter()
        .filter(|(_, text)| text.starts_with(r#"{"type":"SYNC""#))
        .collect()
}

#[test]
fn transaction_from_one_of_ours_goes_only_to_peers_not_of_ours() {
    let mut node = meshed_with_ours_dialling_in();
    // 4002 and 4003 are ours; 4004 said it is not (a JavaScript node).
    accept_from(&mut node, ConnId(12), "ws://localhost:4004", ms(5));
    node.handle_text(ConnId(10), &tx(1).to_frame(), ms(6));
    let sent = sends(&drain(&mut node));
    assert_eq!(sent, [(ConnId(3), tx(1).to_frame())]);
}

#[test]
fn a_peer_that_has_not_said_what_it_is_gets_what_came_from_ours_once_it_says_it_is_not_ours() {
    let mut node = meshed_with_ours_dialling_in();
    // 4004 has not said yet: it might be ours, whose origin pushed it already.
    node.handle_text(ConnId(10), &tx(1).to_frame(), ms(6));
    assert_eq!(sends(&drain(&mut node)), []);
    // It dials back with a HANDSHAKE without `ext`: a JavaScript node, which never
    // catches up. It gets what it missed while fresh, then the rest as it comes.
    let actions = accept_from(&mut node, ConnId(12), "ws://localhost:4004", ms(8));
    assert_eq!(sends(&actions), [(ConnId(3), tx(1).to_frame())]);
    node.handle_text(ConnId(10), &tx(2).to_frame(), ms(9));
    assert_eq!(sends(&drain(&mut node)), [(ConnId(3), tx(2).to_frame())]);
}

#[test]
fn a_peer_that_keeps_changing_its_story_is_replayed_to_once() {
    let mut node = meshed();
    accept_ours(&mut node, ConnId(10), "ws://localhost:4002", ms(5));
    node.handle_text(ConnId(10), &tx(1).to_frame(), ms(6));
    drain(&mut node);
    let pushes_to_4004 = |actions: &[Action]| {
        sends(actions)
            .into_iter()
            .filter(|(c, f)| *c == ConnId(3) && f.starts_with(r#"{"type":"TRANSACTION""#))
            .count()
    };
    assert_eq!(
        pushes_to_4004(&accept_from(
            &mut node,
            ConnId(12),
            "ws://localhost:4004",
            ms(7)
        )),
        1
    );
    for (i, conn) in (13..20).map(ConnId).enumerate() {
        let now = ms(8 + i as u64);
        let actions = if i % 2 == 0 {
            accept_ours(&mut node, conn, "ws://localhost:4004", now)
        } else {
            accept_from(&mut node, conn, "ws://localhost:4004", now)
        };
        assert_eq!(pushes_to_4004(&actions), 0, "{actions:?}");
    }
}

#[test]
fn a_peer_that_never_says_what_it_is_is_taken_for_one_not_of_ours_after_settle() {
    let mut node = meshed_with_ours_dialling_in();
    node.handle_text(ConnId(10), &tx(1).to_frame(), ms(6));
    assert_eq!(sends(&drain(&mut node)), []);
    let settle = node.config().sync.settle;
    // 4004's dial opened at 1 ms and it never said a word.
    assert_eq!(node.poll_timeout(), Some(ms(1) + settle));
    node.handle_timeout(ms(1) + settle);
    assert_eq!(sends(&drain(&mut node)), [(ConnId(3), tx(1).to_frame())]);
}

#[test]
fn a_peer_taken_late_for_one_not_of_ours_gets_all_it_was_not_passed_since_the_dial_opened() {
    let mut node = meshed_with_ours_dialling_in();
    let settle = node.config().sync.settle;
    node.handle_text(ConnId(10), &tx(1).to_frame(), ms(6));
    node.handle_text(ConnId(10), &tx(2).to_frame(), ms(900));
    assert_eq!(sends(&drain(&mut node)), []);
    // The host wakes the node long after the wait for 4004 ended (at 1 ms + settle).
    node.handle_timeout(ms(6) + settle + Duration::from_millis(500));
    let sent = sends(&drain(&mut node));
    let pushed: Vec<(ConnId, String)> = sent
        .into_iter()
        .filter(|(_, f)| f.starts_with(r#"{"type":"TRANSACTION""#))
        .collect();
    assert_eq!(
        pushed,
        [(ConnId(3), tx(1).to_frame()), (ConnId(3), tx(2).to_frame())]
    );
}

/// [`meshed`] with 4002 and 4003 (connections 1 and 2) ours, by HELLO, and 4004
/// (connection 3) a JavaScript node (it dialled us with a plain HANDSHAKE).
fn meshed_two_ours_one_not() -> Node {
    let mut node = meshed();
    for conn in [ConnId(1), ConnId(2)] {
        node.handle_text(conn, r#"{"type":"HELLO","data":1}"#, ms(2));
    }
    accept_from(&mut node, ConnId(12), "ws://localhost:4004", ms(2));
    drain(&mut node);
    node
}

#[test]
fn pushes_handled_before_the_host_takes_actions_go_to_each_peer_of_ours_in_one_frame() {
    let mut node = meshed_two_ours_one_not();
    let burst: Vec<Transaction> = (1..=5).map(tx).collect();
    for one in &burst {
        assert!(node.add_transaction(one.clone(), ms(3)));
    }
    let actions = drain(&mut node);
    let frames = |conn| frames_to(&actions, conn);
    let (one, two, js) = (frames(ConnId(1)), frames(ConnId(2)), frames(ConnId(3)));
    assert_eq!((one.len(), two.len()), (1, 1), "{actions:?}");
    assert!(Arc::ptr_eq(&one[0], &two[0]), "one frame, shared");
    assert_eq!(
        frame::decode(&one[0], usize::MAX),
        Ok(frame::Frame::Transactions(burst.clone()))
    );
    // The JavaScript node gets the curriculum's frames, one transaction each.
    let js: Vec<String> = js.iter().map(|f| f.to_string()).collect();
    let expected: Vec<String> = burst.iter().map(Transaction::to_frame).collect();
    assert_eq!(js, expected);
    assert_eq!(node.sent.transactions, 2);
    // One new transaction alone goes as a TRANSACTION frame to ours too.
    node.add_transaction(tx(6), ms(4));
    let sent = sends(&drain(&mut node));
    assert!(sent.iter().all(|(_, f)| *f == tx(6).to_frame()), "{sent:?}");
    assert_eq!(sent.len(), 3);
}

#[test]
fn a_peer_of_ours_that_reads_later_is_sent_the_very_frames_the_others_got() {
    let mut config = config(&["ws://localhost:4002", "ws://localhost:4003"]);
    config.limits.max_send_buffer = 2_000;
    let (mut node, actions) = started(config);
    open_all(&mut node, &actions);
    for conn in [ConnId(1), ConnId(2)] {
        node.handle_text(conn, r#"{"type":"HELLO","data":1}"#, ms(2));
    }
    drain(&mut node);
    // Connection 2 has its buffer full of a first burst it has not read.
    for n in 1..=30 {
        node.add_transaction(tx(n), ms(3));
    }
    let first = drain(&mut node);
    for frame in frames_to(&first, ConnId(1)) {
        node.handle_written(ConnId(1), frame.len(), ms(3));
    }
    drain(&mut node);
    // A second burst: 1 reads everything at once, 2 only once it has read the first.
    let burst: Vec<Transaction> = (31..=1000).map(tx).collect();
    for one in &burst {
        node.add_transaction(one.clone(), ms(4));
    }
    let after = drain(&mut node);
    let mut to_one = frames_to(&after, ConnId(1));
    let mut to_two = frames_to(&after, ConnId(2));
    assert!(to_two.is_empty(), "2 has no room for the second burst yet");
    let mut read = 0;
    while let Some(frame) = to_one.get(read).cloned() {
        node.handle_written(ConnId(1), frame.len(), ms(5));
        to_one.extend(frames_to(&drain(&mut node), ConnId(1)));
        read += 1;
    }
    let mut unread: Vec<Payload> = frames_to(&first, ConnId(2));
    unread.extend(to_two.iter().cloned());
    while let Some(frame) = unread.pop() {
        node.handle_written(ConnId(2), frame.len(), ms(5));
        let more = frames_to(&drain(&mut node), ConnId(2));
        unread.extend(more.iter().cloned());
        to_two.extend(more);
    }
    assert!(to_two.len() > 1, "{} frames", to_two.len());
    assert_eq!(to_one.len(), to_two.len());
    for (a, b) in to_one.iter().zip(&to_two) {
        assert!(Arc::ptr_eq(a, b), "each frame built once for both peers");
    }
    let pushed: Vec<Transaction> = to_two
        .iter()
        .flat_map(|f| match frame::decode(f, usize::MAX) {
            Ok(frame::Frame::Transactions(txs)) => txs,
            Ok(frame::Frame::Transaction(tx)) => vec![tx],
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pushed, burst);
}

#[test]
fn a_transactions_frame_from_one_of_ours_is_pooled_and_passed_only_to_others() {
    let mut node = meshed_two_ours_one_not();
    accept_ours(&mut node, ConnId(10), "ws://localhost:4002", ms(3));
    let packed = format!(
        r#"{{"type":"TRANSACTIONS","data":[{},{}]}}"#,
        tx(1).body(),
        tx(2).body()
    );
    node.handle_text(ConnId(10), &packed, ms(4));
    let actions = drain(&mut node);
    assert_eq!(persists(&actions), [tx(1), tx(2)]);
    assert_eq!(
        sends(&actions),
        [(ConnId(3), tx(1).to_frame()), (ConnId(3), tx(2).to_frame())]
    );
}

#[test]
fn a_peer_that_says_it_is_ours_is_never_passed_what_came_from_ours() {
    let mut node = meshed_with_ours_dialling_in();
    node.handle_text(ConnId(10), &tx(1).to_frame(), ms(6));
    drain(&mut node);
    node.handle_text(ConnId(3), r#"{"type":"HELLO","data":1}"#, ms(7));
    drain(&mut node);
    node.handle_text(ConnId(10), &tx(2).to_frame(), ms(8));
    assert_eq!(sends(&drain(&mut node)), []);
    // Nor later: its wait is over, and what the timeouts bring is catch-up only.
    while let Some(at) = node.poll_timeout().filter(|&at| at <= ms(60_000)) {
        node.handle_timeout(at);
        let actions = drain(&mut node);
        let pushed = sends(&actions)
            .into_iter()
            .any(|(_, f)| f.starts_with(r#"{"type":"TRANSACTION""#));
        assert!(!pushed, "{actions:?}");
        written(&mut node, &actions, at);
    }
}

#[test]
fn a_dial_that_opens_is_pushed_what_it_missed_while_fresh() {
    let (mut node, actions) = started(config(&["ws://localhost:4002", "ws://localhost:4003"]));
    let d2 = dial_to(&actions, "ws://localhost:4002");
    let d3 = dial_to(&actions, "ws://localhost:4003");
    node.handle_dial_opened(d2, ConnId(1), ms(1));
    drain(&mut node);
    node.add_transaction(tx(1), ms(10));
    assert_eq!(sends(&drain(&mut node)), [(ConnId(1), tx(1).to_frame())]);
    // The second dial opens while the transaction is fresh: it is pushed it at once.
    node.handle_dial_opened(d3, ConnId(2), ms(20));
    let sent = sends(&drain(&mut node));
    assert!(sent.contains(&(ConnId(2), tx(1).to_frame())), "{sent:?}");
    // Once it has settled, a dial that opens is left to catch-up.
    let settle = node.config().sync.settle;
    node.handle_closed(ConnId(2), ms(30));
    drain(&mut node);
    let redial = loop {
        let at = node.poll_timeout().expect("a redial");
        node.handle_timeout(at);
        if let Some((dial, _)) = dials(&drain(&mut node)).into_iter().next() {
            break dial;
        }
    };
    node.handle_dial_opened(redial, ConnId(3), ms(10) + settle);
    let sent = sends(&drain(&mut node));
    assert!(
        !sent.iter().any(|(_, f)| *f == tx(1).to_frame()),
        "{sent:?}"
    );
}

#[test]
fn transaction_from_a_javascript_peer_goes_to_every_other_peer() {
    let mut node = meshed();
    accept_ours(&mut node, ConnId(10), "ws://localhost:4002", ms(5));
    accept_from(&mut node, ConnId(12), "ws://localhost:4004", ms(5));
    node.handle_text(ConnId(12), &tx(2).to_frame(), ms(6));
    // Pushes to peers of ours are packed after the others: only the set matters.
    let mut targets: Vec<ConnId> = sends(&drain(&mut node))
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    targets.sort();
    assert_eq!(targets, [ConnId(1), ConnId(2)]);
}

#[test]
fn catch_up_opens_once_a_dialled_peer_has_shown_it_is_ours() {
    let mut node = meshed();
    let actions = accept_ours(&mut node, ConnId(10), "ws://localhost:4002", ms(5));
    let syncs = sync_frames(&actions);
    assert_eq!(syncs.len(), 1);
    assert_eq!(syncs[0].0, ConnId(1), "opened on the dialled connection");
    // A second HANDSHAKE from it on another connection opens nothing new.
    let again = accept_ours(&mut node, ConnId(11), "ws://localhost:4002", ms(6));
    assert!(sync_frames(&again).is_empty());
}

/// Wakes `node` at every timeout up to `until`, the host writing every frame at once;
/// returns the SYNC frames it sent, with when.
fn syncs_until(node: &mut Node, until: Time) -> Vec<(Time, ConnId, String)> {
    let mut syncs = Vec::new();
    while let Some(at) = node.poll_timeout().filter(|&at| at <= until) {
        node.handle_timeout(at);
        let actions = drain(node);
        written(node, &actions, at);
        syncs.extend(sync_frames(&actions).into_iter().map(|(c, f)| (at, c, f)));
    }
    syncs
}

#[test]
fn a_leader_opens_a_round_a_lull_after_its_pool_changes_once_the_change_has_settled() {
    // 4001 leads 4002 (the smaller address).
    let mut node = meshed();
    let actions = accept_ours(&mut node, ConnId(10), "ws://localhost:4002", ms(5));
    written(&mut node, &actions, ms(5));
    node.add_transaction(tx(3), ms(10));
    let actions = drain(&mut node);
    written(&mut node, &actions, ms(10));
    let sync = node.config().sync.clone();
    let due = ms(10) + sync.lull.max(sync.settle);
    let syncs = syncs_until(&mut node, ms(60_000));
    assert_eq!(
        syncs.iter().map(|(at, c, _)| (*at, *c)).collect::<Vec<_>>(),
        [(due, ConnId(1))],
        "one round, on the dialled connection"
    );
    assert!(crate::sync::is_opening(
        &match frame::decode(&syncs[0].2, usize::MAX) {
            Ok(Frame::Sync(ranges)) => ranges,
            other => panic!("not a SYNC: {other:?}"),
        }
    ));
    assert_eq!(node.poll_timeout(), None);
}

#[test]
fn a_busy_pool_still_gets_a_round_by_max_wait() {
    let mut node = meshed();
    let actions = accept_ours(&mut node, ConnId(10), "ws://localhost:4002", ms(5));
    written(&mut node, &actions, ms(5));
    let max_wait = node.config().sync.max_wait;
    let mut syncs = Vec::new();
    let mut now = ms(10);
    // A transaction every 100 ms for ten seconds: never a lull.
    for amount in 1..=100 {
        syncs.extend(syncs_until(&mut node, now));
        node.add_transaction(tx(amount), now);
        let actions = drain(&mut node);
        written(&mut node, &actions, now);
        now = now + Duration::from_millis(100);
    }
    let times: Vec<Time> = syncs.iter().map(|(at, _, _)| *at).collect();
    assert_eq!(times.first(), Some(&(ms(10) + max_wait)));
    // And again at most `max_wait` after the first change the last round did not cover.
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] <= max_wait + Duration::from_millis(100),
            "{times:?}"
        );
    }
    assert!(times.len() >= 3, "{times:?}");
}

/// Two nodes of ours, `a` on 4001 and `b` on 4002, connected both ways, with frames
/// passed between them by hand until both are quiet.
fn converse(a: &mut Node, b: &mut Node) -> usize {
    let mut bodies = 0;
    let (mut to_a, mut to_b): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    // a's dial to b is ConnId(1) at a and ConnId(101) at b; b's dial to a is ConnId(2)
    // at b and ConnId(102) at a. Whichever end a frame is sent on, it reaches the other.
    for _ in 0..100 {
        for action in drain(a) {
            if let Action::Send { frame, .. } = action {
                to_b.push(frame.to_string());
            }
        }
        for action in drain(b) {
            if let Action::Send { frame, .. } = action {
                to_a.push(frame.to_string());
            }
        }
        if to_a.is_empty() && to_b.is_empty() {
            return bodies;
        }
        for text in to_b.drain(..) {
            bodies += usize::from(text.starts_with(r#"{"type":"TXS""#));
            b.handle_text(ConnId(101), &text, ms(50));
        }
        for text in to_a.drain(..) {
            bodies += usize::from(text.starts_with(r#"{"type":"TXS""#));
            a.handle_text(ConnId(102), &text, ms(50));
        }
    }
    panic!("the conversation did not end");
}

fn pair(pool_a: Vec<Transaction>, pool_b: Vec<Transaction>) -> (Node, Node) {
    let mut a = Node::new(config(&["ws://localhost:4002"]), pool_a);
    let mut cb = Config::new(Address::localhost(4002));
    cb.known_peers = vec![Address::localhost(4001)];
    let mut b = Node::new(cb, pool_b);
    a.start(ms(0));
    b.start(ms(0));
    let da = dial_to(&drain(&mut a), "ws://localhost:4002");
    let db = dial_to(&drain(&mut b), "ws://localhost:4001");
    a.handle_accepted(ConnId(102), ms(1));
    b.handle_accepted(ConnId(101), ms(1));
    a.handle_dial_opened(da, ConnId(1), ms(1));
    b.handle_dial_opened(db, ConnId(2), ms(1));
    (a, b)
}

#[test]
fn connected_nodes_of_ours_catch_up_on_what_each_lacks() {
    let shared: Vec<Transaction> = (1..=50).map(tx).collect();
    let only_a: Vec<Transaction> = (51..=53).map(tx).collect();
    let only_b: Vec<Transaction> = (54..=60).map(tx).collect();
    let (mut a, mut b) = pair(
        shared.iter().chain(&only_a).cloned().collect(),
        shared.iter().chain(&only_b).cloned().collect(),
    );
    converse(&mut a, &mut b);
    let hashes = |n: &Node| {
        let mut h: Vec<String> = n.pool().iter().map(|t| t.hash().to_owned()).collect();
        h.sort();
        h
    };
    assert_eq!(a.pool().len(), 60);
    assert_eq!(hashes(&a), hashes(&b));
    // Caught-up transactions are persisted like any new one.
    assert!(a.has_transaction(only_b[0].hash()) && b.has_transaction(only_a[0].hash()));
}

#[test]
fn equal_pools_exchange_no_transaction_bodies() {
    let pool: Vec<Transaction> = (1..=40).map(tx).collect();
    let (mut a, mut b) = pair(pool.clone(), pool);
    assert_eq!(converse(&mut a, &mut b), 0);
}

/// Two nodes of ours, `a` on 4001 (which leads the pair: the smaller address) and `b`
/// on 4002, each knowing the other, on a wire driven by hand: frames arrive at once and
/// in order, the host writes every frame at once, and time moves only in `run_until`.
struct Wire {
    nodes: [Node; 2],
    now: Time,
    /// Each end of each open connection: (node, its conn) to (other node, its conn).
    ends: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    /// Dials asked for and not opened yet, by node.
    dials: [Vec<DialId>; 2],
    /// Whether a node's dials open as soon as it asks.
    dials_open: [bool; 2],
    /// Frames on the wire: (to node, its conn, text).
    queue: VecDeque<(usize, ConnId, String)>,
    /// Every frame sent: (from node, when, text).
    sent: Vec<(usize, Time, String)>,
    /// TRANSACTION frames from `a` are lost on the way (a connection that will break).
    lose_pushes_of_a: bool,
    next_conn: u64,
}

const A: usize = 0;
const B: usize = 1;

impl Wire {
    fn new(pool_a: Vec<Transaction>, pool_b: Vec<Transaction>, dials_open: [bool; 2]) -> Wire {
        let node = |port: u16, other: u16, pool| {
            let mut config = Config::new(Address::localhost(port));
            config.known_peers = vec![Address::localhost(other)];
            Node::new(config, pool)
        };
        let mut wire = Wire {
            nodes: [node(4001, 4002, pool_a), node(4002, 4001, pool_b)],
            now: Time::ZERO,
            ends: BTreeMap::new(),
            dials: [Vec::new(), Vec::new()],
            dials_open,
            queue: VecDeque::new(),
            sent: Vec::new(),
            lose_pushes_of_a: false,
            next_conn: 1,
        };
        for node in &mut wire.nodes {
            node.start(Time::ZERO);
        }
        wire.settle();
        wire
    }

    /// Carries out what the nodes asked for and delivers every frame, until both are
    /// quiet.
    fn settle(&mut self) {
        loop {
            for i in [A, B] {
                for action in drain(&mut self.nodes[i]) {
                    self.carry_out(i, action);
                }
            }
            let Some((to, conn, text)) = self.queue.pop_front() else {
                if self.nodes.iter().all(|n| n.actions.is_empty()) {
                    return;
                }
                continue;
            };
            self.nodes[to].handle_text(conn, &text, self.now);
        }
    }

    fn carry_out(&mut self, i: usize, action: Action) {
        match action {
            Action::Send { conn, frame } => {
                self.nodes[i].handle_written(conn, frame.len(), self.now);
                self.sent.push((i, self.now, frame.to_string()));
                let lost = i == A
                    && self.lose_pushes_of_a
                    && frame.starts_with(r#"{"type":"TRANSACTION""#);
                if let Some(&(to, their)) = self.ends.get(&(i, conn)) {
                    if !lost {
                        self.queue.push_back((to, their, frame.to_string()));
                    }
                }
            }
            Action::Dial { dial, .. } => {
                self.dials[i].push(dial);
                if self.dials_open[i] {
                    self.open_dials(i);
                }
            }
            Action::Close { conn } => self.close(i, conn),
            _ => {}
        }
    }

    /// Opens every dial node `i` asked for.
    fn open_dials(&mut self, i: usize) {
        for dial in std::mem::take(&mut self.dials[i]) {
            let (mine, theirs) = (ConnId(self.next_conn), ConnId(self.next_conn + 100));
            self.next_conn += 1;
            self.ends.insert((i, mine), (1 - i, theirs));
            self.ends.insert((1 - i, theirs), (i, mine));
            self.nodes[1 - i].handle_accepted(theirs, self.now);
            self.nodes[i].handle_dial_opened(dial, mine, self.now);
        }
    }

    /// Closes node `i`'s connection `conn` at both ends; frames on it are lost.
    fn close(&mut self, i: usize, conn: ConnId) {
        let Some((to, theirs)) = self.ends.remove(&(i, conn)) else {
            return;
        };
        self.ends.remove(&(to, theirs));
        self.queue.retain(|(n, c, _)| !(*n == to && *c == theirs));
        self.nodes[i].handle_closed(conn, self.now);
        self.nodes[to].handle_closed(theirs, self.now);
    }

    /// Runs every timeout up to `until`, then sets the clock to it.
    fn run_until(&mut self, until: Time) {
        loop {
            self.settle();
            let next = self.nodes.iter().filter_map(Node::poll_timeout).min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    for node in &mut self.nodes {
                        node.handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
        self.settle();
    }

    fn add(&mut self, i: usize, tx: &Transaction) {
        self.nodes[i].add_transaction(tx.clone(), self.now);
        self.settle();
    }

    /// Frames node `i` sent whose text starts with `prefix`, with when.
    fn frames(&self, i: usize, prefix: &str) -> Vec<(Time, &str)> {
        self.sent
            .iter()
            .filter(|(from, _, text)| *from == i && text.starts_with(prefix))
            .map(|(_, at, text)| (*at, text.as_str()))
            .collect()
    }

    /// The opening frames of catch-up rounds node `i` sent, with when.
    fn openings(&self, i: usize) -> Vec<Time> {
        self.frames(i, r#"{"type":"SYNC""#)
            .into_iter()
            .filter(|(_, text)| {
                matches!(frame::decode(text, usize::MAX), Ok(Frame::Sync(r)) if crate::sync::is_opening(&r))
            })
            .map(|(at, _)| at)
            .collect()
    }
}

const SYNC: &str = r#"{"type":"SYNC""#;
const TXS: &str = r#"{"type":"TXS""#;

#[test]
fn a_transaction_the_leader_never_had_pushed_reaches_it_through_its_follower() {
    // `a` leads. Its dial to `b` opens and their first conversation runs (two empty
    // pools) before a transaction enters `b`, whose own dial to `a` is not open yet, so
    // `b` pushes it nowhere. Then `b`'s dial opens, and nothing else ever changes `a`'s
    // pool: no round of the leader's would ever come, so the follower must open one.
    // By the time it opens, the transaction is no longer fresh, so it is not pushed
    // then (see `a_dial_that_opens_is_pushed_what_it_missed_while_fresh`).
    let mut wire = Wire::new(Vec::new(), Vec::new(), [true, false]);
    assert_eq!(wire.openings(A).len(), 1, "the leader's first conversation");
    wire.run_until(ms(10));
    let t = tx(1);
    wire.add(B, &t);
    let settle = wire.nodes[B].config().sync.settle;
    wire.run_until(ms(20) + settle);
    wire.open_dials(B);
    let opened = wire.now;
    wire.run_until(ms(60_000));
    assert!(
        wire.nodes[A].has_transaction(t.hash()),
        "the leader never got it"
    );
    let follower_wait = wire.nodes[B].config().sync.follower_wait;
    assert_eq!(wire.openings(B), [opened + follower_wait]);
    assert_eq!(wire.frames(B, r#"{"type":"TRANSACTION""#).len(), 0);
}

#[test]
fn a_follower_opens_no_round_while_its_leader_keeps_them_coming() {
    let mut wire = Wire::new(Vec::new(), Vec::new(), [true, true]);
    // Live traffic at both for twenty seconds, every push delivered.
    for i in 0..200u64 {
        wire.run_until(ms(100 + 100 * i));
        wire.add(usize::from(i % 3 == 0), &tx(i + 1));
    }
    wire.run_until(ms(80_000));
    assert_eq!(wire.nodes[A].pool().len(), 200);
    assert_eq!(wire.nodes[B].pool().len(), 200);
    assert!(wire.openings(A).len() >= 6, "{:?}", wire.openings(A));
    assert_eq!(wire.openings(B), []);
    // No body raced a push.
    assert_eq!(wire.frames(A, TXS).len() + wire.frames(B, TXS).len(), 0);
}

#[test]
fn a_round_between_equal_pools_costs_one_small_frame() {
    let shared: Vec<Transaction> = (1..=500).map(tx).collect();
    let mut wire = Wire::new(shared.clone(), shared, [true, true]);
    wire.run_until(ms(100));
    let before = wire.sent.len();
    wire.add(A, &tx(501));
    wire.run_until(ms(60_000));
    let after: Vec<&(usize, Time, String)> = wire.sent[before..].iter().collect();
    let syncs: Vec<_> = after
        .iter()
        .filter(|(_, _, f)| f.starts_with(SYNC))
        .collect();
    assert_eq!(syncs.len(), 1, "{syncs:?}");
    assert_eq!(syncs[0].0, A);
    assert!(syncs[0].2.len() < 100, "{}", syncs[0].2);
    assert!(after.iter().all(|(_, _, f)| !f.starts_with(TXS)));
}

#[test]
fn catch_up_holds_back_what_may_be_on_its_way_and_brings_it_once_settled() {
    let mut wire = Wire::new(Vec::new(), Vec::new(), [true, true]);
    wire.run_until(ms(100));
    // `a` makes a transaction; its push to `b` is lost with the connection it was on,
    // and so is the push on the next one (it breaks too): their conversation on that
    // runs while the transaction is fresh, so its body is held back.
    wire.lose_pushes_of_a = true;
    let t = tx(7);
    wire.add(A, &t);
    let made = wire.now;
    let conn = wire
        .ends
        .keys()
        .find(|(i, _)| *i == A)
        .map(|&(_, c)| c)
        .expect("a's dial");
    wire.close(A, conn);
    wire.run_until(ms(500));
    wire.lose_pushes_of_a = false;
    assert!(
        wire.openings(A).len() >= 2,
        "a conversation on the new connection"
    );
    assert!(!wire.nodes[B].has_transaction(t.hash()));
    assert!(wire.frames(A, TXS).is_empty());
    // Once it has settled, the next round brings it.
    wire.run_until(ms(60_000));
    assert!(wire.nodes[B].has_transaction(t.hash()));
    let settle = wire.nodes[A].config().sync.settle;
    let bodies = wire.frames(A, TXS);
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].0 >= made + settle, "{:?}", bodies[0].0);
}

#[test]
fn dials_beyond_the_burst_start_at_the_sustained_dial_rate() {
    let mut config = config(&[]);
    config.limits.max_dials_per_second = 10;
    config.limits.dial_burst = 3;
    config.limits.max_concurrent_dials = 1000;
    let (mut node, _) = started(config);
    let list: Vec<String> = (5000..5100)
        .map(|p| format!("ws://localhost:{p}"))
        .collect();
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    node.handle_accepted(ConnId(1), ms(0));
    node.handle_text(ConnId(1), &handshake_frame(&refs), ms(0));
    // The burst: the first dials start at once (one per interval already spent).
    let first = dials(&drain(&mut node)).len();
    assert!((3..=4).contains(&first), "{first} dials at once");
    // Then one per 100 ms.
    let mut now = ms(0);
    let mut started_by_1s = first;
    while now < ms(1000) {
        now = node.poll_timeout().expect("more dials are due");
        node.handle_timeout(now);
        started_by_1s += dials(&drain(&mut node)).len();
    }
    assert!(
        (first + 9..=first + 11).contains(&started_by_1s),
        "{started_by_1s} dials in the first second"
    );
}

#[test]
fn a_peer_that_keeps_dropping_fresh_connections_is_redialled_with_growing_backoff() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    let mut dial = dial_to(&actions, "ws://localhost:4002");
    let mut now = ms(0);
    let mut delays = Vec::new();
    for round in 0..6 {
        node.handle_dial_opened(dial, ConnId(round + 1), now);
        drain(&mut node);
        node.handle_closed(ConnId(round + 1), now + Duration::from_millis(5));
        let delay = notices(&drain(&mut node))
            .into_iter()
            .find_map(|n| match n {
                Notice::Disconnected { retry_in, .. } => Some(retry_in),
                _ => None,
            })
            .expect("a Disconnected notice");
        delays.push(delay);
        now = node.poll_timeout().expect("a redial is scheduled");
        node.handle_timeout(now);
        dial = dial_to(&drain(&mut node), "ws://localhost:4002");
    }
    let initial = Backoff::default().initial;
    assert!(delays[5] >= initial * 8, "delays {delays:?}");
}

#[test]
fn a_long_lived_connection_that_closes_is_redialled_promptly() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    let dial = dial_to(&actions, "ws://localhost:4002");
    node.handle_dial_failed(dial, ms(0));
    drain(&mut node);
    node.handle_timeout(node.poll_timeout().unwrap());
    let dial = dial_to(&drain(&mut node), "ws://localhost:4002");
    node.handle_dial_opened(dial, ConnId(1), ms(500));
    drain(&mut node);
    let later = ms(500) + Backoff::default().stable_after;
    node.handle_closed(ConnId(1), later);
    let retry = notices(&drain(&mut node))
        .into_iter()
        .find_map(|n| match n {
            Notice::Disconnected { retry_in, .. } => Some(retry_in),
            _ => None,
        });
    assert!(retry.is_some_and(|r| r <= Backoff::default().initial));
}

#[test]
fn a_dial_that_reaches_the_node_itself_under_another_name_is_closed_and_never_repeated() {
    let (mut node, actions) = started(config(&["ws://myhost.example:4001"]));
    node.handle_dial_opened(
        dial_to(&actions, "ws://myhost.example:4001"),
        ConnId(1),
        ms(1),
    );
    let sent = sends(&drain(&mut node));
    let own_handshake = &sent[0].1;
    // The dial came back to our own server: the same frame arrives on an accepted one.
    node.handle_accepted(ConnId(2), ms(2));
    node.handle_text(ConnId(2), own_handshake, ms(2));
    let actions = drain(&mut node);
    assert_eq!(closes(&actions), [ConnId(1)]);
    assert!(notices(&actions)
        .iter()
        .any(|n| matches!(n, Notice::SelfAlias(a) if a.as_str() == "ws://myhost.example:4001")));
    assert!(node.connected_addresses().is_empty());
    node.handle_closed(ConnId(1), ms(3));
    node.handle_accepted(ConnId(3), ms(3));
    node.handle_text(
        ConnId(3),
        &handshake_frame(&["ws://localhost:4009", "ws://myhost.example:4001"]),
        ms(3),
    );
    node.handle_timeout(ms(60_000));
    let later = drain(&mut node);
    assert_eq!(dialled_addresses(&later), ["ws://localhost:4009"]);
}

#[test]
fn another_node_whose_nonce_happens_to_match_is_not_taken_for_the_node_itself() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(1));
    let sent = sends(&drain(&mut node));
    let ours = &sent[0].1;
    // Same nonce, but the frame names another node first.
    let other = ours.replace(
        r#"["ws://localhost:4001","ws://localhost:4002"]"#,
        r#"["ws://localhost:4002"]"#,
    );
    node.handle_accepted(ConnId(2), ms(2));
    node.handle_text(ConnId(2), &other, ms(2));
    assert!(closes(&drain(&mut node)).is_empty());
    assert_eq!(node.connected_addresses(), [addr("ws://localhost:4002")]);
}

// Fair dialling: the peer talking to us goes first.

/// Accepts `conn` and has it send a HANDSHAKE from `sender` naming every port of
/// `ports`; returns what the node did.
fn flood(
    node: &mut Node,
    conn: ConnId,
    sender: u16,
    ports: std::ops::Range<u16>,
    now: Time,
) -> Vec<Action> {
    node.handle_accepted(conn, now);
    let list: Vec<String> = std::iter::once(sender)
        .chain(ports)
        .map(|p| format!("ws://localhost:{p}"))
        .collect();
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    node.handle_text(conn, &handshake_frame(&list), now);
    drain(node)
}

#[test]
fn a_handshake_sender_is_dialled_back_at_once_while_thousands_of_listed_addresses_wait() {
    let (mut node, _) = started(config(&[]));
    // A flood: one HANDSHAKE naming 1,000 addresses that never answer.
    let first = flood(&mut node, ConnId(10), 9000, 10_000..11_000, ms(1));
    let learned_slots = node.config().limits.max_concurrent_dials * 75 / 100;
    assert_eq!(dialled_addresses(&first)[0], "ws://localhost:9000");
    assert_eq!(dials(&first).len(), 1 + learned_slots);
    // Every learned dial hangs; a new peer introduces itself.
    node.handle_accepted(ConnId(11), ms(2));
    node.handle_text(
        ConnId(11),
        &handshake_frame(&["ws://localhost:4444", "ws://localhost:10001"]),
        ms(2),
    );
    let actions = drain(&mut node);
    assert_eq!(dialled_addresses(&actions), ["ws://localhost:4444"]);
}

#[test]
fn learned_addresses_take_only_their_share_of_dial_slots() {
    let (mut node, _) = started(config(&[]));
    flood(&mut node, ConnId(10), 9000, 10_000..10_500, ms(1));
    // However long it waits, no more learned dials start while those hang.
    node.handle_timeout(ms(5_000));
    let later = drain(&mut node);
    assert!(dials(&later).is_empty(), "{:?}", dialled_addresses(&later));
    let limits = &node.config().limits;
    assert_eq!(
        node.dialling().count(),
        1 + limits.max_concurrent_dials * usize::from(limits.learned_dial_share) / 100
    );
}

#[test]
fn one_source_fills_only_its_share_of_the_address_book() {
    let mut config = config(&[]);
    config.limits.max_address_book = 100;
    let (mut node, _) = started(config);
    let actions = flood(&mut node, ConnId(10), 9000, 10_000..10_200, ms(1));
    assert!(notices(&actions).contains(&Notice::Limit {
        what: "addresses learned from one source",
        limit: 25
    }));
    // Another source still gets its share of the book.
    node.handle_accepted(ConnId(11), ms(2));
    let other = ["ws://localhost:9001", "ws://localhost:12000"];
    node.handle_text(ConnId(11), &handshake_frame(&other), ms(2));
    let limits: Vec<Notice> = notices(&drain(&mut node))
        .into_iter()
        .filter(|n| matches!(n, Notice::Limit { .. }))
        .collect();
    assert_eq!(limits, []);
}

#[test]
fn a_full_book_forgets_a_learned_address_to_make_room_for_a_handshake_sender() {
    let mut config = config(&[]);
    config.limits.max_address_book = 10;
    config.limits.learned_book_share = 100;
    config.limits.max_concurrent_dials = 2;
    let (mut node, _) = started(config);
    let first = dials(&flood(&mut node, ConnId(10), 9000, 10_000..10_050, ms(1)));
    // The book is full of learned addresses, both dial slots are taken; a new peer
    // introduces itself, and a slot frees.
    node.handle_accepted(ConnId(11), ms(2));
    node.handle_text(
        ConnId(11),
        &handshake_frame(&["ws://localhost:4444"]),
        ms(2),
    );
    drain(&mut node);
    node.handle_dial_failed(first[0].0, ms(3));
    let actions = drain(&mut node);
    assert!(
        dialled_addresses(&actions).contains(&"ws://localhost:4444".to_owned()),
        "{:?}",
        dialled_addresses(&actions)
    );
}

#[test]
fn an_abandoned_dial_is_an_action_for_the_host() {
    let (mut node, actions) = started(config(&["ws://localhost:4002"]));
    let (dial, _) = dials(&actions)[0].clone();
    node.handle_timeout(Time::ZERO + Backoff::default().dial_timeout);
    let actions = drain(&mut node);
    assert!(actions.contains(&Action::AbandonDial { dial }));
}

// The budget of one connection.

/// A meshed node with `pool` transactions, and an accepted connection #10 from a peer
/// of ours (4002) that has said so.
fn serving(pool: u64, limits: impl FnOnce(&mut Limits)) -> Node {
    let mut config = config(&["ws://localhost:4002"]);
    limits(&mut config.limits);
    let stored = (0..pool)
        .map(|i| Transaction::create(Some("04ab"), i % 100 + 1, 1_700_000_000_000 + i))
        .collect();
    let mut node = Node::new(config, stored);
    node.start(Time::ZERO);
    drain(&mut node);
    let actions = accept_ours(&mut node, ConnId(10), "ws://localhost:4002", ms(1));
    written(&mut node, &actions, ms(1));
    node
}

/// Bytes of frames sent on `conn` in `actions`.
fn bytes_to(conn: ConnId, actions: &[Action]) -> usize {
    sends(actions)
        .iter()
        .filter(|(c, _)| *c == conn)
        .map(|(_, f)| f.len())
        .sum()
}

/// A SYNC asking for every hash the node holds (an empty `ids` list over everything).
const WHOLE_POOL: &str = r#"{"type":"SYNC","data":[{"lo":"","ub":null,"ids":[]}]}"#;

#[test]
fn sync_from_a_peer_that_has_not_identified_itself_is_refused() {
    let mut node = serving(100, |_| {});
    node.handle_accepted(ConnId(20), ms(2));
    node.handle_text(ConnId(20), WHOLE_POOL, ms(2));
    let actions = drain(&mut node);
    assert!(sends(&actions).is_empty());
    assert!(notices(&actions).iter().any(|n| matches!(
        n,
        Notice::Refused {
            error: FrameError::NotIdentified("SYNC"),
            ..
        }
    )));
}

#[test]
fn a_requester_that_does_not_read_is_sent_at_most_its_send_buffer() {
    let budget = 64 << 10;
    let mut node = serving(5_000, |l| l.max_send_buffer = budget);
    let mut queued = 0;
    for i in 0..200 {
        node.handle_text(ConnId(10), WHOLE_POOL, ms(10 + i));
        queued += bytes_to(ConnId(10), &drain(&mut node));
    }
    // At most the budget plus one frame, however often it asks.
    assert!(
        queued <= budget + (64 << 10) + 1024,
        "{queued} bytes queued"
    );
    assert!(queued >= budget, "the budget is used: {queued}");
}

#[test]
fn a_body_asked_for_many_times_in_one_request_is_sent_once() {
    let mut node = serving(100, |_| {});
    let hash = node.pool()[7].hash().to_owned();
    let need = serde_json::to_string(&vec![hash.as_str(); 60]).unwrap_or_default();
    let text = format!(r#"{{"type":"SYNC","data":[{{"lo":"","ub":null,"need":{need}}}]}}"#);
    node.handle_text(ConnId(10), &text, ms(10));
    let actions = drain(&mut node);
    let bodies: usize = sends(&actions)
        .iter()
        .filter(|(_, f)| f.starts_with(r#"{"type":"TXS""#))
        .map(|(_, f)| f.matches(hash.as_str()).count())
        .sum();
    assert_eq!(bodies, 1);
}

#[test]
fn a_connection_that_makes_no_progress_is_closed_at_the_stall_timeout() {
    let mut node = serving(5_000, |l| l.max_send_buffer = 16 << 10);
    node.handle_text(ConnId(10), WHOLE_POOL, ms(10));
    drain(&mut node);
    let stall = node.config().limits.stall_timeout;
    node.handle_timeout(ms(9) + stall);
    assert!(closes(&drain(&mut node)).is_empty());
    node.handle_timeout(ms(10) + stall);
    let actions = drain(&mut node);
    assert_eq!(closes(&actions), [ConnId(10)]);
    assert!(notices(&actions).iter().any(|n| matches!(
        n,
        Notice::Stalled {
            conn: ConnId(10),
            ..
        }
    )));
}

#[test]
fn pushes_that_do_not_fit_wait_and_go_out_in_order_as_the_peer_reads() {
    let mut config = config(&["ws://localhost:4002"]);
    config.limits.max_send_buffer = 1024;
    let mut node = Node::new(config, Vec::new());
    node.start(Time::ZERO);
    let actions = drain(&mut node);
    open_all(&mut node, &actions);
    let mut sent = Vec::new();
    let mut actions = Vec::new();
    for i in 0..50 {
        node.add_transaction(tx(i + 1), ms(10));
        actions.extend(drain(&mut node));
    }
    for round in 0..100 {
        let frames = sends(&actions);
        if frames.is_empty() {
            break;
        }
        sent.extend(frames.into_iter().map(|(_, f)| f));
        actions = written(&mut node, &actions, ms(20 + round));
    }
    let expected: Vec<String> = (0..50).map(|i| tx(i + 1).to_frame()).collect();
    assert_eq!(sent, expected);
}

#[test]
fn a_javascript_peer_that_falls_too_far_behind_is_disconnected() {
    let mut config = config(&["ws://localhost:4002"]);
    config.limits.max_send_buffer = 1024;
    config.limits.max_backlog = 10;
    let mut node = Node::new(config, Vec::new());
    node.start(Time::ZERO);
    let actions = drain(&mut node);
    open_all(&mut node, &actions);
    let mut actions = Vec::new();
    for i in 0..40 {
        node.add_transaction(tx(i + 1), ms(10));
        actions.extend(drain(&mut node));
    }
    assert_eq!(closes(&actions), [ConnId(1)]);
}

#[test]
fn an_oversized_transaction_is_refused() {
    let mut node = meshed();
    node.handle_accepted(ConnId(10), ms(2));
    let memo = "x".repeat(5_000);
    let text = format!(
        r#"{{"type":"TRANSACTION","data":{{"fromAddress":null,"toAddress":"{memo}","amount":1,"timeStamp":1,"hash":"ab"}}}}"#
    );
    node.handle_text(ConnId(10), &text, ms(3));
    let actions = drain(&mut node);
    assert!(sends(&actions).is_empty());
    assert!(!node.has_transaction("ab"));
    assert!(notices(&actions).iter().any(|n| matches!(
        n,
        Notice::Refused {
            error: FrameError::TransactionTooLarge { limit: 4096, .. },
            ..
        }
    )));
}

// Dial-only peers (a browser tab) and watchers.

const DIAL_ONLY_HANDSHAKE: &str =
    r#"{"type":"HANDSHAKE","data":[],"ext":"0000000000000007","dialOnly":true}"#;

/// The EVENT frames among `actions` sent on `conn`, as JSON values of their `data`.
fn events_to(actions: &[Action], conn: ConnId) -> Vec<serde_json::Value> {
    frames_to(actions, conn)
        .into_iter()
        .filter(|text| text.starts_with(r#"{"type":"EVENT""#))
        .map(|text| {
            let frame: serde_json::Value = serde_json::from_str(&text).expect("EVENT is JSON");
            frame["data"].clone()
        })
        .collect()
}

/// The connections frames are sent on, in order of their ids.
fn pushed_to(actions: &[Action]) -> Vec<ConnId> {
    let mut conns: Vec<ConnId> = sends(actions).into_iter().map(|(c, _)| c).collect();
    conns.sort();
    conns
}

/// A dial-only node (4001 in its log) that has dialled 4002, a node of ours (HELLO on
/// connection 1, at 2 ms), with `watch` as given.
fn dial_only_joined(watch: bool) -> (Node, Vec<Action>) {
    let mut config = config(&["ws://localhost:4002"]);
    config.dial_only = true;
    config.watch = watch;
    let (mut node, actions) = started(config);
    open_all(&mut node, &actions);
    node.handle_text(ConnId(1), r#"{"type":"HELLO","data":1}"#, ms(2));
    let actions = drain(&mut node);
    (node, actions)
}

#[test]
fn a_dial_only_node_never_listens_and_lists_no_address_of_its_own() {
    let mut config = config(&["ws://localhost:4002"]);
    config.dial_only = true;
    let (mut node, actions) = started(config);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Listen { .. })),
        "{actions:?}"
    );
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4002"), ConnId(1), ms(1));
    let sent = sends(&drain(&mut node));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        without_nonce(&sent[0].1.replace(r#","dialOnly":true"#, "")),
        r#"{"type":"HANDSHAKE","data":[]}"#
    );
    assert!(matches!(
        frame::decode(&sent[0].1, usize::MAX),
        Ok(Frame::Handshake {
            ours: true,
            dial_only: true,
            ..
        })
    ));
    // Whatever a host accepts for it is closed: it serves nothing.
    node.handle_accepted(ConnId(9), ms(2));
    assert_eq!(closes(&drain(&mut node)), [ConnId(9)]);
}

#[test]
fn a_dial_only_peer_is_answered_and_told_whom_the_node_reaches() {
    let mut node = meshed();
    node.handle_accepted(ConnId(20), ms(5));
    node.handle_text(ConnId(20), DIAL_ONLY_HANDSHAKE, ms(5));
    let sent = sends(&drain(&mut node));
    let texts: Vec<String> = sent
        .iter()
        .map(|(conn, text)| {
            assert_eq!(*conn, ConnId(20));
            text.clone()
        })
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0], frame::HELLO);
    assert_eq!(
        without_nonce(&texts[1]),
        r#"{"type":"HANDSHAKE","data":["ws://localhost:4001","ws://localhost:4002","ws://localhost:4003","ws://localhost:4004"]}"#
    );
    // A server newly reached is named to it, alone after the node's own address.
    node.handle_text(
        ConnId(2),
        &handshake_frame(&["ws://localhost:4003", "ws://localhost:4005"]),
        ms(6),
    );
    let actions = drain(&mut node);
    node.handle_dial_opened(dial_to(&actions, "ws://localhost:4005"), ConnId(4), ms(7));
    let to_client: Vec<String> = sends(&drain(&mut node))
        .into_iter()
        .filter(|(conn, _)| *conn == ConnId(20))
        .map(|(_, text)| without_nonce(&text))
        .collect();
    assert_eq!(
        to_client,
        [r#"{"type":"HANDSHAKE","data":["ws://localhost:4001","ws://localhost:4005"]}"#]
    );
}

#[test]
fn a_dial_only_peer_is_pushed_what_peers_of_ours_are_but_never_its_own() {
    let mut node = meshed_two_ours_one_not();
    node.handle_accepted(ConnId(20), ms(5));
    node.handle_text(ConnId(20), DIAL_ONLY_HANDSHAKE, ms(5));
    drain(&mut node);
    // Made here: pushed to it as to every peer.
    node.add_transaction(tx(1), ms(6));
    assert_eq!(
        pushed_to(&drain(&mut node)),
        [ConnId(1), ConnId(2), ConnId(3), ConnId(20)]
    );
    // From one of ours: its origin pushed it to the dial-only peer too, if connected;
    // the peer's own catch-up rounds bring it otherwise.
    node.handle_text(ConnId(1), &tx(2).to_frame(), ms(7));
    assert_eq!(pushed_to(&drain(&mut node)), [ConnId(3)]);
    // Made in the dial-only peer: pushed to every peer of the node, not back to it.
    node.handle_text(ConnId(20), &tx(3).to_frame(), ms(8));
    let actions = drain(&mut node);
    assert_eq!(persists(&actions), [tx(3)]);
    assert_eq!(pushed_to(&actions), [ConnId(1), ConnId(2), ConnId(3)]);
}

#[test]
fn a_dial_only_peer_that_joins_is_pushed_what_is_too_fresh_for_catch_up() {
    let mut node = meshed_two_ours_one_not();
    node.add_transaction(tx(1), ms(10));
    node.handle_text(ConnId(1), &tx(2).to_frame(), ms(800));
    drain(&mut node);
    // At 1.5 s, tx 1 has settled (catch-up brings it), tx 2 has not.
    node.handle_accepted(ConnId(20), ms(1_500));
    node.handle_text(ConnId(20), DIAL_ONLY_HANDSHAKE, ms(1_500));
    let pushed: Vec<String> = sends(&drain(&mut node))
        .into_iter()
        .filter(|(_, text)| text.starts_with(r#"{"type":"TRANSACTION"#))
        .map(|(_, text)| text)
        .collect();
    assert_eq!(pushed, [tx(2).to_frame()]);
}

#[test]
fn a_dial_only_node_passes_on_only_what_was_made_at_it() {
    let mut config = config(&["ws://localhost:4002", "ws://localhost:4003"]);
    config.dial_only = true;
    let (mut node, actions) = started(config);
    open_all(&mut node, &actions);
    node.handle_text(ConnId(1), r#"{"type":"HELLO","data":1}"#, ms(2));
    // 4003 never says it is ours: a JavaScript node.
    let told = ms(1) + node.config().sync.settle;
    node.handle_timeout(told);
    drain(&mut node);
    node.handle_text(
        ConnId(1),
        &tx(1).to_frame(),
        told + Duration::from_millis(1),
    );
    let actions = drain(&mut node);
    assert_eq!(persists(&actions), [tx(1)]);
    assert!(sends(&actions).is_empty(), "{actions:?}");
    node.add_transaction(tx(2), told + Duration::from_millis(2));
    assert_eq!(pushed_to(&drain(&mut node)), [ConnId(1), ConnId(2)]);
}

#[test]
fn a_dial_only_node_leads_catch_up_and_polls_each_peer_of_ours_every_max_wait() {
    let (mut node, actions) = dial_only_joined(false);
    // 4002 > 4001 would lead an ordinary pair; a dial-only node always does.
    assert_eq!(sync_frames(&actions).len(), 1, "{actions:?}");
    written(&mut node, &actions, ms(2));
    let max_wait = node.config().sync.max_wait;
    let next = node.poll_timeout().expect("a round to come");
    assert_eq!(next, ms(2) + max_wait);
    node.handle_timeout(next);
    let actions = drain(&mut node);
    assert_eq!(sync_frames(&actions).len(), 1, "{actions:?}");
    assert_eq!(node.poll_timeout(), Some(next + max_wait));
}

#[test]
fn a_watching_node_asks_its_peers_of_ours_to_be_watched_and_hands_their_events_over() {
    let (mut node, actions) = dial_only_joined(true);
    assert!(
        sends(&actions).contains(&(ConnId(1), frame::WATCH.to_owned())),
        "{actions:?}"
    );
    let event = r#"{"kind":"peers","connected":["ws://localhost:4003"]}"#;
    node.handle_text(ConnId(1), &frame::event(event), ms(3));
    assert_eq!(
        effects(&drain(&mut node)),
        [Action::Watched {
            from: addr("ws://localhost:4002"),
            event: event.to_owned()
        }]
    );
    // A node that does not watch hands nothing over.
    let (mut node, actions) = dial_only_joined(false);
    assert!(!sends(&actions).iter().any(|(_, f)| f == frame::WATCH));
    node.handle_text(ConnId(1), &frame::event(event), ms(3));
    assert!(effects(&drain(&mut node)).is_empty());
}

#[test]
fn a_watcher_is_told_the_state_then_each_change_of_peers_and_of_the_pool() {
    let mut node = meshed();
    node.add_transaction(tx(100), ms(2));
    drain(&mut node);
    node.handle_accepted(ConnId(20), ms(3));
    node.handle_text(ConnId(20), r#"{"type":"WATCH"}"#, ms(3));
    let events = events_to(&drain(&mut node), ConnId(20));
    assert_eq!(
        events,
        [
            serde_json::json!({"kind": "state", "address": "ws://localhost:4001",
            "connected": ["ws://localhost:4002", "ws://localhost:4003", "ws://localhost:4004"],
            "pool": 1})
        ]
    );
    node.handle_closed(ConnId(1), ms(4));
    let events = events_to(&drain(&mut node), ConnId(20));
    assert_eq!(
        events,
        [serde_json::json!({"kind": "peers",
            "connected": ["ws://localhost:4003", "ws://localhost:4004"]})]
    );
    assert_eq!((node.status().watchers, node.status().pages), (1, 0));
    // Forty transactions handled before the host drains: one event names 32.
    let burst: Vec<Transaction> = (1..=40).map(tx).collect();
    for one in &burst {
        node.add_transaction(one.clone(), ms(5));
    }
    let events = events_to(&drain(&mut node), ConnId(20));
    let hashes: Vec<&str> = burst.iter().take(32).map(Transaction::hash).collect();
    assert_eq!(
        events,
        [serde_json::json!({"kind": "pooled", "pool": 41, "hashes": hashes, "more": 8})]
    );
    // Nothing new, nothing sent.
    node.handle_timeout(ms(6));
    assert!(events_to(&drain(&mut node), ConnId(20)).is_empty());
}

#[test]
fn a_watcher_that_leaves_events_unread_is_dropped_and_the_node_goes_on() {
    let mut config = config(&["ws://localhost:4002"]);
    config.limits.max_watch_buffer = 1_000;
    let (mut node, actions) = started(config);
    open_all(&mut node, &actions);
    node.handle_accepted(ConnId(20), ms(2));
    node.handle_text(ConnId(20), r#"{"type":"WATCH"}"#, ms(2));
    drain(&mut node);
    let mut dropped_at = None;
    for n in 1..=100 {
        node.add_transaction(tx(n), ms(3));
        let actions = drain(&mut node);
        if closes(&actions).contains(&ConnId(20)) {
            assert!(notices(&actions).iter().any(|n| matches!(
                n,
                Notice::WatcherDropped {
                    conn: ConnId(20),
                    ..
                }
            )));
            dropped_at = Some(n);
            break;
        }
        // Never more than one event past the budget.
        assert!(node.conns[&ConnId(20)].out.queued <= 1_000 + 300);
    }
    let dropped_at = dropped_at.expect("the watcher is dropped");
    assert!(dropped_at > 2, "it had room for a few: {dropped_at}");
    node.handle_closed(ConnId(20), ms(4));
    node.add_transaction(tx(1_000), ms(5));
    let actions = drain(&mut node);
    assert!(events_to(&actions, ConnId(20)).is_empty());
    assert_eq!(persists(&actions), [tx(1_000)]);
}

#[test]
fn watchers_beyond_max_watchers_are_refused_and_dialled_connections_cannot_watch() {
    let mut config = config(&["ws://localhost:4002"]);
    config.limits.max_watchers = 1;
    let (mut node, actions) = started(config);
    open_all(&mut node, &actions);
    // A peer we dialled cannot make us stream to it.
    node.handle_text(ConnId(1), r#"{"type":"WATCH"}"#, ms(2));
    assert!(events_to(&drain(&mut node), ConnId(1)).is_empty());
    for conn in [ConnId(20), ConnId(21)] {
        node.handle_accepted(conn, ms(2));
        node.handle_text(conn, r#"{"type":"WATCH"}"#, ms(2));
    }
    let actions = drain(&mut node);
    assert_eq!(events_to(&actions, ConnId(20)).len(), 1);
    assert!(events_to(&actions, ConnId(21)).is_empty());
    assert!(notices(&actions).iter().any(|n| matches!(
        n,
        Notice::Limit {
            what: "watchers",
            limit: 1
        }
    )));
    // Its room is free again once the first watcher leaves.
    node.handle_closed(ConnId(20), ms(3));
    node.handle_text(ConnId(21), r#"{"type":"WATCH"}"#, ms(3));
    assert_eq!(events_to(&drain(&mut node), ConnId(21)).len(), 1);
}

#[test]
fn dial_only_peers_beyond_their_limit_are_answered_but_pushed_nothing() {
    let mut config = config(&["ws://localhost:4002"]);
    config.limits.max_dial_only_peers = 1;
    let (mut node, actions) = started(config);
    open_all(&mut node, &actions);
    for conn in [ConnId(20), ConnId(21)] {
        node.handle_accepted(conn, ms(2));
        node.handle_text(conn, DIAL_ONLY_HANDSHAKE, ms(2));
    }
    let actions = drain(&mut node);
    // Both are answered as peers of ours; only the first is told the network.
    assert_eq!(frames_to(&actions, ConnId(20)).len(), 2);
    let to_second: Vec<String> = frames_to(&actions, ConnId(21))
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(to_second, [frame::HELLO]);
    assert!(notices(&actions).iter().any(|n| matches!(
        n,
        Notice::Limit {
            what: "dial-only peers pushed to",
            limit: 1
        }
    )));
    assert_eq!(node.status().pages, 1);
    node.add_transaction(tx(1), ms(3));
    assert_eq!(pushed_to(&drain(&mut node)), [ConnId(1), ConnId(20)]);
    // Once the first leaves, a new one takes its place.
    node.handle_closed(ConnId(20), ms(4));
    node.handle_accepted(ConnId(22), ms(4));
    node.handle_text(ConnId(22), DIAL_ONLY_HANDSHAKE, ms(4));
    drain(&mut node);
    node.add_transaction(tx(2), ms(5));
    assert_eq!(pushed_to(&drain(&mut node)), [ConnId(1), ConnId(22)]);
}

mod overlay;
