//! Transactions: opaque JSON objects named by their `hash`.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Longest `hash` we accept; a SHA-256 in hex is 64 bytes.
pub const MAX_HASH_LEN: usize = 128;

/// A transaction as it travels: the JSON object as it arrived, and its hash.
///
/// The body is kept as text, never re-serialised, so it is passed on with the same
/// fields in the same order, as the protocol asks; only whitespace between tokens is
/// dropped, so a transaction read back from a pretty-printed pool file is the same
/// transaction. Cloning is cheap (shared text). The hash is read from the body's text,
/// not kept in an allocation of its own: a pool holds one allocation per transaction.
#[derive(Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The body; then, only if the hash is not found verbatim in it (escapes), the hash.
    text: Arc<str>,
    body_len: u32,
    hash_start: u32,
    hash_len: u32,
}

/// Why a JSON value is not a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// The value is not a JSON object.
    #[error("transaction is not a JSON object")]
    NotAnObject,
    /// The object has no `hash`, or it is not a string.
    #[error("transaction has no string hash")]
    NoHash,
    /// The hash is empty or longer than [`MAX_HASH_LEN`].
    #[error("transaction hash is empty or longer than {MAX_HASH_LEN} bytes")]
    BadHash,
    /// The text is not JSON at all.
    #[error("transaction is not valid JSON: {0}")]
    Json(String),
}

#[derive(Deserialize)]
struct HashOnly<'a> {
    #[serde(borrow)]
    hash: Option<HashText<'a>>,
}

