//! The harness of the end-to-end tests: real `p2p-node` processes in scratch folders.
//!
//! Every test under `tests/tests/` is one scenario. It makes node folders in a temporary
//! directory ([`Scratch`], [`NodeSpec`]), starts real nodes in them ([`Node`]), and watches
//! them from outside: through our `STATUS_REQUEST` extension ([`request_status`],
//! [`wait_for_full_mesh`], [`wait_for_settled_mesh`]), through [`TestPeer`]s that record every frame a node sends them,
//! through [`Client`]s that send a node arbitrary frames, and through the pool files
//! ([`read_pool`]). Nothing here asserts on timing: every wait polls until a generous
//! deadline ([`DEADLINE`]) and fails with the last thing it saw.
//!
//! Mixed networks run our JavaScript test node (`tests/interop/node.js`, written from
//! PROTOCOL.md) beside ours as [`JsNode`]s, watched through probe [`TestPeer`]s and their pool
//! files ([`wait_for_mixed_mesh`], [`wait_for_pools_exactly`]).
//!
//! The binary is found by [`p2p_node_bin`]: `$P2P_NODE_BIN` if set, else it is built once per
//! test process with `cargo build -p native-host --bin p2p-node` (a no-op when up to date).
//!
//! A [`Node`] dropped while its test is panicking prints its log, so a failure reads with the
//! story of every node in it; the [`Scratch`] folder of a failed test is kept and its path
//! printed (set `P2P_TEST_KEEP=1` to keep it always).
//!
//! # Ports
//!
//! Tests must not fight over ports, even when a runner (nextest) runs test binaries at once.
//! Each test file owns a fixed block of 20 ports, below Linux's ephemeral range (32768 and up)
//! so that no outgoing connection can be sitting on a port a node wants to listen on. The
//! ports are fixed, so a node keeps its address across restarts.
//!
//! | test file                            | ports                                          |
//! |--------------------------------------|------------------------------------------------|
//! | `full_mesh.rs`                       | 20000 - 20019                                  |
//! | `handshake_with_test_peer.rs`        | 20020 - 20039                                  |
//! | `malformed_frames.rs`                | 20040 - 20059                                  |
//! | `started_all_at_once.rs`             | 20060 - 20079                                  |
//! | `bad_configuration.rs`               | 20080 - 20099                                  |
//! | `stop_and_restart.rs`                | 20100 - 20119                                  |
//! | `addresses_under_other_spellings.rs` | 20120 - 20139                                  |
//! | `curriculum_ports.rs`                | 4001 - 4003 (locked); test peers 20140 - 20159 |
//! | `add_transaction_in_a_clone.rs`      | 4001 - 4003 (locked)                           |
//! | `clone_and_delete_nodes.rs`          | none (no node runs)                            |
//! | `interop_mixed_network.rs`           | 20160 - 20189                                  |
//! | `interop_javascript_clones.rs`       | 20190 - 20199                                  |
//! | `netns_partition_and_heal.rs`        | 20200 - 20219 (in network namespaces)          |
//! | the `bench` binary (not a test)      | 21000 - 21999                                  |
//! | `kill_9_mid_burst.rs`                | 22000 - 22019                                  |
//! | `restarted_peer_is_redialled.rs`     | 22020 - 22039                                  |
//! | `handshake_naming_5000_addresses.rs` | 22040 - 22059                                  |
//! | `hostile_peers_are_dropped.rs`       | 22060 - 22079                                  |
//! | `a_strangers_sync_flood_costs_a_bounded_budget.rs` | 22080 - 22099 |
//! | `duplicate_need_lists_are_answered_once.rs` | 22100 - 22119 |
//! | `a_new_peer_is_dialled_back_while_thousands_of_learned_addresses_wait.rs` | 22120 - 22139; black holes 23000 - 23399; named, never listened on: 24000 - 28999 |
//! | `a_stalled_reader_is_dropped_during_a_50000_burst.rs` | 22140 - 22159 |
//! | `an_unfinished_websocket_handshake_costs_nothing.rs` | 22160 - 22179 |
//! | `an_oversized_transaction_is_refused.rs` | 22180 - 22199 |
//! | `catch_up_converges_for_large_differences.rs` | 22200 - 22219 |
//! | `a_sender_faster_than_the_node_is_slowed_not_buffered.rs` | 22220 - 22239 |
//! | `timers_fire_while_frames_arrive_without_pause.rs` | 22240 - 22259 |
//! | `up_web_serves_the_page_and_refuses_a_busy_port.rs` | 22400 - 22419; 4001 - 4003 (locked, for a clone that must not be made) |
//! | `a_dial_only_watcher_joins_a_mixed_network.rs` | 22420 - 22429 |
//! | `wasm-demo/e2e/live.test.mjs` (the live page in Chromium) | 22430 - 22439 |
//! | `unfinished_messages_cost_a_bounded_budget.rs` | 22540 - 22549 |
//!
//! The curriculum's own ports, 4001 to 4003, are shared by the files marked "locked"; they
//! hold an exclusive file lock for as long as they run (see [`lock_curriculum_ports`]). The
//! dial-back test needs hundreds of addresses where a dial hangs, and every loopback spelling
//! of a host is one address to a node, so its black holes take 400 ports of their own; the
//! 5,000 addresses it names besides are refused at once, so nothing else may listen there.

