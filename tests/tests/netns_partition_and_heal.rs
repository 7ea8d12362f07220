//! Four nodes on four hosts of their own (network namespaces on a bridge, 192.0.2.1 to
//! 192.0.2.4; see `tests/src/netns.rs`) form the full mesh through their advertised addresses
//! and spread transactions to every host. One host is then cut off at the switch; each side
//! takes new transactions, which stay on their side, until TCP gives up on the connections
//! sent on across the cut. Once the host is plugged in again, the nodes redial, the mesh is
//! whole again and every pool holds every transaction exactly once: what was lost with the
//! broken connections, the nodes catch up on when they reconnect.
//!
//! TCP's patience is squeezed on every host (`net.ipv4.tcp_retries2`, in the namespaces
//! only): by default a connection whose data goes unanswered is given up after about a
//! quarter of an hour, and a cut shorter than that is bridged by retransmission once the link
//! is back, without the nodes ever knowing. Our nodes have no keepalive, so a connection
//! nothing is sent on across the cut stays open as far as they can tell.
//!
//! Every node listens on the same port, on its own host: addresses differ by host alone.
//! Needs root (CI runs it as root); elsewhere it says why and skips, but under `CI=true` it
//! fails instead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tests::{
    netns_node_folder, ports, read_pool, wait_until, Lab, NetnsNode, NodeSpec, Scratch, DEADLINE,
};

const PORT: u16 = ports::NETNS_PARTITION_AND_HEAL;
const HOSTS: usize = 4;
/// The host that is cut off.
const CUT: usize = 4;

/// Unanswered retransmissions after which TCP gives up on a connection, on every host: seconds
/// of silence (about 20 s here) rather than the default's (15) quarter of an hour.
const TCP_RETRIES: u8 = 3;

/// How long TCP may take to give up on a connection across the cut.
const NOTICE_DEADLINE: Duration = Duration::from_secs(120);

/// How long the pools may take to agree once the link is back. Generous: the nodes redial on
/// their own backoff, and a connection that has not broken yet resends into the healed link
/// on TCP's (doubling, up to two minutes between tries).
const HEAL_DEADLINE: Duration = Duration::from_secs(150);

/// A new transaction as `add-transaction` makes it, to `to`: its hash and the TRANSACTION
/// frame carrying it. `amount` tells transactions made in the same millisecond apart.
fn transaction(to: &str, amount: u64) -> (String, String) {
    let time_stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_millis();
    let digest = Sha256::digest(format!("null{to}{amount}{time_stamp}"));
    let hash: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    let frame = format!(
        r#"{{"type":"TRANSACTION","data":{{"fromAddress":null,"toAddress":"{to}","amount":{amount},"timeStamp":{time_stamp},"hash":"{hash}"}}}}"#
    );
    (hash, frame)
}

/// Adds transactions to nodes, each with an amount of its own.
struct Sender {
    sent: u64,
}

impl Sender {
    /// Sends a new transaction to `node`; returns its hash.
    fn add(&mut self, node: &NetnsNode) -> String {
        self.sent += 1;
        let to = format!("key-of-host-{}", node.host().number());
        let (hash, frame) = transaction(&to, self.sent);
        node.send_text(&frame)
            .unwrap_or_else(|e| panic!("could not add a transaction at {}: {e}", node.name()));
        hash
    }
}

/// The hashes in `node`'s pool file, or why they cannot be read.
fn pool_hashes(node: &NetnsNode) -> Result<Vec<String>, String> {
    let pool = read_pool(node.dir())?;
    Ok(pool
        .iter()
        .map(|tx| tx["hash"].as_str().unwrap_or("(no hash)").to_owned())
        .collect())
}

/// Whether `hashes` are exactly `expected`, each once.
fn holds_exactly(hashes: &[String], expected: &BTreeSet<String>) -> bool {
    let unique: BTreeSet<String> = hashes.iter().cloned().collect();
    unique.len() == hashes.len() && unique == *expected
}

/// Waits until the pool of each of `nodes` holds exactly `expected`, each transaction once;
/// `Err` after `limit` with what each pool held.
fn wait_for_pools(
    nodes: &[&NetnsNode],
    expected: &BTreeSet<String>,
    limit: Duration,
) -> Result<(), String> {
    let mut last = Vec::new();
    let agreed = wait_until(limit, || {
        last = nodes.iter().map(|node| pool_hashes(node)).collect();
        last.iter().all(|pool| {
            pool.as_ref()
                .is_ok_and(|pool| holds_exactly(pool, expected))
        })
    });
    if agreed {
        return Ok(());
    }
    let mut report = format!("expected, each once: {expected:?}");
    for (node, pool) in nodes.iter().zip(&last) {
        report.push_str(&format!("\n  {}: ", node.name()));
        match pool {
            Ok(pool) => {
                let missing: Vec<_> = expected.iter().filter(|h| !pool.contains(h)).collect();
                let extra: Vec<_> = pool.iter().filter(|h| !expected.contains(*h)).collect();
                let unique: BTreeSet<_> = pool.iter().collect();
                report.push_str(&format!(
                    "{} transactions ({} duplicated); missing {missing:?}; unexpected {extra:?}",
                    pool.len(),
                    pool.len() - unique.len()
                ));
            }
            Err(e) => report.push_str(e),
        }
    }
    Err(report)
}