/// The hash's text, borrowed from the JSON where it has no escapes. A newtype because
/// serde borrows a `Cow` only where it is the field's own type: an `Option<Cow<str>>`
/// is always copied, which left every transaction to search its body for its hash
/// (about a sixth of a receiving node's processor time in a burst).
#[derive(Deserialize)]
struct HashText<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl Transaction {
    /// A transaction from the raw JSON of its object (as found in a frame or a pool file).
    pub fn from_raw(raw: &RawValue) -> Result<Transaction, TransactionError> {
        let text = raw.get();
        if !text.starts_with('{') {
            return Err(TransactionError::NotAnObject);
        }
        let fields: HashOnly<'_> =
            serde_json::from_str(text).map_err(|_| TransactionError::NoHash)?;
        let HashText(hash) = fields.hash.ok_or(TransactionError::NoHash)?;
        if hash.is_empty() || hash.len() > MAX_HASH_LEN {
            return Err(TransactionError::BadHash);
        }
        let body = minify(text);
        // Where the hash stands in the text it was read from, if it was read as it is
        // (no escapes) and the text needed no minifying: no search for it.
        let at = match (&body, &hash) {
            (std::borrow::Cow::Borrowed(body), std::borrow::Cow::Borrowed(hash)) => {
                let start = (hash.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
                body.get(start..start + hash.len())
                    .is_some_and(|found| found.as_ptr() == hash.as_ptr())
                    .then_some(start)
            }
            _ => None,
        };
        Ok(Transaction::new_at(&body, &hash, at))
    }

    /// The transaction of `body`, whose hash is `hash`.
    fn new(body: &str, hash: &str) -> Transaction {
        Transaction::new_at(body, hash, None)
    }

    /// The transaction of `body`, whose hash is `hash`, found at byte `at` of the body if
    /// known.
    fn new_at(body: &str, hash: &str, at: Option<usize>) -> Transaction {
        // A body is at most a frame; hashes at most `MAX_HASH_LEN`.
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match at.or_else(|| body.find(hash)) {
            Some(start) => Transaction {
                text: Arc::from(body),
                body_len: len(body.len()),
                hash_start: len(start),
                hash_len: len(hash.len()),
            },
            None => Transaction {
                text: Arc::from(format!("{body}{hash}")),
                body_len: len(body.len()),
                hash_start: len(body.len()),
                hash_len: len(hash.len()),
            },
        }
    }

    /// A transaction from the JSON text of its object.
    pub fn from_json(text: &str) -> Result<Transaction, TransactionError> {
        let raw: &RawValue =
            serde_json::from_str(text).map_err(|e| TransactionError::Json(e.to_string()))?;
        Transaction::from_raw(raw)
    }

    /// A new transaction as the curriculum's `add-transaction` makes it.
    ///
    /// `{fromAddress: null, toAddress, amount, timeStamp, hash}` where `hash` is the hex
    /// SHA-256 of the four values concatenated as JavaScript prints them. Without a public
    /// key (a cloned node) `toAddress` is `null` and hashed as `"null"`: unlike the
    /// original, whose hash is then the same for every transaction, each one keeps its own.
    pub fn create(to_address: Option<&str>, amount: u64, time_stamp_ms: u64) -> Transaction {
        let to_text = to_address.unwrap_or("null");
        let digest = Sha256::digest(format!("null{to_text}{amount}{time_stamp_ms}"));
        let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let to_json = match to_address {
            Some(key) => serde_json::to_string(key).unwrap_or_else(|_| "null".to_owned()),
            None => "null".to_owned(),
        };
        let body = format!(
            r#"{{"fromAddress":null,"toAddress":{to_json},"amount":{amount},"timeStamp":{time_stamp_ms},"hash":"{hash}"}}"#
        );
        Transaction::new(&body, &hash)
    }

    /// The transaction's `hash`, its identity.
    pub fn hash(&self) -> &str {
        let start = self.hash_start as usize;
        &self.text[start..start + self.hash_len as usize]
    }

    /// The hash's bytes (no check of character boundaries: for comparisons).
    fn hash_bytes(&self) -> &[u8] {
        let start = self.hash_start as usize;
        &self.text.as_bytes()[start..start + self.hash_len as usize]
    }

    /// The hash, shared (indexes keep it without a copy).
    pub(crate) fn shared_hash(&self) -> TxHash {
        TxHash {
            prefix: prefix(self.hash_bytes()),
            text: Arc::clone(&self.text),
            start: self.hash_start,
            len: self.hash_len,
        }
    }

    /// The JSON object as it arrived.
    pub fn body(&self) -> &str {
        &self.text[..self.body_len as usize]
    }

    /// Whether `other` is this very transaction (the same shared text), not only an
    /// equal one.
    pub(crate) fn is_same(&self, other: &Transaction) -> bool {
        Arc::ptr_eq(&self.text, &other.text)
    }

    /// The whole TRANSACTION frame that carries it.
    pub fn to_frame(&self) -> String {
        format!(r#"{{"type":"TRANSACTION","data":{}}}"#, self.body())
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Transaction({})", self.short_hash())
    }
}

impl Transaction {
    /// The first eight characters of the hash, for logs.
    pub fn short_hash(&self) -> &str {
        let hash = self.hash();
        let end = hash.char_indices().nth(8).map_or(hash.len(), |(i, _)| i);
        &hash[..end]
    }
}

/// A transaction's hash, for indexes: ordered, compared and hashed as the hash's text,
/// and sharing the transaction's allocation.
///
/// Its first eight bytes are kept beside the pointer, so two hashes that differ in them
/// (any two SHA-256s, but for one pair in four billion) are ordered without reading
/// either transaction's text: a pool's sorted index compares a new hash with about 25
/// others, and each read of a text was a cache miss (`memcmp` under `BTreeMap::entry`
/// was a tenth of a receiving node's processor time in a burst). The same size as
/// the transaction it replaced here.
#[derive(Clone)]
pub(crate) struct TxHash {
    /// The first eight bytes, big-endian, zeros after a shorter hash: ordered as the
    /// text is, where they differ.
    prefix: u64,
    /// The transaction's text, and where the hash stands in it.
    text: Arc<str>,
    start: u32,
    len: u32,
}

/// A hash's first eight bytes as a number that orders as they do: if
/// `prefix(a) < prefix(b)` then `a < b` (zeros pad a shorter hash, which is then a
/// prefix of the other one, or differs from it in a byte that is not zero).
fn prefix(hash: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = hash.len().min(8);
    bytes[..n].copy_from_slice(&hash[..n]);
    u64::from_be_bytes(bytes)
}

impl TxHash {
    /// A hash of its own, for tests of indexes: the transaction `{"hash":...}`.
    #[cfg(test)]
    pub(crate) fn of(hash: &str) -> TxHash {
        let body = format!(r#"{{"hash":{}}}"#, serde_json::Value::from(hash));
        Transaction::new(&body, hash).shared_hash()
    }

    fn bytes(&self) -> &[u8] {
        let start = self.start as usize;
        &self.text.as_bytes()[start..start + self.len as usize]
    }
}

impl std::ops::Deref for TxHash {
    type Target = str;
    fn deref(&self) -> &str {
        let start = self.start as usize;
        &self.text[start..start + self.len as usize]
    }
}

impl std::borrow::Borrow<str> for TxHash {
    fn borrow(&self) -> &str {
        self
    }
}

impl PartialEq for TxHash {
    fn eq(&self, other: &TxHash) -> bool {
        self.prefix == other.prefix && self.bytes() == other.bytes()
    }
}

impl Eq for TxHash {}

impl PartialOrd for TxHash {
    fn partial_cmp(&self, other: &TxHash) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TxHash {
    /// As the hashes' text: byte by byte, as `str` orders (a `BTreeMap<TxHash, _>` is
    /// searched with `&str` keys too).
    fn cmp(&self, other: &TxHash) -> std::cmp::Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.bytes().cmp(other.bytes()))
    }
}

impl std::hash::Hash for TxHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl AsRef<str> for TxHash {
    fn as_ref(&self) -> &str {
        self
    }
}

impl fmt::Display for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Where a pool file went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolFileError {
    /// Not a JSON array (or not JSON): with the line and column serde_json reports.
    #[error("not a JSON array of transactions at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// Entry `index` (0-based) is not a transaction.
    #[error("entry {index} is not a transaction: {error}")]
    Entry {
        /// 0-based position in the array.
        index: usize,
        /// What is wrong with it.
        error: TransactionError,
    },
}

/// Reads a pool file (`transactions.json`): a JSON array of transaction objects.
pub fn parse_pool(text: &str) -> Result<Vec<Transaction>, PoolFileError> {
    let entries: Vec<&RawValue> =
        serde_json::from_str(text).map_err(|e| PoolFileError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    entries
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            Transaction::from_raw(raw).map_err(|error| PoolFileError::Entry { index, error })
        })
        .collect()
}

/// The whole pool file, as `JSON.stringify(pool, null, 2)` writes it.
pub fn render_pool<'a>(pool: impl IntoIterator<Item = &'a Transaction>) -> String {
    let mut out = String::from("[");
    let mut any = false;
    for tx in pool {
        out.push_str(if any { ",\n  " } else { "\n  " });
        pretty_into(&mut out, tx.body(), 1);
        any = true;
    }
    out.push_str(if any { "\n]" } else { "]" });
    out
}