mod binary;
mod cli;
mod curriculum;
mod folder;
mod frames;
mod holes;
mod js;
mod netns;
mod node;
mod ordered;
mod peer;
mod process;
mod status;
mod transactions;
mod wait;

use std::time::Duration;

pub use binary::{build_p2p_node, p2p_node_bin, workspace_root};
pub use cli::{
    add_transaction, clone_handle, error_line, read_all, run_p2p_node, sent_transaction,
    try_run_p2p_node, Run, SentTransaction,
};
pub use curriculum::{
    clone_node, curriculum_node_1, curriculum_nodes, lock_curriculum_ports, CurriculumPorts,
    CURRICULUM_PUBLIC_KEY,
};
pub use folder::{
    address, pretty_json, read_pool, read_pool_key_orders, read_pool_strict, NodeSpec, Scratch,
};
pub use frames::{
    everything_range, fingerprint_range, handshake_marked_ours, ids_range, need_range, sync_frame,
    TEST_NONCE,
};
pub use holes::{BlackHole, Resumed, StallingPeer};
pub use js::{
    ensure_interop_installed, interop_dir, js_add_transaction, wait_for_mixed_mesh,
    wait_for_pools_exactly, JsNode,
};
pub use netns::{netns_node_folder, Host, Lab, NetnsNode};
pub use node::Node;
pub use peer::{Client, Frame, TestPeer};
pub use process::{
    established_tcp_connections, open_fds, pid_of, raise_fd_limit, vm_hwm_kib, vm_rss_kib,
    MemoryWatch, KIB_PER_MIB,
};
pub use status::{request_status, wait_for_full_mesh, wait_for_settled_mesh, Sent, Status};
pub use transactions::{
    pool_file_mentions, pool_hashes, pool_text, transactions, transactions_to, write_pool,
    TestTransaction,
};
pub use wait::{wait_for, wait_until};

/// How long any wait for the network to settle may take before the test fails. Generous on
/// purpose: the machine is shared and noisy, and timings are not what these tests check.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How long a one-shot command (`add-transaction`, `clone`, a `start` that must fail) may run.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(20);

