//! `p2p-node clone` copies `node-1` to the lowest free `node-N` with only `PORT=4000+N` in its
//! `.env`; `p2p-node delete-nodes` removes every `node-<digits>` folder but `node-1`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use tests::{clone_node, curriculum_node_1, run_p2p_node, Scratch, COMMAND_DEADLINE};

/// The names of the entries in `root`.
fn entries(root: &Path) -> BTreeSet<String> {
    fs::read_dir(root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Checks that `root/node-N` is a clone of `root/node-1`.
fn assert_clone(root: &Path, n: u16) {
    let clone = root.join(format!("node-{n}"));
    assert!(clone.is_dir(), "{} was not made", clone.display());
    let env = String::from_utf8_lossy(&read(&clone.join(".env"))).into_owned();
    let lines: Vec<&str> = env
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(
        lines,
        vec![format!("PORT={}", 4000 + n)],
        "node-{n}/.env should hold only PORT={}; it holds:\n{env}",
        4000 + n
    );
    for file in ["known-peers.json", "transactions.json"] {
        assert_eq!(
            read(&clone.join(file)),
            read(&root.join("node-1").join(file)),
            "node-{n}/{file} is not a copy of node-1/{file}"
        );
    }
}

#[test]
fn clone_takes_the_lowest_free_number_and_delete_nodes_keeps_node_1() {
    let scratch = Scratch::new();
    let root = scratch.path();
    // A node-1 with a pool that is not empty, to see it copied as it is.
    let pool = vec![serde_json::json!({
        "fromAddress": null, "toAddress": "04ab", "amount": 7, "timeStamp": 1700000000000u64,
        "hash": "00".repeat(32),
    })];
    scratch.node_folder("node-1", &curriculum_node_1().pool(pool));

    // Run in the root, as `cargo clone-node` is.
    clone_node(root);
    assert_clone(root, 2);
    clone_node(root);
    assert_clone(root, 3);

    // A gap is filled first.
    fs::remove_dir_all(root.join("node-2")).unwrap_or_else(|e| panic!("cannot remove node-2: {e}"));
    clone_node(root);
    assert_clone(root, 2);
    // Then the next one after the highest.
    let root_arg = root.to_string_lossy().into_owned();
    let elsewhere = std::env::temp_dir();
    let run = run_p2p_node(
        &["clone", "--root", &root_arg],
        &elsewhere,
        COMMAND_DEADLINE,
    );
    assert!(run.status.success(), "{}", run.describe());
    assert_clone(root, 4);

    // Folders delete-nodes must leave alone, and one more it must remove.
    for name in ["node-x", "node-1-backup", "notes", "node-10"] {
        fs::create_dir(root.join(name)).unwrap_or_else(|e| panic!("cannot make {name}: {e}"));
    }
    fs::write(root.join("node-x").join("keep.txt"), "kept").unwrap_or_else(|e| panic!("{e}"));
    let node_1_before: Vec<Vec<u8>> = [".env", "known-peers.json", "transactions.json"]
        .iter()
        .map(|file| read(&root.join("node-1").join(file)))
        .collect();

    let run = run_p2p_node(&["delete-nodes"], root, COMMAND_DEADLINE);
    assert!(run.status.success(), "{}", run.describe());
    let expected: BTreeSet<String> = ["node-1", "node-x", "node-1-backup", "notes"]
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(
        entries(root),
        expected,
        "delete-nodes removed the wrong folders"
    );
    let node_1_after: Vec<Vec<u8>> = [".env", "known-peers.json", "transactions.json"]
        .iter()
        .map(|file| read(&root.join("node-1").join(file)))
        .collect();
    assert_eq!(node_1_before, node_1_after, "delete-nodes changed node-1");
    assert!(
        root.join("node-x").join("keep.txt").is_file(),
        "delete-nodes emptied node-x"
    );

    // With --root, from elsewhere; and cloning starts again at 2.
    clone_node(root);
    assert_clone(root, 2);
    let run = run_p2p_node(
        &["delete-nodes", "--root", &root_arg],
        &elsewhere,
        COMMAND_DEADLINE,
    );
    assert!(run.status.success(), "{}", run.describe());
    assert_eq!(
        entries(root),
        expected,
        "delete-nodes --root removed the wrong folders"
    );
}
