//! Node folders: making them, and reading what a node left in them.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::ordered::Ordered;

/// A node's address as the curriculum spells it.
pub fn address(port: u16) -> String {
    format!("ws://localhost:{port}")
}

/// `value` as JavaScript's `JSON.stringify(value, null, 2)` writes it: two-space indent, no
/// trailing newline. (serde_json's pretty printer agrees with it, but for the order of object
/// keys, which a `Value` sorts.)
pub fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a serde_json::Value always serialises")
}

/// A scratch root folder: it holds node folders side by side, as the workspace root holds
/// `node-1`, `node-2`, ... Deleted when dropped, unless the test failed.
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

/// Kept (and its path printed) when the test fails, or always when `P2P_TEST_KEEP` is set, so
/// that the node folders and their logs can be looked at.
impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("P2P_TEST_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("scratch folder kept: {}", self.dir.path().display());
        }
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
    /// More `KEY=value` lines for `.env` (`P2P_SEND_BUFFER`, ...), in order.
    pub env: Vec<(String, String)>,
}

impl NodeSpec {
    /// A node on `port` that knows no peer and has an empty pool.
    pub fn new(port: u16) -> Self {
        NodeSpec {
            port,
            known_peers: Vec::new(),
            public_key: None,
            pool: Vec::new(),
            env: Vec::new(),
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

    /// Has `KEY=value` in `.env`.
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_owned(), value.to_string()));
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
        for (key, value) in &self.env {
            env.push_str(&format!("{key}={value}\n"));
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
/// `JSON.stringify(pool, null, 2)` writes it (two-space indent, each object's keys in the
/// order they came in, no trailing newline). For a node that is stopped or idle.
pub fn read_pool_strict(dir: &Path) -> Vec<Value> {
    let pool = read_pool(dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("transactions.json");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let ordered: Ordered = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    let expected = ordered.to_js_pretty();
    if text != expected {
        let line = text
            .lines()
            .zip(expected.lines())
            .position(|(got, want)| got != want)
            .map_or_else(
                || "at the end".to_owned(),
                |index| format!("from line {}", index + 1),
            );
        panic!(
            "{} is valid JSON but not written as JSON.stringify(pool, null, 2) writes it \
             (two-space indent, no trailing newline); it differs {line}.\nIt holds:\n{}\n\
             Expected:\n{}",
            path.display(),
            clip(&text, 2000),
            clip(&expected, 2000),
        );
    }
    pool
}

/// The keys of each transaction in `dir/transactions.json`, in the order the file has them
/// (which a `Value` forgets), with its hash; panics if the file is not a JSON array of objects.
pub fn read_pool_key_orders(dir: &Path) -> Vec<(String, Vec<String>)> {
    let path = dir.join("transactions.json");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let Ok(Ordered::Array(pool)) = serde_json::from_str::<Ordered>(&text) else {
        panic!(
            "{} is not a JSON array:\n{}",
            path.display(),
            clip(&text, 2000)
        );
    };
    pool.iter()
        .map(|tx| {
            let Ordered::Object(fields) = tx else {
                panic!(
                    "{} holds a transaction that is not an object: {tx:?}",
                    path.display()
                );
            };
            let hash = fields
                .iter()
                .find_map(|(key, value)| match (key.as_str(), value) {
                    ("hash", Ordered::String(hash)) => Some(hash.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            (hash, fields.iter().map(|(key, _)| key.clone()).collect())
        })
        .collect()
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