/// Whether `text` is exactly what [`render_pool`] makes of `pool`, checked one
/// transaction at a time, without rendering the whole pool (a copy of its size).
pub fn is_rendered_pool(text: &str, pool: &[Transaction]) -> bool {
    let Some(mut rest) = text.strip_prefix('[') else {
        return false;
    };
    let mut one = String::new();
    for (i, tx) in pool.iter().enumerate() {
        let Some(after) = rest.strip_prefix(if i == 0 { "\n  " } else { ",\n  " }) else {
            return false;
        };
        one.clear();
        pretty_into(&mut one, tx.body(), 1);
        let Some(after) = after.strip_prefix(one.as_str()) else {
            return false;
        };
        rest = after;
    }
    rest == if pool.is_empty() { "]" } else { "\n]" }
}

/// The text that replaces the closing `\n]` of a non-empty pool file to append `new`
/// (so appending costs the size of the new transactions, not of the pool).
pub fn render_appended<'a>(new: impl IntoIterator<Item = &'a Transaction>) -> String {
    let mut out = String::new();
    for tx in new {
        out.push_str(",\n  ");
        pretty_into(&mut out, tx.body(), 1);
    }
    out.push_str("\n]");
    out
}

/// Drops the whitespace between the tokens of valid JSON text.
fn minify(json: &str) -> std::borrow::Cow<'_, str> {
    // Whole blocks at a time with no exit per byte, which the compiler vectorises: the
    // text is a frame's usual compact JSON, and this runs for every transaction received.
    let spaced = json.as_bytes().chunks(64).any(|block| {
        block.iter().fold(false, |seen, &b| {
            seen | matches!(b, b' ' | b'\t' | b'\n' | b'\r')
        })
    });
    if !spaced {
        return std::borrow::Cow::Borrowed(json);
    }
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Whitespace inside a string is kept.
                i = string_end(bytes, i + 1);
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&json[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&json[start.min(json.len())..]);
    std::borrow::Cow::Owned(out)
}