fn union(sets: &[&BTreeSet<String>]) -> BTreeSet<String> {
    sets.iter().flat_map(|set| set.iter().cloned()).collect()
}

#[test]
fn a_host_cut_off_and_plugged_in_again_ends_with_the_same_pool_as_every_other() {
    let Some(lab) = Lab::create_or_skip("p2pt-heal-", HOSTS) else {
        return;
    };
    // Squeeze TCP's patience from 15 minutes into seconds, so that the cut breaks the
    // connections nodes send on, as a long outage does, rather than being bridged by
    // retransmission once the link is back.
    lab.set_tcp_retries(TCP_RETRIES);
    let scratch = Scratch::new();

    // As in the curriculum, every node knows the first and the last (itself among them),
    // here at their hosts' addresses; the others it learns from HANDSHAKEs.
    let known = vec![lab.host(1).address(PORT), lab.host(HOSTS).address(PORT)];
    let mut nodes: Vec<NetnsNode> = lab
        .hosts()
        .iter()
        .map(|host| {
            let spec = NodeSpec {
                known_peers: known.clone(),
                ..NodeSpec::new(PORT)
            };
            NetnsNode::start_ready(host, &netns_node_folder(&scratch, host, &spec))
        })
        .collect();
    NetnsNode::wait_for_full_mesh(&nodes, DEADLINE);
    NetnsNode::wait_for_settled_mesh(&nodes, DEADLINE);

    // A transaction added on any host reaches every host.
    let mut sender = Sender { sent: 0 };
    let before: BTreeSet<String> = nodes.iter().map(|node| sender.add(node)).collect();
    let everyone: Vec<&NetnsNode> = nodes.iter().collect();
    wait_for_pools(&everyone, &before, DEADLINE)
        .unwrap_or_else(|e| panic!("before the cut, transactions did not reach every host: {e}"));

    // Cut one host off; each side takes new transactions, which stay on its side.
    let cut = &nodes[CUT - 1];
    let rest: Vec<&NetnsNode> = nodes
        .iter()
        .filter(|node| !std::ptr::eq(*node, cut))
        .collect();
    lab.cut(cut.host());
    let cut_at = Instant::now();
    let on_rest: BTreeSet<String> = [sender.add(rest[0]), sender.add(rest[1])].into();
    let on_cut: BTreeSet<String> = [sender.add(cut)].into();
    wait_for_pools(&rest, &union(&[&before, &on_rest]), DEADLINE).unwrap_or_else(|e| {
        panic!(
            "during the cut, the connected hosts did not get (only) their side's transactions: {e}"
        )
    });
    wait_for_pools(&[cut], &union(&[&before, &on_cut]), DEADLINE).unwrap_or_else(|e| {
        panic!("during the cut, the cut host did not get (only) its own transaction: {e}")
    });

    // Each connection a node sends on across the cut breaks once TCP gives up on it. The cut
    // host's new transaction went out only across the cut, so at least one of its connections
    // breaks, whatever way the nodes spread transactions.
    let others: BTreeSet<String> = rest.iter().map(|node| node.address()).collect();
    let mut last = Err(String::from("no status yet"));
    let noticed = wait_until(NOTICE_DEADLINE, || {
        last = cut.status();
        last.as_ref()
            .is_ok_and(|status| !others.is_subset(&status.connected))
    });
    assert!(
        noticed,
        "{} did not notice the cut within {NOTICE_DEADLINE:?}: a connection it sent on across \
         it should have broken (TCP gives up after {TCP_RETRIES} unanswered retransmissions \
         here). Its last status: {last:?}",
        cut.name()
    );
    // What the nodes make of the cut, for the record (nothing here is timed).
    eprintln!(
        "{:?} after the cut, {} had lost a connection; statuses:\n{}",
        cut_at.elapsed(),
        cut.host().name(),
        NetnsNode::statuses(&nodes)
    );

    // Plugged in again: the nodes redial, the mesh is whole again, and every pool ends up
    // with every transaction, each once.
    lab.heal(cut.host());
    let healed = Instant::now();
    NetnsNode::wait_for_full_mesh(&nodes, DEADLINE);
    eprintln!(
        "the full mesh was back {:?} after the link",
        healed.elapsed()
    );
    let all = union(&[&before, &on_rest, &on_cut]);
    if let Err(e) = wait_for_pools(&everyone, &all, HEAL_DEADLINE) {
        let statuses = NetnsNode::statuses(&nodes);
        panic!(
            "the mesh is whole again, but the pools did not agree within {HEAL_DEADLINE:?} of \
             the link coming back: {e}\nTransactions added on one side during the cut were lost \
             with the broken connections; the nodes must catch up with each other when they \
             reconnect. Statuses now:\n{statuses}"
        );
    }
    eprintln!(
        "every pool held all {} transactions {:?} after the link came back",
        all.len(),
        healed.elapsed()
    );
    eprintln!("statuses after the heal:\n{}", NetnsNode::statuses(&nodes));
    for node in &mut nodes {
        node.node_mut().assert_running();
    }
}
