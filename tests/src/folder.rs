//! Node folders: making them, and reading what a node left in them.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A node's address as the curriculum spells it.
pub fn address(port: u16) -> String {
    format!("ws://localhost:{port}")
}

/// `value` as JavaScript's `JSON.stringify(value, null, 2)` writes it: two-space indent, no
/// trailing newline. (serde_json's pretty printer agrees with it on everything a pool holds.)
pub fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a serde_json::Value always serialises")
}

/// A scratch root folder, deleted when dropped: it holds node folders side by side, as the
/// workspace root holds `node-1`, `node-2`, ...
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// Makes an empty scratch folder.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("p2p-node-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("could not make a scratch folder: {e}"));
        Scratch { dir }
    }

    /// The scratch folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the node folder `name` in the scratch folder from `spec`.
    pub fn node_folder(&self, name: &str, spec: &NodeSpec) -> PathBuf {
        let dir = self.path().join(name);
        spec.write(&dir);
        dir
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// What goes into a node folder: `.env`, `known-peers.json` and `transactions.json`.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// `PORT` in `.env`.
    pub port: u16,
    /// `known-peers.json`.
    pub known_peers: Vec<String>,
    /// `MY_PUBLIC_KEY` in `.env`, left out when `None`.
    pub public_key: Option<String>,
    /// `transactions.json`.
    pub pool: Vec<Value>,
}

impl NodeSpec {
    /// A node on `port` that knows no peer and has an empty pool.
    pub fn new(port: u16) -> Self {
        NodeSpec {
            port,
            known_peers: Vec::new(),
            public_key: None,
            pool: Vec::new(),
        }
    }

    /// Knows the nodes on these ports (as `ws://localhost:PORT`).
    pub fn knowing(mut self, ports: &[u16]) -> Self {
        self.known_peers = ports.iter().map(|&port| address(port)).collect();
        self
    }

    /// Has `MY_PUBLIC_KEY=key`.
    pub fn public_key(mut self, key: &str) -> Self {
        self.public_key = Some(key.to_owned());
        self
    }

    /// Starts with this pool.
    pub fn pool(mut self, pool: Vec<Value>) -> Self {
        self.pool = pool;
        self
    }

    /// Writes the folder (created if missing), as the curriculum's `node-1` is written.
    pub fn write(&self, dir: &Path) {
        fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("could not make node folder {}: {e}", dir.display()));
        let mut env = format!("PORT={}\n", self.port);
        if let Some(key) = &self.public_key {
            env.push_str(&format!("MY_PUBLIC_KEY={key}\n"));
        }
        write_file(&dir.join(".env"), &env);
        let peers = Value::from(self.known_peers.clone());
        write_file(&dir.join("known-peers.json"), &pretty_json(&peers));
        let pool = Value::from(self.pool.clone());
        write_file(&dir.join("transactions.json"), &pretty_json(&pool));
    }
}

fn write_file(path: &Path, content: &str) {
    fs::write(path, content).unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
}

/// The pool in `dir/transactions.json`, or why it cannot be read as a JSON array.
/// Tolerant of layout: use it while polling a running node; use [`read_pool_strict`] to check
/// the file's exact form.
pub fn read_pool(dir: &Path) -> Result<Vec<Value>, String> {
    let path = dir.join("transactions.json");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(pool)) => Ok(pool),
        Ok(other) => Err(format!("{} is not a JSON array: {other}", path.display())),
        Err(e) => Err(format!(
            "{} is not valid JSON ({e}); it holds:\n{}",
            path.display(),
            clip(&text, 2000)
        )),
    }
}

/// The pool in `dir/transactions.json`; panics unless it is a JSON array written exactly as
/// `JSON.stringify(pool, null, 2)` writes it. For a node that is stopped or idle.
pub fn read_pool_strict(dir: &Path) -> Vec<Value> {
    let pool = read_pool(dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("transactions.json");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let expected = pretty_json(&Value::from(pool.clone()));
    assert!(
        text == expected,
        "{} is valid JSON but not written as JSON.stringify(pool, null, 2) writes it \
         (two-space indent, no trailing newline).\nIt holds:\n{}\nExpected:\n{}",
        path.display(),
        clip(&text, 2000),
        clip(&expected, 2000),
    );
    pool
}

/// At most `max` bytes of `text` (on a char boundary), marking the cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more)", &text[..end], text.len() - end)
}
