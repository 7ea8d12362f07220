//! Frames of our extensions as a peer (or an attacker) writes them: a HANDSHAKE marked as
//! one of ours, and SYNC frames of catch-up in every shape.
//!
//! A SYNC frame is `{"type":"SYNC","data":[range, ...]}`; a range is `[lo, ub)` of the
//! sorted order of hashes (`ub` null for the end) and carries one of: a fingerprint of what
//! the sender holds in it (`n` and `fp`, 16 hex digits), every hash the sender holds in it
//! (`ids`), or the hashes it asks for (`need`). See `p2p-core/src/sync.rs`.

use serde_json::{json, Value};

/// The `ext` value of the HANDSHAKEs the tests send as one of ours: any 16 hex digits.
pub const TEST_NONCE: &str = "00000000e2e0e2e0";

/// A HANDSHAKE listing `addresses` (the sender's own first), marked as one of ours by its
/// `ext` key, as our nodes send it: an acceptor answers it with HELLO and takes SYNC frames
/// on the connection.
pub fn handshake_marked_ours(addresses: &[String]) -> String {
    json!({"type": "HANDSHAKE", "data": addresses, "ext": TEST_NONCE}).to_string()
}

/// A SYNC frame carrying `ranges`.
pub fn sync_frame(ranges: &[Value]) -> String {
    json!({"type": "SYNC", "data": ranges}).to_string()
}

/// The range `[lo, ub)` with the sender's count and fingerprint of it.
pub fn fingerprint_range(lo: &str, ub: Option<&str>, n: u64, fp: &str) -> Value {
    json!({"lo": lo, "ub": ub, "n": n, "fp": fp})
}

/// The range `[lo, ub)` with every hash the sender holds in it.
pub fn ids_range(lo: &str, ub: Option<&str>, ids: &[&str]) -> Value {
    json!({"lo": lo, "ub": ub, "ids": ids})
}

/// The whole order of hashes, asking for `hashes`.
pub fn need_range(hashes: &[&str]) -> Value {
    json!({"lo": "", "ub": null, "need": hashes})
}

/// The whole order of hashes, saying the sender holds none of it: a request for every
/// transaction of the receiver's pool.
pub fn everything_range() -> Value {
    ids_range("", None, &[])
}
