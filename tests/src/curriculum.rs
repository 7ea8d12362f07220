//! The curriculum's own layout: `node-1` on 4001 and its clones, under a lock on the ports.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use crate::cli::run_p2p_node;
use crate::folder::{NodeSpec, Scratch};
use crate::wait::wait_until;
use crate::COMMAND_DEADLINE;

/// The `MY_PUBLIC_KEY` of the test's `node-1`: an uncompressed secp256k1 public key in hex,
/// as the curriculum's is.
pub const CURRICULUM_PUBLIC_KEY: &str = "04\
    6a1e2b7c9d0f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d\
    3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8b";

/// `node-1` as PROTOCOL.md has it: `PORT=4001`, a `MY_PUBLIC_KEY`, knowing 4001 and 4003,
/// an empty pool.
pub fn curriculum_node_1() -> NodeSpec {
    NodeSpec::new(4001)
        .knowing(&[4001, 4003])
        .public_key(CURRICULUM_PUBLIC_KEY)
}

/// Writes `node-1` in `scratch` and makes `node-2` and `node-3` with `p2p-node clone`, as a
/// person following the curriculum does; returns the three folders.
pub fn curriculum_nodes(scratch: &Scratch) -> [PathBuf; 3] {
    let node_1 = scratch.node_folder("node-1", &curriculum_node_1());
    for _ in 0..2 {
        clone_node(scratch.path());
    }
    let [node_2, node_3] = ["node-2", "node-3"].map(|name| scratch.path().join(name));
    for dir in [&node_2, &node_3] {
        assert!(
            dir.is_dir(),
            "p2p-node clone did not make {}",
            dir.display()
        );
    }
    [node_1, node_2, node_3]
}

/// Runs `p2p-node clone` in `root` and asserts it succeeded.
pub fn clone_node(root: &Path) {
    let run = run_p2p_node(&["clone"], root, COMMAND_DEADLINE);
    assert!(run.status.success(), "clone failed: {}", run.describe());
}

/// Held while a test uses the curriculum's ports 4001 to 4003.
#[derive(Debug)]
pub struct CurriculumPorts {
    _lock: Flock<File>,
}

/// Takes the exclusive lock on the curriculum's ports (a `flock` on
/// `$TMPDIR/p2p-node-tests-4001.lock`, waiting while another test holds it), then checks
/// that nothing else listens on 4001 to 4003, panicking with a clear message if something does
/// (a `p2p-node up` left running, say).
pub fn lock_curriculum_ports() -> CurriculumPorts {
    let path = std::env::temp_dir().join("p2p-node-tests-4001.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the lock file {}: {e}", path.display()));
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("cannot lock {}: {e}", path.display()));
    for port in crate::ports::CURRICULUM {
        // A node of the previous holder may still be on its way out: give it a moment.
        let free = wait_until(Duration::from_secs(10), || {
            TcpListener::bind(("0.0.0.0", port)).is_ok()
        });
        assert!(
            free,
            "port {port} is in use by another process; stop it (a `p2p-node up`, or a node \
             started by hand?) before running the tests on the curriculum's ports"
        );
    }
    CurriculumPorts { _lock: lock }
}
