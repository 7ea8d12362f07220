//! Frames on the wire: one JSON object per WebSocket text frame.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::address::Address;
use crate::sync::{self, Range, SyncError};
use crate::transaction::{Transaction, TransactionError};

/// Longest `type` we copy into a log line.
const MAX_TYPE_LEN: usize = 64;

/// A frame the core understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `HANDSHAKE`: the sender's address, then every address it holds an open dial to.
    /// Entries are kept as text; each is checked when it is used.
    Handshake {
        /// The listed addresses.
        addresses: Vec<Cow<'a, str>>,
        /// The sender is one of our nodes: it marked the frame with an `ext` key, which
        /// JavaScript nodes ignore, and speaks SYNC and TXS.
        ours: bool,
        /// The `ext` key's value: a random number the sender chose for the connection
        /// (lets a node recognise its own HANDSHAKE when it dialled itself by an alias).
        nonce: Option<u64>,
        /// The sender only dials (a browser tab): it lists no address of its own, since
        /// none reaches it, and is pushed transactions on the connection it opened. Marked
        /// with `"dialOnly":true`, which JavaScript nodes ignore (they see an empty list).
        dial_only: bool,
        /// The sender runs the overlay (`Config::overlay`): it asks for no dial back, and
        /// a JOIN or NEIGHBOR follows on this connection if it wants a link. Marked with
        /// `"overlay":true`, which JavaScript nodes ignore.
        overlay: bool,
    },
    /// An overlay frame (ours; see [`Overlay`]).
    Overlay(Overlay<'a>),
    /// `TRANSACTION`: a transaction to pool and pass on.
    Transaction(Transaction),
    /// `STATUS_REQUEST` (ours): asks for a [`STATUS`](crate::Status) reply on the same
    /// connection. JavaScript nodes ignore it.
    StatusRequest,
    /// `HELLO` (ours): the answer, on an accepted connection, to a HANDSHAKE marked as
    /// ours, so the dialler learns at once that it reached one of ours.
    Hello,
    /// `SYNC` (ours): a step of catch-up between two of our nodes (see the `sync` module).
    Sync(Vec<Range>),
    /// `TXS` (ours): transactions a peer found we lack during catch-up.
    Txs(Vec<Transaction>),
    /// `TRANSACTIONS` (ours): transactions pushed together, each as a `TRANSACTION` would
    /// be. A node of ours pushes to a peer of ours the new transactions it handles in one
    /// go (a burst) in one frame; JavaScript nodes are never sent it.
    Transactions(Vec<Transaction>),
    /// `WATCH` (ours): the sender asks to be streamed what this node does, as EVENT
    /// frames on the same connection (see the crate docs).
    Watch,
    /// `EVENT` (ours): one thing a node we watch did; its `data`, a JSON object, as text.
    Event(&'a str),
    /// A `type` we do not know: ignored, as the JavaScript nodes do.
    Unknown(String),
}

/// The overlay's frames (ours, between nodes that run `Config::overlay`; JavaScript
/// nodes never get them). Addresses and hashes are kept as text, checked where used;
/// hashes as they appear in transactions (their JSON text, escapes and all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay<'a> {
    /// `JOIN`: the sender, new to the overlay, asks for a link (always granted) and to be
    /// introduced to the overlay.
    Join,
    /// `FORWARD_JOIN {"node", "ttl"}`: `node` joined; walk it `ttl` more hops.
    ForwardJoin {
        /// The newcomer's address.
        node: Cow<'a, str>,
        /// Hops left.
        ttl: u8,
    },
    /// `NEIGHBOR {"high"}`: the sender asks for a link; `high` when it has none (then it
    /// must be granted).
    Neighbor {
        /// The sender has no link at all.
        high: bool,
    },
    /// `NEIGHBOR_REPLY {"accept"}`: the answer to NEIGHBOR.
    NeighborReply {
        /// The link is granted.
        accept: bool,
    },
    /// `DISCONNECT`: the sender drops this link (its active view was full).
    Disconnect,
    /// `SWAP {"drop"}`: the sender, whose view is full, asks for a link and will drop
    /// its link to `drop` for it (a degree-keeping exchange of links that mixes an
    /// overlay formed in a hurry).
    Swap {
        /// The link the sender gives up.
        drop: Cow<'a, str>,
    },
    /// `SWAP_REPLY {"accept", "to"}`: the answer to SWAP; `to`, the link the receiver
    /// gave up for it (the sender tells `drop` to link with it), if it gave one up.
    SwapReply {
        /// The link is granted.
        accept: bool,
        /// The link given up for it.
        to: Option<Cow<'a, str>>,
    },
    /// `REWIRE {"to"}`: the sender drops this link for a SWAP; the receiver links with
    /// `to`, which lost one the same way (the smaller address of the two dials).
    Rewire {
        /// Whom to link with.
        to: Cow<'a, str>,
    },
    /// `SHUFFLE [addresses]`: a few addresses the sender knows, itself first; answered
    /// with as many of the receiver's.
    Shuffle(Vec<Cow<'a, str>>),
    /// `SHUFFLE_REPLY [addresses]`.
    ShuffleReply(Vec<Cow<'a, str>>),
    /// `IHAVE [hashes]`: the sender has these transactions (announced, not pushed).
    IHave(Vec<&'a str>),
    /// `GRAFT [hashes]`: the sender misses these: push them.
    Graft(Vec<&'a str>),
    /// `TREE {"root", "dist", "parent"}`: the sender's place in the overlay's tree: the
    /// root it knows, its distance to it, and whether the receiver is its parent.
    Tree {
        /// The root's address.
        root: Cow<'a, str>,
        /// Links between the sender and the root.
        dist: u16,
        /// The receiver is the sender's parent.
        parent: bool,
    },
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Longer than the configured limit.
    #[error("frame of {len} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Size of the frame.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// A binary frame; the protocol only has text frames.
    #[error("binary frame of {0} bytes")]
    Binary(usize),
    /// Not a JSON object with a string `type`.
    #[error("frame is not a JSON object with a string type: {0}")]
    NotJson(String),
    /// A HANDSHAKE whose `data` is not an array of strings.
    #[error("HANDSHAKE data is not an array of strings")]
    BadHandshake,
    /// A TRANSACTION whose `data` is not a transaction.
    #[error("TRANSACTION data refused: {0}")]
    BadTransaction(#[from] TransactionError),
    /// A known type without its `data`.
    #[error("{0} frame has no data")]
    NoData(&'static str),
    /// A SYNC frame that is not a list of valid ranges.
    #[error("SYNC refused: {0}")]
    BadSync(String),
    /// A transaction longer than the node takes.
    #[error("transaction of {len} bytes is over the {limit}-byte limit")]
    TransactionTooLarge {
        /// Length of the transaction's JSON text.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// A frame only peers of ours may send, from a connection whose peer has not said
    /// it is one (no HANDSHAKE with `ext`, no HELLO).
    #[error("{0} from a peer that has not identified itself as one of ours")]
    NotIdentified(&'static str),
    /// A request from a connection that leaves a full send buffer unread.
    #[error("{0} while the answers already queued for this connection are unread")]
    Unread(&'static str),
    /// An EVENT whose `data` is not a JSON object.
    #[error("EVENT data is not a JSON object")]
    BadEvent,
    /// An overlay frame whose `data` is not of its shape.
    #[error("{0} data is not of its shape")]
    BadOverlay(&'static str),
    /// An overlay frame from a peer that is not in the overlay with us (no HANDSHAKE
    /// marked `overlay`, or we do not run it).
    #[error("{0} from a peer that is not in the overlay with this node")]
    NotInOverlay(&'static str),
    /// A request while the connection already has as many waiting as it may.
    #[error("SYNC while {0} requests of this connection wait for an answer")]
    TooManyRequests(usize),
}

impl From<SyncError> for FrameError {
    fn from(error: SyncError) -> FrameError {
        FrameError::BadSync(error.to_string())
    }
}

/// A string borrowed from the frame when it has no escapes, else owned.
#[derive(Deserialize)]
struct BorrowedOrOwned<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ext: Option<&'a RawValue>,
    #[serde(rename = "dialOnly", borrow, default)]
    dial_only: Option<&'a RawValue>,
    #[serde(borrow, default)]
    overlay: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ForwardJoinData<'a> {
    #[serde(borrow)]
    node: BorrowedOrOwned<'a>,
    ttl: u8,
}

#[derive(Deserialize)]
struct TreeData<'a> {
    #[serde(borrow)]
    root: BorrowedOrOwned<'a>,
    dist: u16,
    parent: bool,
}

#[derive(Deserialize)]
struct SwapData<'a> {
    #[serde(borrow)]
    drop: BorrowedOrOwned<'a>,
}

#[derive(Deserialize)]
struct SwapReplyData<'a> {
    accept: bool,
    #[serde(borrow, default)]
    to: Option<BorrowedOrOwned<'a>>,
}

#[derive(Deserialize)]
struct RewireData<'a> {
    #[serde(borrow)]
    to: BorrowedOrOwned<'a>,
}

#[derive(Deserialize)]
struct HighData {
    high: bool,
}

#[derive(Deserialize)]
struct AcceptData {
    accept: bool,
}

/// A `data` array of strings, borrowed where they have no escapes.
fn strings<'a>(
    data: Option<&'a RawValue>,
    kind: &'static str,
) -> Result<Vec<Cow<'a, str>>, FrameError> {
    let data = data.ok_or(FrameError::NoData(kind))?;
    serde_json::from_str::<Vec<BorrowedOrOwned<'a>>>(data.get())
        .map(|list| list.into_iter().map(|s| s.0).collect())
        .map_err(|_| FrameError::BadOverlay(kind))
}

/// A `data` array of hashes, each as its JSON text between the quotes (as a transaction
/// holds it).
fn hashes<'a>(data: Option<&'a RawValue>, kind: &'static str) -> Result<Vec<&'a str>, FrameError> {
    let data = data.ok_or(FrameError::NoData(kind))?;
    let list: Vec<&'a RawValue> =
        serde_json::from_str(data.get()).map_err(|_| FrameError::BadOverlay(kind))?;
    list.into_iter()
        .map(|raw| {
            let text = raw.get();
            match text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
                true => Ok(&text[1..text.len() - 1]),
                false => Err(FrameError::BadOverlay(kind)),
            }
        })
        .collect()
}

/// The `data` object of an overlay frame.
fn object<'a, T: Deserialize<'a>>(
    data: Option<&'a RawValue>,
    kind: &'static str,
) -> Result<T, FrameError> {
    let data = data.ok_or(FrameError::NoData(kind))?;
    serde_json::from_str(data.get()).map_err(|_| FrameError::BadOverlay(kind))
}

/// Decodes one text frame, refusing anything longer than `max_len` bytes.
pub fn decode(text: &str, max_len: usize) -> Result<Frame<'_>, FrameError> {
    if text.len() > max_len {
        return Err(FrameError::TooLarge {
            len: text.len(),
            limit: max_len,
        });
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
        // serde_json quotes the offending input: cut on a character boundary.
        let message = e.to_string();
        let end = message
            .char_indices()
            .nth(120)
            .map_or(message.len(), |(i, _)| i);
        FrameError::NotJson(message[..end].to_owned())
    })?;
    match envelope.kind.as_ref() {
        "HANDSHAKE" => {
            let data = envelope.data.ok_or(FrameError::NoData("HANDSHAKE"))?;
            // Borrowed from the frame's text: no allocation per address.
            let addresses: Vec<Cow<'_, str>> =
                serde_json::from_str::<Vec<BorrowedOrOwned<'_>>>(data.get())
                    .map_err(|_| FrameError::BadHandshake)?
                    .into_iter()
                    .map(|a| a.0)
                    .collect();
            let nonce = envelope
                .ext
                .and_then(|raw| serde_json::from_str::<&str>(raw.get()).ok())
                .and_then(|hex| u64::from_str_radix(hex, 16).ok());
            Ok(Frame::Handshake {
                addresses,
                ours: envelope.ext.is_some(),
                nonce,
                dial_only: envelope.dial_only.is_some_and(|raw| raw.get() == "true"),
                overlay: envelope.overlay.is_some_and(|raw| raw.get() == "true"),
            })
        }
        "JOIN" => Ok(Frame::Overlay(Overlay::Join)),
        "FORWARD_JOIN" => {
            let data: ForwardJoinData<'_> = object(envelope.data, "FORWARD_JOIN")?;
            Ok(Frame::Overlay(Overlay::ForwardJoin {
                node: data.node.0,
                ttl: data.ttl,
            }))
        }
        "NEIGHBOR" => {
            let data: HighData = object(envelope.data, "NEIGHBOR")?;
            Ok(Frame::Overlay(Overlay::Neighbor { high: data.high }))
        }
        "NEIGHBOR_REPLY" => {
            let data: AcceptData = object(envelope.data, "NEIGHBOR_REPLY")?;
            Ok(Frame::Overlay(Overlay::NeighborReply {
                accept: data.accept,
            }))
        }
        "DISCONNECT" => Ok(Frame::Overlay(Overlay::Disconnect)),
        "SWAP" => {
            let data: SwapData<'_> = object(envelope.data, "SWAP")?;
            Ok(Frame::Overlay(Overlay::Swap { drop: data.drop.0 }))
        }
        "SWAP_REPLY" => {
            let data: SwapReplyData<'_> = object(envelope.data, "SWAP_REPLY")?;
            Ok(Frame::Overlay(Overlay::SwapReply {
                accept: data.accept,
                to: data.to.map(|to| to.0),
            }))
        }
        "REWIRE" => {
            let data: RewireData<'_> = object(envelope.data, "REWIRE")?;
            Ok(Frame::Overlay(Overlay::Rewire { to: data.to.0 }))
        }
        "SHUFFLE" => Ok(Frame::Overlay(Overlay::Shuffle(strings(
            envelope.data,
            "SHUFFLE",
        )?))),
        "SHUFFLE_REPLY" => Ok(Frame::Overlay(Overlay::ShuffleReply(strings(
            envelope.data,
            "SHUFFLE_REPLY",
        )?))),
        "IHAVE" => Ok(Frame::Overlay(Overlay::IHave(hashes(
            envelope.data,
            "IHAVE",
        )?))),
        "GRAFT" => Ok(Frame::Overlay(Overlay::Graft(hashes(
            envelope.data,
            "GRAFT",
        )?))),
        "TREE" => {
            let data: TreeData<'_> = object(envelope.data, "TREE")?;
            Ok(Frame::Overlay(Overlay::Tree {
                root: data.root.0,
                dist: data.dist,
                parent: data.parent,
            }))
        }
        "SYNC" => {
            let data = envelope.data.ok_or(FrameError::NoData("SYNC"))?;
            let ranges: Vec<Range> =
                serde_json::from_str(data.get()).map_err(|e| FrameError::BadSync(e.to_string()))?;
            sync::validate(&ranges)?;
            Ok(Frame::Sync(ranges))
        }
        "TXS" => Ok(Frame::Txs(transactions(envelope.data, "TXS")?)),
        "TRANSACTIONS" => Ok(Frame::Transactions(transactions(
            envelope.data,
            "TRANSACTIONS",
        )?)),
        "TRANSACTION" => {
            let data = envelope.data.ok_or(FrameError::NoData("TRANSACTION"))?;
            Ok(Frame::Transaction(Transaction::from_raw(data)?))
        }
        "STATUS_REQUEST" => Ok(Frame::StatusRequest),
        "HELLO" => Ok(Frame::Hello),
        "WATCH" => Ok(Frame::Watch),
        "EVENT" => {
            let data = envelope.data.ok_or(FrameError::NoData("EVENT"))?;
            if !data.get().starts_with('{') {
                return Err(FrameError::BadEvent);
            }
            Ok(Frame::Event(data.get()))
        }
        other => {
            let end = other
                .char_indices()
                .nth(MAX_TYPE_LEN)
                .map_or(other.len(), |(i, _)| i);
            Ok(Frame::Unknown(other[..end].to_owned()))
        }
    }
}

/// The transactions of a frame's `data`, a JSON array of them.
fn transactions(
    data: Option<&RawValue>,
    kind: &'static str,
) -> Result<Vec<Transaction>, FrameError> {
    let data = data.ok_or(FrameError::NoData(kind))?;
    let list: Vec<&RawValue> = serde_json::from_str(data.get())
        .map_err(|_| FrameError::BadTransaction(TransactionError::NotAnObject))?;
    Ok(list
        .into_iter()
        .map(Transaction::from_raw)
        .collect::<Result<Vec<_>, _>>()?)
}

/// The HANDSHAKE frame: `own` first, then `connected`; marked with an `ext` key holding
/// `nonce` in hex, so our nodes know each other (JavaScript nodes ignore extra keys).
pub fn handshake<'a>(
    own: &Address,
    connected: impl IntoIterator<Item = &'a Address>,
    nonce: u64,
) -> String {
    // Canonical addresses hold only [a-z0-9.:\[\]-]: nothing JSON would escape.
    let mut out = String::with_capacity(64);
    out.push_str(r#"{"type":"HANDSHAKE","data":[""#);
    out.push_str(own.as_str());
    for address in connected {
        out.push_str(r#"",""#);
        out.push_str(address.as_str());
    }
    out.push_str(r#""],"ext":""#);
    out.push_str(&format!("{nonce:016x}"));
    out.push_str(r#""}"#);
    out
}

/// The HANDSHAKE of a node that only dials (see [`Frame::Handshake`]'s `dial_only`): no
/// address, since none reaches it; marked as ours and as dial-only.
pub fn handshake_dial_only(nonce: u64) -> String {
    format!(r#"{{"type":"HANDSHAKE","data":[],"ext":"{nonce:016x}","dialOnly":true}}"#)
}

/// The HANDSHAKE of an overlay node (see [`Frame::Handshake`]'s `overlay`): only its
/// own address (the receiver dials nothing), marked as ours and as the overlay's.
pub fn handshake_overlay(own: &Address, nonce: u64) -> String {
    format!(
        r#"{{"type":"HANDSHAKE","data":["{}"],"ext":"{nonce:016x}","overlay":true}}"#,
        own.as_str()
    )
}

/// JOIN (see [`Overlay::Join`]).
pub(crate) const JOIN: &str = r#"{"type":"JOIN"}"#;
/// DISCONNECT (see [`Overlay::Disconnect`]).
pub(crate) const DISCONNECT: &str = r#"{"type":"DISCONNECT"}"#;
/// TREE (see [`Overlay::Tree`]).
pub(crate) fn tree(root: &Address, dist: u16, parent: bool) -> String {
    format!(
        r#"{{"type":"TREE","data":{{"root":"{}","dist":{dist},"parent":{parent}}}}}"#,
        root.as_str()
    )
}

/// FORWARD_JOIN (see [`Overlay::ForwardJoin`]).
pub(crate) fn forward_join(node: &Address, ttl: u8) -> String {
    format!(
        r#"{{"type":"FORWARD_JOIN","data":{{"node":"{}","ttl":{ttl}}}}}"#,
        node.as_str()
    )
}

/// SWAP (see [`Overlay::Swap`]).
pub(crate) fn swap(drop: &Address) -> String {
    format!(r#"{{"type":"SWAP","data":{{"drop":"{}"}}}}"#, drop.as_str())
}

/// SWAP_REPLY (see [`Overlay::SwapReply`]).
pub(crate) fn swap_reply(accept: bool, to: Option<&Address>) -> String {
    match to {
        Some(to) => format!(
            r#"{{"type":"SWAP_REPLY","data":{{"accept":{accept},"to":"{}"}}}}"#,
            to.as_str()
        ),
        None => format!(r#"{{"type":"SWAP_REPLY","data":{{"accept":{accept}}}}}"#),
    }
}

/// REWIRE (see [`Overlay::Rewire`]).
pub(crate) fn rewire(to: &Address) -> String {
    format!(r#"{{"type":"REWIRE","data":{{"to":"{}"}}}}"#, to.as_str())
}

/// NEIGHBOR (see [`Overlay::Neighbor`]).
pub(crate) fn neighbor(high: bool) -> String {
    format!(r#"{{"type":"NEIGHBOR","data":{{"high":{high}}}}}"#)
}

/// NEIGHBOR_REPLY (see [`Overlay::NeighborReply`]).
pub(crate) fn neighbor_reply(accept: bool) -> String {
    format!(r#"{{"type":"NEIGHBOR_REPLY","data":{{"accept":{accept}}}}}"#)
}

/// SHUFFLE or SHUFFLE_REPLY (`kind`) carrying `addresses`.
pub(crate) fn shuffle<'a>(kind: &str, addresses: impl IntoIterator<Item = &'a Address>) -> String {
    let mut out = format!(r#"{{"type":"{kind}","data":["#);
    for (i, address) in addresses.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(address.as_str());
        out.push('"');
    }
    out.push_str("]}");
    out
}

/// IHAVE or GRAFT (`kind`) carrying `hashes` (each as its JSON text, as a transaction
/// holds it).
pub(crate) fn hashes_frame<'a>(kind: &str, hashes: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = format!(r#"{{"type":"{kind}","data":["#);
    for (i, hash) in hashes.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(hash);
        out.push('"');
    }
    out.push_str("]}");
    out
}

/// The WATCH frame (see [`Frame::Watch`]).
pub(crate) const WATCH: &str = r#"{"type":"WATCH"}"#;

/// An EVENT frame carrying `data`, a JSON object.
pub(crate) fn event(data: &str) -> String {
    format!(r#"{{"type":"EVENT","data":{data}}}"#)
}

/// The HELLO frame (see [`Frame::Hello`]).
pub(crate) const HELLO: &str = r#"{"type":"HELLO","data":1}"#;

/// A SYNC frame carrying `ranges`.
pub(crate) fn sync(ranges: &[Range]) -> String {
    let data = serde_json::to_string(ranges).unwrap_or_else(|_| "[]".to_owned());
    format!(r#"{{"type":"SYNC","data":{data}}}"#)
}

/// How a TXS frame starts: its bodies follow, separated by commas, then [`TXS_TAIL`].
pub(crate) const TXS_HEAD: &str = r#"{"type":"TXS","data":["#;
/// How a TXS frame ends.
pub(crate) const TXS_TAIL: &str = "]}";

/// How a TRANSACTIONS frame starts: its bodies follow, separated by commas, then
/// [`TXS_TAIL`].
pub(crate) const TRANSACTIONS_HEAD: &str = r#"{"type":"TRANSACTIONS","data":["#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_frames_decode_to_their_address_list() {
        let frame = decode(
            r#"{"type":"HANDSHAKE","data":["ws://localhost:4002","ws://localhost:4001"]}"#,
            1000,
        );
        assert_eq!(
            frame,
            Ok(Frame::Handshake {
                addresses: vec![
                    Cow::from("ws://localhost:4002"),
                    Cow::from("ws://localhost:4001")
                ],
                ours: false,
                nonce: None,
                dial_only: false,
                overlay: false,
            })
        );
    }

    #[test]
    fn extra_top_level_keys_are_ignored() {
        let frame = decode(r#"{"x":1,"type":"HANDSHAKE","data":[],"y":[1,2]}"#, 1000);
        assert_eq!(
            frame,
            Ok(Frame::Handshake {
                addresses: vec![],
                ours: false,
                nonce: None,
                dial_only: false,
                overlay: false,
            })
        );
    }

    #[test]
    fn unknown_types_are_reported_not_refused() {
        assert_eq!(
            decode(r#"{"type":"PING"}"#, 1000),
            Ok(Frame::Unknown("PING".into()))
        );
    }

    #[test]
    fn frames_of_the_wrong_shape_are_refused() {
        let refused = [
            "not json",
            "",
            "[]",
            "null",
            r#"{"data":[]}"#,
            r#"{"type":7}"#,
            r#"{"type":"HANDSHAKE"}"#,
            r#"{"type":"HANDSHAKE","data":"ws://localhost:1"}"#,
            r#"{"type":"HANDSHAKE","data":[1,2]}"#,
            r#"{"type":"TRANSACTION","data":[]}"#,
            r#"{"type":"TRANSACTION","data":{"amount":1}}"#,
            r#"{"type":"TRANSACTION"}"#,
        ];
        for text in refused {
            assert!(decode(text, 1000).is_err(), "{text}");
        }
    }

    #[test]
    fn a_long_error_about_multibyte_text_does_not_panic() {
        let text = format!("{{\"type\": {}", "é".repeat(200));
        assert!(matches!(decode(&text, 10_000), Err(FrameError::NotJson(_))));
    }

    #[test]
    fn frames_over_the_size_limit_are_refused_before_parsing() {
        let text = format!(r#"{{"type":"HANDSHAKE","data":["{}"]}}"#, "a".repeat(100));
        assert!(matches!(
            decode(&text, 50),
            Err(FrameError::TooLarge { limit: 50, .. })
        ));
    }

    #[test]
    fn handshake_lists_own_address_first() {
        let own = Address::localhost(4001);
        let other = Address::localhost(4002);
        assert_eq!(
            handshake(&own, [&other], 0xabc),
            r#"{"type":"HANDSHAKE","data":["ws://localhost:4001","ws://localhost:4002"],"ext":"0000000000000abc"}"#
        );
    }

    #[test]
    fn a_dial_only_handshake_lists_nothing_and_says_so() {
        let text = handshake_dial_only(7);
        assert_eq!(
            decode(&text, 1000),
            Ok(Frame::Handshake {
                addresses: vec![],
                ours: true,
                nonce: Some(7),
                dial_only: true,
                overlay: false,
            })
        );
        // Only `true` marks it: any other value is an ordinary HANDSHAKE.
        let other = r#"{"type":"HANDSHAKE","data":[],"ext":"7","dialOnly":"yes"}"#;
        assert!(matches!(
            decode(other, 1000),
            Ok(Frame::Handshake {
                dial_only: false,
                ..
            })
        ));
    }

    #[test]
    fn events_carry_a_json_object_as_text() {
        let text = event(r#"{"kind":"peers","connected":[]}"#);
        assert_eq!(
            decode(&text, 1000),
            Ok(Frame::Event(r#"{"kind":"peers","connected":[]}"#))
        );
        assert_eq!(
            decode(r#"{"type":"EVENT","data":[1]}"#, 1000),
            Err(FrameError::BadEvent)
        );
        assert_eq!(decode(WATCH, 1000), Ok(Frame::Watch));
    }

    #[test]
    fn our_handshake_marks_the_sender_as_ours() {
        let text = handshake(&Address::localhost(1), [], 7);
        assert!(matches!(
            decode(&text, 1000),
            Ok(Frame::Handshake {
                ours: true,
                nonce: Some(7),
                ..
            })
        ));
    }

    #[test]
    fn overlay_frames_round_trip_and_refuse_the_wrong_shape() {
        let me = Address::localhost(4001);
        assert!(matches!(
            decode(&handshake_overlay(&me, 9), 1000),
            Ok(Frame::Handshake { ours: true, overlay: true, ref addresses, .. })
                if addresses.len() == 1 && addresses[0] == me.as_str()
        ));
        assert_eq!(decode(JOIN, 1000), Ok(Frame::Overlay(Overlay::Join)));
        assert_eq!(
            decode(&forward_join(&me, 6), 1000),
            Ok(Frame::Overlay(Overlay::ForwardJoin {
                node: Cow::from(me.as_str()),
                ttl: 6
            }))
        );
        assert_eq!(
            decode(&neighbor(true), 1000),
            Ok(Frame::Overlay(Overlay::Neighbor { high: true }))
        );
        assert_eq!(
            decode(&neighbor_reply(false), 1000),
            Ok(Frame::Overlay(Overlay::NeighborReply { accept: false }))
        );
        assert_eq!(
            decode(DISCONNECT, 1000),
            Ok(Frame::Overlay(Overlay::Disconnect))
        );
        let other = Address::localhost(4002);
        assert_eq!(
            decode(&swap(&other), 1000),
            Ok(Frame::Overlay(Overlay::Swap {
                drop: Cow::from(other.as_str())
            }))
        );
        assert_eq!(
            decode(&swap_reply(true, Some(&other)), 1000),
            Ok(Frame::Overlay(Overlay::SwapReply {
                accept: true,
                to: Some(Cow::from(other.as_str()))
            }))
        );
        assert_eq!(
            decode(&swap_reply(false, None), 1000),
            Ok(Frame::Overlay(Overlay::SwapReply {
                accept: false,
                to: None
            }))
        );
        assert_eq!(
            decode(&rewire(&other), 1000),
            Ok(Frame::Overlay(Overlay::Rewire {
                to: Cow::from(other.as_str())
            }))
        );
        assert_eq!(
            decode(&tree(&me, 3, true), 1000),
            Ok(Frame::Overlay(Overlay::Tree {
                root: Cow::from(me.as_str()),
                dist: 3,
                parent: true
            }))
        );
        let two = [me.clone(), Address::localhost(4002)];
        assert_eq!(
            decode(&shuffle("SHUFFLE_REPLY", &two), 1000),
            Ok(Frame::Overlay(Overlay::ShuffleReply(vec![
                Cow::from(me.as_str()),
                Cow::from("ws://localhost:4002")
            ])))
        );
        // Hashes keep their JSON text: an escape stays as the transaction holds it.
        assert_eq!(
            decode(&hashes_frame("IHAVE", ["ab", r#"c\"d"#]), 1000),
            Ok(Frame::Overlay(Overlay::IHave(vec!["ab", r#"c\"d"#])))
        );
        for bad in [
            r#"{"type":"FORWARD_JOIN","data":{"node":"x","ttl":300}}"#,
            r#"{"type":"NEIGHBOR","data":{}}"#,
            r#"{"type":"GRAFT","data":[1]}"#,
            r#"{"type":"SHUFFLE","data":"x"}"#,
        ] {
            assert!(
                matches!(decode(bad, 1000), Err(FrameError::BadOverlay(_))),
                "{bad}"
            );
        }
        assert_eq!(
            decode(r#"{"type":"IHAVE"}"#, 1000),
            Err(FrameError::NoData("IHAVE"))
        );
    }
}