/// The first port of each test file's block (see the table above).
pub mod ports {
    /// `full_mesh.rs`.
    pub const FULL_MESH: u16 = 20000;
    /// `handshake_with_test_peer.rs`.
    pub const HANDSHAKE_WITH_TEST_PEER: u16 = 20020;
    /// `malformed_frames.rs`.
    pub const MALFORMED_FRAMES: u16 = 20040;
    /// `started_all_at_once.rs`.
    pub const STARTED_ALL_AT_ONCE: u16 = 20060;
    /// `bad_configuration.rs`.
    pub const BAD_CONFIGURATION: u16 = 20080;
    /// `stop_and_restart.rs`.
    pub const STOP_AND_RESTART: u16 = 20100;
    /// `addresses_under_other_spellings.rs`.
    pub const OTHER_SPELLINGS: u16 = 20120;
    /// The test peers of `curriculum_ports.rs`.
    pub const CURRICULUM_PEERS: u16 = 20140;
    /// The curriculum's ports, `node-1` to `node-3`.
    pub const CURRICULUM: [u16; 3] = [4001, 4002, 4003];
    /// `interop_mixed_network.rs`.
    pub const INTEROP_MIXED_NETWORK: u16 = 20160;
    /// `interop_javascript_clones.rs`.
    pub const INTEROP_JAVASCRIPT_CLONES: u16 = 20190;
    /// `netns_partition_and_heal.rs`.
    pub const NETNS_PARTITION_AND_HEAL: u16 = 20200;
    /// The `bench` binary (`src/bin/bench.rs`): 21000 to 21999.
    pub const BENCH: u16 = 21000;
    /// `kill_9_mid_burst.rs`.
    pub const KILL_9_MID_BURST: u16 = 22000;
    /// `restarted_peer_is_redialled.rs`.
    pub const RESTARTED_PEER_IS_REDIALLED: u16 = 22020;
    /// `handshake_naming_5000_addresses.rs`.
    pub const HANDSHAKE_NAMING_5000_ADDRESSES: u16 = 22040;
    /// `hostile_peers_are_dropped.rs`.
    pub const HOSTILE_PEERS_ARE_DROPPED: u16 = 22060;
    /// `a_strangers_sync_flood_costs_a_bounded_budget.rs`.
    pub const STRANGERS_SYNC_FLOOD: u16 = 22080;
    /// `duplicate_need_lists_are_answered_once.rs`.
    pub const DUPLICATE_NEED_LISTS: u16 = 22100;
    /// `a_new_peer_is_dialled_back_while_thousands_of_learned_addresses_wait.rs`.
    pub const NEW_PEER_DIALLED_BACK: u16 = 22120;
    /// The black holes of `a_new_peer_is_dialled_back_while_thousands_of_learned_addresses_wait.rs`:
    /// 23000 to 23399 (hundreds of addresses need hundreds of ports: every loopback
    /// spelling of a host is one address).
    pub const NEW_PEER_DIALLED_BACK_BLACK_HOLES: u16 = 23000;
    /// Ports that file names in its HANDSHAKE and nothing listens on: 24000 to 28999.
    pub const NEW_PEER_DIALLED_BACK_REFUSED: u16 = 24000;
    /// `a_stalled_reader_is_dropped_during_a_50000_burst.rs`.
    pub const STALLED_READER: u16 = 22140;
    /// `an_unfinished_websocket_handshake_costs_nothing.rs`.
    pub const UNFINISHED_WEBSOCKET_HANDSHAKE: u16 = 22160;
    /// `an_oversized_transaction_is_refused.rs`.
    pub const OVERSIZED_TRANSACTION: u16 = 22180;
    /// `catch_up_converges_for_large_differences.rs`.
    pub const CATCH_UP_LARGE_DIFFERENCES: u16 = 22200;
    /// `a_sender_faster_than_the_node_is_slowed_not_buffered.rs`.
    pub const FAST_SENDER: u16 = 22220;
    /// `timers_fire_while_frames_arrive_without_pause.rs`.
    pub const TIMERS_UNDER_LOAD: u16 = 22240;
    /// `a_pool_file_damaged_by_a_power_loss_is_rebuilt_from_the_journal.rs`.
    pub const POOL_FILE_REBUILT: u16 = 22260;
    /// `up_web_serves_the_page_and_refuses_a_busy_port.rs`: the page's ports and its
    /// `node-1`s, 22400 to 22419.
    pub const UP_WEB: u16 = 22400;
    /// `a_dial_only_watcher_joins_a_mixed_network.rs`: 22420 to 22429.
    pub const DIAL_ONLY_WATCHER: u16 = 22420;
    /// `an_overlay_of_real_processes_with_a_javascript_node_gets_every_transaction.rs`:
    /// 22500 to 22519.
    pub const OVERLAY_WITH_JAVASCRIPT: u16 = 22500;
    /// `unfinished_messages_cost_a_bounded_budget.rs`: 22540 to 22549.
    pub const UNFINISHED_MESSAGES: u16 = 22540;
    /// `tests/perf/burst_cpu.py` (a measurement script, not a test): 29921 on, one port
    /// per node.
    pub const PERF_BURST_CPU: u16 = 29920;
}