/// Where the JSON string whose text starts at byte `from` of `bytes` ends: just past its
/// closing quote (or the end of `bytes`).
fn string_end(bytes: &[u8], mut from: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    // Whether some byte of `word` is zero.
    let any_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGH != 0;
    loop {
        // Eight bytes at a time while none is a quote or a backslash.
        while let Some(word) = bytes.get(from..from + 8) {
            let word = u64::from_ne_bytes(word.try_into().unwrap_or_default());
            if any_zero(word ^ QUOTES) || any_zero(word ^ BACKSLASHES) {
                break;
            }
            from += 8;
        }
        match bytes
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b'"' || b == b'\\'))
        {
            Some(k) if bytes[from + k] == b'"' => return from + k + 1,
            // An escape: the byte after the backslash is never the string's end.
            Some(k) => from += k + 2,
            None => return bytes.len(),
        }
    }
}

/// Re-indents valid compact or spaced JSON text as `JSON.stringify(v, null, 2)` does,
/// starting at nesting `depth`.
fn pretty_into(out: &mut String, json: &str, depth: usize) {
    let bytes = json.as_bytes();
    let mut depth = depth;
    let mut i = 0;
    let mut start = 0; // start of the pending run of bytes to copy verbatim
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Copy the whole string, escapes included.
                i = string_end(bytes, i + 1);
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&json[start..i]);
                start = i + 1;
            }
            open @ (b'{' | b'[') => {
                out.push_str(&json[start..i]);
                let close = if open == b'{' { b'}' } else { b']' };
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == close {
                    out.push(open as char);
                    out.push(close as char);
                    i = j + 1;
                    start = i;
                    continue;
                }
                out.push(open as char);
                depth += 1;
                newline(out, depth);
                start = i + 1;
            }
            close @ (b'}' | b']') => {
                out.push_str(&json[start..i]);
                depth = depth.saturating_sub(1);
                newline(out, depth);
                out.push(close as char);
                start = i + 1;
            }
            b',' => {
                out.push_str(&json[start..i]);
                out.push(',');
                newline(out, depth);
                start = i + 1;
            }
            b':' => {
                out.push_str(&json[start..i]);
                out.push_str(": ");
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        out.push_str(&json[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_transaction_hashes_the_four_values_as_javascript_prints_them() {
        let tx = Transaction::create(Some("04ab"), 42, 1_700_000_000_000);
        let expected = Sha256::digest(b"null04ab421700000000000");
        let expected: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(tx.hash(), expected);
        assert_eq!(
            tx.body(),
            format!(
                r#"{{"fromAddress":null,"toAddress":"04ab","amount":42,"timeStamp":1700000000000,"hash":"{expected}"}}"#
            )
        );
    }

    #[test]
    fn a_hash_without_escapes_is_taken_where_the_hash_field_stands() {
        // The same text earlier in the body: found by its field, not by a search.
        let tx = Transaction::from_json(r#"{"note":"ab","hash":"ab"}"#).expect("a transaction");
        assert_eq!(tx.hash(), "ab");
        assert_eq!(Some(tx.hash_start as usize), tx.body().rfind("ab"));
        let escaped =
            Transaction::from_json(r#"{"note":"ab","hash":"a\u0062"}"#).expect("a transaction");
        assert_eq!(escaped.hash(), "ab");
    }

    #[test]
    fn hashes_order_and_compare_as_their_text_whatever_their_first_bytes() {
        let texts = [
            "",
            "\u{0}",
            "a",
            "a\u{0}",
            "a\u{0}\u{0}b",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefgh\u{0}",
            "abcdefgh0",
            "abcdefghi",
            "abcdefgi",
            "é",
            "éa",
            "zz",
        ];
        for a in texts {
            for b in texts {
                let (x, y) = (TxHash::of(a), TxHash::of(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(x == y, a == b, "{a:?} against {b:?}");
            }
        }
    }

    #[test]
    fn transactions_made_without_a_key_still_get_distinct_hashes() {
        let a = Transaction::create(None, 5, 1000);
        let b = Transaction::create(None, 5, 1001);
        assert_ne!(a.hash(), b.hash());
        assert_ne!(
            a.hash(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_transaction_keeps_its_fields_in_order_without_whitespace() {
        let text = r#"{"b":1,"a":[2,3],"hash":"h1","z":{"y":null,"s":"x y\" z"}}"#;
        let spaced =
            "{\"b\": 1,\n \"a\":[2,\t3],\"hash\":\"h1\",\"z\":{\"y\":null,\"s\":\"x y\\\" z\"} }";
        let tx = Transaction::from_json(spaced).unwrap();
        assert_eq!(tx.body(), text);
        assert_eq!(tx.hash(), "h1");
        assert_eq!(
            tx.to_frame(),
            format!(r#"{{"type":"TRANSACTION","data":{text}}}"#)
        );
    }

    #[test]
    fn values_that_are_not_transactions_are_refused() {
        assert_eq!(
            Transaction::from_json("[1]"),
            Err(TransactionError::NotAnObject)
        );
        assert_eq!(Transaction::from_json("{}"), Err(TransactionError::NoHash));
        for not_a_string in [r#"{"hash":7}"#, r#"{"hash":null}"#, r#"{"hash":["h"]}"#] {
            assert_eq!(
                Transaction::from_json(not_a_string),
                Err(TransactionError::NoHash)
            );
        }
        assert_eq!(
            Transaction::from_json(r#"{"hash":""}"#),
            Err(TransactionError::BadHash)
        );
        let long = format!(r#"{{"hash":"{}"}}"#, "a".repeat(MAX_HASH_LEN + 1));
        assert_eq!(
            Transaction::from_json(&long),
            Err(TransactionError::BadHash)
        );
    }

    #[test]
    fn pool_renders_as_json_stringify_with_two_spaces() {
        assert_eq!(render_pool([]), "[]");
        let a = Transaction::from_json(
            r#"{"fromAddress":null,"toAddress":"k","amount":1,"timeStamp":2,"hash":"h","x":[],"y":{},"s":"a,b:{c}\"]"}"#,
        )
        .unwrap();
        let b = Transaction::from_json(r#"{"hash":"i","n":[1, {"m": true}]}"#).unwrap();
        let expected = "[\n  {\n    \"fromAddress\": null,\n    \"toAddress\": \"k\",\n    \"amount\": 1,\n    \"timeStamp\": 2,\n    \"hash\": \"h\",\n    \"x\": [],\n    \"y\": {},\n    \"s\": \"a,b:{c}\\\"]\"\n  },\n  {\n    \"hash\": \"i\",\n    \"n\": [\n      1,\n      {\n        \"m\": true\n      }\n    ]\n  }\n]";
        assert_eq!(render_pool([&a, &b]), expected);
    }

    /// [`string_end`] byte by byte.
    fn string_end_slowly(bytes: &[u8], mut i: usize) -> usize {
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        (i + 1).min(bytes.len())
    }

    #[test]
    fn a_string_ends_at_its_first_unescaped_quote_at_every_offset_in_a_word() {
        for before in 0..20 {
            for escape in [r#"\""#, r#"\\"#, r#"\u0041"#, ""] {
                for after in 0..20 {
                    for tail in [r#"""#, r#"","x":"y""#, ""] {
                        let text = format!(
                            r#""{}{escape}{}{tail}"#,
                            "a".repeat(before),
                            "b".repeat(after)
                        );
                        let bytes = text.as_bytes();
                        assert_eq!(string_end(bytes, 1), string_end_slowly(bytes, 1), "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn strings_with_escapes_are_copied_whole_wherever_their_quotes_and_backslashes_stand() {
        let bodies = [
            r#"{"hash":"a","t":"x\\","u":"\\\"}","v":"\"","w":"\\\\"}"#,
            r#"{"hash":"b","n":[ "\\" , "\"\"" ],"s":"{[,:]}"}"#,
            r#"{"a":"\\","hash":"c"}"#,
        ];
        // Keys in order and no `\u` escapes: serde_json's value sorts keys and decodes
        // escapes, where a node keeps the text it was sent.
        for body in bodies {
            let tx = Transaction::from_json(body).unwrap();
            let value: serde_json::Value = serde_json::from_str(body).unwrap();
            let expected = serde_json::to_string_pretty(&serde_json::json!([value])).unwrap();
            assert_eq!(render_pool([&tx]), expected, "{body}");
        }
    }

    #[test]
    fn appending_to_a_rendered_pool_gives_the_rendered_whole() {
        let a = Transaction::create(Some("k"), 1, 10);
        let b = Transaction::create(Some("k"), 2, 20);
        let c = Transaction::create(None, 3, 30);
        let first = render_pool([&a]);
        let appended = format!("{}{}", &first[..first.len() - 2], render_appended([&b, &c]));
        assert_eq!(appended, render_pool([&a, &b, &c]));
        assert_eq!(parse_pool(&appended).unwrap(), vec![a, b, c]);
    }

    #[test]
    fn the_hash_is_read_from_the_body_or_kept_beside_it_when_escaped() {
        let plain = Transaction::from_json(r#"{ "amount": 1, "hash": "abc" }"#).unwrap();
        assert_eq!(
            (plain.body(), plain.hash()),
            (r#"{"amount":1,"hash":"abc"}"#, "abc")
        );
        let escaped = Transaction::from_json(r#"{"amount":1,"hash":"ab\u0063"}"#).unwrap();
        assert_eq!(escaped.body(), r#"{"amount":1,"hash":"ab\u0063"}"#);
        assert_eq!(escaped.hash(), "abc");
        assert_eq!(
            escaped.to_frame(),
            format!(r#"{{"type":"TRANSACTION","data":{}}}"#, escaped.body())
        );
        assert_ne!(plain, escaped);
        assert_eq!(
            plain,
            Transaction::from_json(r#"{"amount":1,"hash":"abc"}"#).unwrap()
        );
    }

    #[test]
    fn a_rendered_pool_is_recognised_and_any_other_text_is_not() {
        let pool: Vec<_> = (0..3)
            .map(|n| Transaction::create(Some("04ab"), n + 1, 1_700_000_000_000 + n))
            .collect();
        for n in 0..=pool.len() {
            let text = render_pool(&pool[..n]);
            assert!(is_rendered_pool(&text, &pool[..n]));
            assert!(!is_rendered_pool(&format!("{text}\n"), &pool[..n]));
            assert!(!is_rendered_pool(&text[..text.len() - 1], &pool[..n]));
            if n > 0 {
                assert!(!is_rendered_pool(&text, &pool[..n - 1]));
                assert!(!is_rendered_pool(&text.replace("\n  ", "\n "), &pool[..n]));
            }
        }
        let mut swapped = pool.clone();
        swapped.swap(0, 1);
        assert!(!is_rendered_pool(&render_pool(&pool), &swapped));
    }

    #[test]
    fn a_broken_pool_file_reports_where() {
        match parse_pool("[\n  {\"hash\": \"a\"},\n  {\"hash\": \n") {
            Err(PoolFileError::Syntax { line, .. }) => assert_eq!(line, 4),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            parse_pool(r#"[{"hash":"a"}, 3]"#),
            Err(PoolFileError::Entry {
                index: 1,
                error: TransactionError::NotAnObject
            })
        );
    }
}
