//! While a node runs, its pool file is rewritten without an fsync (the journal beside it is
//! what keeps the pool), so after a power loss a file system that writes a renamed file
//! after its rename may leave `transactions.json` as zeros. The node restarted there
//! rebuilds it from its journal, keeping the damaged file aside; a node stopped cleanly
//! leaves no journal, and its pool file alone is its pool.

use std::collections::BTreeSet;
use std::fs;

use nix::sys::signal::Signal;
use tests::{ports, transactions, Client, Node, NodeSpec, Scratch, DEADLINE};

const PORT: u16 = ports::POOL_FILE_REBUILT;
const COUNT: usize = 2000;
const JOURNAL: &str = ".transactions.journal";

#[test]
fn a_pool_file_zeroed_after_a_kill_is_rebuilt_from_the_journal() {
    let scratch = Scratch::new();
    let mut node = Node::start_ready(&scratch.node_folder("node-1", &NodeSpec::new(PORT)));
    let sent = transactions(COUNT, 1);
    let mut client = Client::connect(PORT).unwrap_or_else(|e| panic!("{e}"));
    for tx in &sent {
        client
            .send_text(tx.frame())
            .unwrap_or_else(|e| panic!("sending: {e}"));
    }
    client.close();
    let expected: BTreeSet<&str> = sent.iter().map(|tx| tx.hash.as_str()).collect();
    node.assert_pool_file_holds_exactly(&expected, DEADLINE);

    node.kill();
    let pool_file = node.dir().join("transactions.json");
    assert!(
        node.dir().join(JOURNAL).exists(),
        "a killed node leaves its journal"
    );
    let length = fs::metadata(&pool_file).expect("the pool file").len();
    fs::write(&pool_file, vec![0u8; length as usize]).expect("zeroing the pool file");

    node.restart();
    node.wait_ready(DEADLINE);
    node.assert_answers_with_pool(COUNT);
    node.assert_pool_file_holds_exactly(&expected, DEADLINE);
    let aside = fs::read(node.dir().join("transactions.json.before-repair"))
        .expect("the damaged pool file, kept aside");
    assert!(aside.len() as u64 == length && aside.iter().all(|&b| b == 0));

    let exit = node
        .stop_with(Signal::SIGTERM, DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.success(), "{} exited with {exit}", node.name());
    assert!(
        !node.dir().join(JOURNAL).exists(),
        "a node stopped cleanly leaves no journal"
    );
    node.assert_pool_file_holds_exactly(&expected, DEADLINE);
}
