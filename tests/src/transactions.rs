//! Valid transactions in bulk, and pool files of them written and read fast.
//!
//! The attack tests need pools of 50,000 to 200,000 transactions: building each as a
//! `serde_json::Value` and pretty-printing the lot would cost more than the test, so a
//! transaction here is its four values and its hash, rendered by hand in the form
//! `JSON.stringify(pool, null, 2)` writes.

use std::fs;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::curriculum::CURRICULUM_PUBLIC_KEY;

/// A transaction as the curriculum's `add-transaction` makes it:
/// `{fromAddress: null, toAddress, amount, timeStamp, hash}` with `hash` the hex SHA-256 of
/// the four values concatenated as JavaScript prints them (PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestTransaction {
    /// `toAddress`.
    pub to_address: String,
    /// `amount`.
    pub amount: u64,
    /// `timeStamp`, in ms since the epoch.
    pub time_stamp: u64,
    /// `hash`.
    pub hash: String,
}

impl TestTransaction {
    /// The transaction to `to_address` of `amount` at `time_stamp`, with its hash.
    pub fn new(to_address: &str, amount: u64, time_stamp: u64) -> TestTransaction {
        let digest = Sha256::digest(format!("null{to_address}{amount}{time_stamp}"));
        TestTransaction {
            to_address: to_address.to_owned(),
            amount,
            time_stamp,
            hash: hex(&digest),
        }
    }

    /// The object as one line of JSON, fields in the curriculum's order.
    pub fn body(&self) -> String {
        format!(
            r#"{{"fromAddress":null,"toAddress":{},"amount":{},"timeStamp":{},"hash":"{}"}}"#,
            Value::from(self.to_address.as_str()),
            self.amount,
            self.time_stamp,
            self.hash
        )
    }

    /// The object as a `Value`.
    pub fn json(&self) -> Value {
        json!({
            "fromAddress": null,
            "toAddress": self.to_address,
            "amount": self.amount,
            "timeStamp": self.time_stamp,
            "hash": self.hash,
        })
    }

    /// The whole `TRANSACTION` frame that carries it.
    pub fn frame(&self) -> String {
        format!(r#"{{"type":"TRANSACTION","data":{}}}"#, self.body())
    }

    /// The object as an element of a pool file (indented one level).
    fn pretty(&self, out: &mut String) {
        out.push_str("  {\n    \"fromAddress\": null,\n    \"toAddress\": ");
        out.push_str(&Value::from(self.to_address.as_str()).to_string());
        out.push_str(&format!(
            ",\n    \"amount\": {},\n    \"timeStamp\": {},\n    \"hash\": \"{}\"\n  }}",
            self.amount, self.time_stamp, self.hash
        ));
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// `count` distinct valid transactions to the curriculum's public key (about 280 bytes of
/// JSON each). Sets made with different `tag`s never share a transaction; one tag always
/// gives the same set.
pub fn transactions(count: usize, tag: u32) -> Vec<TestTransaction> {
    transactions_to(CURRICULUM_PUBLIC_KEY, count, tag)
}

/// [`transactions`] to `to_address` (a long one makes big transactions).
pub fn transactions_to(to_address: &str, count: usize, tag: u32) -> Vec<TestTransaction> {
    let base = 1_600_000_000_000 + u64::from(tag) * 1_000_000_000;
    (0..count as u64)
        .map(|i| TestTransaction::new(to_address, i % 100 + 1, base + i))
        .collect()
}

/// `transactions` as `JSON.stringify(pool, null, 2)` writes them.
pub fn pool_text(transactions: &[TestTransaction]) -> String {
    if transactions.is_empty() {
        return "[]".to_owned();
    }
    let mut out = String::with_capacity(transactions.len() * 330 + 4);
    out.push_str("[\n");
    for (index, tx) in transactions.iter().enumerate() {
        if index > 0 {
            out.push_str(",\n");
        }
        tx.pretty(&mut out);
    }
    out.push_str("\n]");
    out
}

/// Writes `dir/transactions.json` holding `transactions` (for a node that is not running).
pub fn write_pool(dir: &Path, transactions: &[TestTransaction]) {
    let path = dir.join("transactions.json");
    fs::write(&path, pool_text(transactions))
        .unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
}

#[derive(Deserialize)]
struct HashOnly {
    hash: String,
}

/// The hash of every transaction in `dir/transactions.json`, in the file's order; `Err` if
/// the file is not a JSON array of objects with a string `hash`. Much cheaper than
/// [`read_pool`](crate::read_pool) on a pool of 100,000.
pub fn pool_hashes(dir: &Path) -> Result<Vec<String>, String> {
    let path = dir.join("transactions.json");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let pool: Vec<HashOnly> = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a JSON array of transactions: {e}",
            path.display()
        )
    })?;
    Ok(pool.into_iter().map(|tx| tx.hash).collect())
}

/// Whether `dir/transactions.json` mentions `hash` anywhere (a quick look while a node
/// runs; check the file's form with [`pool_hashes`] once).
pub fn pool_file_mentions(dir: &Path, hash: &str) -> bool {
    let needle = format!("\"{hash}\"");
    fs::read(dir.join("transactions.json")).is_ok_and(|bytes| {
        bytes
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_transaction_hashes_its_values_as_add_transaction_does() {
        let tx = TestTransaction::new("04ab", 42, 1_700_000_000_000);
        let expected = hex(&Sha256::digest(b"null04ab421700000000000"));
        assert_eq!(tx.hash, expected);
        let parsed: Value = serde_json::from_str(&tx.body()).unwrap();
        assert_eq!(parsed, tx.json());
    }

    #[test]
    fn a_pool_file_is_written_as_json_stringify_writes_it() {
        let txs = transactions(3, 7);
        let values = Value::from(txs.iter().map(TestTransaction::json).collect::<Vec<_>>());
        let text = pool_text(&txs);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), values);
        let ordered: crate::ordered::Ordered = serde_json::from_str(&text).unwrap();
        assert_eq!(ordered.to_js_pretty(), text);
        assert_eq!(pool_text(&[]), "[]");
    }

    #[test]
    fn sets_of_different_tags_are_disjoint() {
        let a = transactions(100, 1);
        let b = transactions(100, 2);
        assert!(a.iter().all(|tx| !b.contains(tx)));
        assert_eq!(a, transactions(100, 1));
    }
}
