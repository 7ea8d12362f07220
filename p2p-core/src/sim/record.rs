//! What the simulator counts and writes down: frames by type and by link, the per-node
//! story, and broken invariants.

use std::collections::VecDeque;
use std::fmt;
use std::ops::AddAssign;

use serde::Deserialize;

use super::NodeId;
use crate::time::Time;

/// The type of a frame, as the counters tell them apart.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrameKind {
    /// `HANDSHAKE`.
    Handshake,
    /// `TRANSACTION`, or our catch-up's `TXS`: a frame that carries transaction bodies.
    /// (Our packed pushes, `TRANSACTIONS`, count as [`FrameKind::Other`], as they always
    /// have; [`Counters::packed`] counts them apart.)
    Transaction,
    /// Any other type (`STATUS`, `TRANSACTIONS`, extensions, the overlay's frames, frames
    /// that are not JSON).
    Other,
}

impl FrameKind {
    /// The type of a frame's text. Frames of our nodes start with their `type`, so this is
    /// a look at the first key; anything else is parsed for its `type`.
    pub fn of(text: &str) -> FrameKind {
        let named = text
            .strip_prefix(r#"{"type":""#)
            .and_then(|rest| rest.split_once('"'))
            .map(|(name, _)| name)
            .filter(|name| !name.contains('\\'));
        if let Some(name) = named {
            return FrameKind::named(name);
        }
        #[derive(Deserialize)]
        struct TypeOnly<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        match serde_json::from_str::<TypeOnly<'_>>(text) {
            Ok(t) => FrameKind::named(&t.kind),
            _ => FrameKind::Other,
        }
    }

    fn named(name: &str) -> FrameKind {
        match name {
            "HANDSHAKE" => FrameKind::Handshake,
            "TRANSACTION" | "TXS" => FrameKind::Transaction,
            _ => FrameKind::Other,
        }
    }
}

/// How a `TRANSACTIONS` frame of ours starts.
pub(super) fn is_packed(text: &str) -> bool {
    text.starts_with(r#"{"type":"TRANSACTIONS""#)
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameKind::Handshake => "HANDSHAKE",
            FrameKind::Transaction => "TRANSACTION",
            FrameKind::Other => "other",
        })
    }
}

/// Frames counted by type.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// `HANDSHAKE` frames.
    pub handshake: u64,
    /// `TRANSACTION` frames.
    pub transaction: u64,
    /// Frames of any other type.
    pub other: u64,
}

impl FrameCounts {
    /// Frames of every type.
    pub fn total(&self) -> u64 {
        self.handshake + self.transaction + self.other
    }

    /// Counts one frame of `kind`.
    pub fn add(&mut self, kind: FrameKind) {
        match kind {
            FrameKind::Handshake => self.handshake += 1,
            FrameKind::Transaction => self.transaction += 1,
            FrameKind::Other => self.other += 1,
        }
    }

    /// The count for `kind`.
    pub fn get(&self, kind: FrameKind) -> u64 {
        match kind {
            FrameKind::Handshake => self.handshake,
            FrameKind::Transaction => self.transaction,
            FrameKind::Other => self.other,
        }
    }
}

impl AddAssign for FrameCounts {
    fn add_assign(&mut self, rhs: FrameCounts) {
        self.handshake += rhs.handshake;
        self.transaction += rhs.transaction;
        self.other += rhs.other;
    }
}

/// Totals over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames the nodes handed to the network (the cost of the protocol).
    pub sent: FrameCounts,
    /// Frames that reached a node.
    pub delivered: FrameCounts,
    /// Frames lost because their connection closed, or a node crashed, on the way.
    pub dropped: FrameCounts,
    /// `TRANSACTIONS` frames sent (our packed pushes, and every push of an overlay
    /// node), counted among `sent.other`: with `sent.transaction`, every frame that
    /// carried transaction bodies.
    pub packed: u64,
    /// Dials the nodes asked for.
    pub dials: u64,
    /// Dials that failed: nobody listening, a partition, or the dialler gave up.
    pub dials_failed: u64,
    /// Connections that opened.
    pub connections: u64,
    /// Connection ends a node was told are closed.
    pub closes: u64,
    /// Events the simulator processed.
    pub events: u64,
    /// EVENT frames of watched nodes handed to a watching node's host.
    pub watched: u64,
    /// Times a node asked to be woken at or before the moment it was just woken at;
    /// the simulator then waits a millisecond so that virtual time moves on.
    pub busy_timeouts: u64,
}

/// Something a node did that the protocol forbids, or that the simulator could not make
/// sense of (a frame on a connection the node does not hold, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When it was seen.
    pub at: Time,
    /// The node at fault.
    pub node: NodeId,
    /// What happened, in words.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: VIOLATION {}", self.at, self.node, self.what)
    }
}

/// Bounded ring buffer of story lines: the newest `capacity` are kept.
#[derive(Debug, Default)]
pub(crate) struct Log {
    capacity: usize,
    lines: VecDeque<Line>,
    dropped: u64,
}

/// One line of the story, as written, and what it is about.
#[derive(Debug)]
struct Line {
    at: Time,
    who: Option<NodeId>,
    violation: bool,
    /// Where the text starts in `line`, after `"<at> <who>: "`.
    text_start: usize,
    line: String,
}

/// One line of the story, in parts: for a page to show without reading the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry<'a> {
    /// When.
    pub at: Time,
    /// The node whose line it is; `None` for the simulator's own.
    pub node: Option<NodeId>,
    /// A broken invariant (the simulator's check), not a notice of the node.
    pub violation: bool,
    /// What happened, in words.
    pub text: &'a str,
}

impl Log {
    pub(crate) fn new(capacity: usize) -> Log {
        Log {
            capacity,
            lines: VecDeque::new(),
            dropped: 0,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Writes `"<at> <who>: <text>"`, `who` being `sim` for the network itself.
    pub(crate) fn write(&mut self, at: Time, who: Option<NodeId>, text: fmt::Arguments<'_>) {
        self.push(at, who, false, text);
    }

    /// Writes a broken invariant: `"<at> <who>: VIOLATION <text>"`.
    pub(crate) fn write_violation(&mut self, at: Time, who: NodeId, text: &str) {
        self.push(at, Some(who), true, format_args!("VIOLATION {text}"));
    }

    fn push(&mut self, at: Time, who: Option<NodeId>, violation: bool, text: fmt::Arguments<'_>) {
        if self.capacity == 0 {
            return;
        }
        let head = match who {
            Some(node) => format!("{at} {node}: "),
            None => format!("{at} sim: "),
        };
        let text_start = head.len();
        let mut line = head;
        fmt::Write::write_fmt(&mut line, text).unwrap_or(());
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(Line {
            at,
            who,
            violation,
            text_start,
            line,
        });
    }

    pub(crate) fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.line.as_str())
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = LogEntry<'_>> {
        self.lines.iter().map(|l| LogEntry {
            at: l.at,
            node: l.who,
            violation: l.violation,
            text: &l.line[l.text_start..],
        })
    }

    pub(crate) fn lines_of(&self, node: NodeId) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(move |l| l.who == Some(node))
            .map(|l| l.line.as_str())
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_give_each_lines_parts_without_reading_it() {
        let mut log = Log::new(10);
        log.write(Time::from_millis(5), None, format_args!("node-1 starts"));
        log.write_violation(Time::from_millis(6), NodeId(0), "dials itself");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(
            lines,
            [
                "0.005s sim: node-1 starts",
                "0.006s node-1: VIOLATION dials itself"
            ]
        );
        let entries: Vec<LogEntry<'_>> = log.entries().collect();
        assert_eq!(
            entries,
            [
                LogEntry {
                    at: Time::from_millis(5),
                    node: None,
                    violation: false,
                    text: "node-1 starts"
                },
                LogEntry {
                    at: Time::from_millis(6),
                    node: Some(NodeId(0)),
                    violation: true,
                    text: "VIOLATION dials itself"
                }
            ]
        );
    }

    #[test]
    fn spread_counts_the_hops_of_first_copies_and_every_copy_as_redundancy() {
        let mut spread = Spread::default();
        assert_eq!((spread.rmr(), spread.ldh_max()), (0.0, 0));
        // a reaches b and c, b reaches d; then c sends d a second copy.
        let (a, b, c, d) = (NodeId(0), NodeId(1), NodeId(2), NodeId(3));
        spread.originated("t", a);
        spread.delivered("t", a, b);
        spread.delivered("t", a, c);
        spread.delivered("t", b, d);
        assert_eq!((spread.rmr(), spread.ldh_max()), (0.0, 2));
        spread.delivered("t", c, d);
        // 4 copies for 3 nodes reached.
        assert!((spread.rmr() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(spread.ldh_max(), 2);
        // A second transaction, without duplicates, halves the average.
        spread.originated("u", a);
        spread.delivered("u", a, b);
        assert!((spread.rmr() - 1.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn frames_are_told_apart_by_type() {
        assert_eq!(
            FrameKind::of(r#"{"type":"HANDSHAKE","data":[]}"#),
            FrameKind::Handshake
        );
        assert_eq!(
            FrameKind::of(r#"{"type":"TRANSACTION","data":{"hash":"a"}}"#),
            FrameKind::Transaction
        );
        assert_eq!(
            FrameKind::of(r#"{"data":{"hash":"a"},"type":"TRANSACTION"}"#),
            FrameKind::Transaction
        );
        assert_eq!(
            FrameKind::of(r#"{"type":"TRANSACTIONS","data":[]}"#),
            FrameKind::Other
        );
        assert_eq!(
            FrameKind::of(r#"{"type":"TXS","data":{"txs":[]}}"#),
            FrameKind::Transaction
        );
        assert_eq!(
            FrameKind::of(r#"{"type":"IHAVE","data":[]}"#),
            FrameKind::Other
        );
        assert_eq!(
            FrameKind::of(r#"{"type":"HANDSH\u0041KE","data":[]}"#),
            FrameKind::Handshake
        );
        assert_eq!(FrameKind::of(r#"{"type":"STATUS"}"#), FrameKind::Other);
        assert_eq!(FrameKind::of("not json"), FrameKind::Other);
    }

    #[test]
    fn the_log_keeps_only_the_newest_lines() {
        let mut log = Log::new(2);
        for i in 0..3 {
            log.write(
                Time::from_millis(i),
                Some(NodeId(1)),
                format_args!("line {i}"),
            );
        }
        let lines: Vec<_> = log.lines().collect();
        assert_eq!(lines, ["0.001s node-2: line 1", "0.002s node-2: line 2"]);
        assert_eq!(log.dropped(), 1);
    }
}

/// How transactions spread: for each, the hop at which each node first got it (its
/// origin at hop 0, a node that got it from a node at hop h at h + 1) and how many copies
/// reached nodes in all. What `Summary`'s `rmr` and `ldh_max` are made of.
#[derive(Debug, Default, Clone)]
pub struct Spread {
    by_hash: std::collections::HashMap<String, TxSpread>,
}

#[derive(Debug, Default, Clone)]
struct TxSpread {
    /// Node index to the hop at which it first got the transaction.
    hops: std::collections::HashMap<usize, u32>,
    /// Copies delivered to nodes (pushed or caught up), the first ones included.
    copies: u64,
}

impl Spread {
    /// `hash` was made at `node`.
    pub(super) fn originated(&mut self, hash: &str, node: NodeId) {
        let tx = self.by_hash.entry(hash.to_owned()).or_default();
        tx.hops.entry(node.0).or_insert(0);
    }

    /// A copy of `hash` went from `from` to `to`.
    pub(super) fn delivered(&mut self, hash: &str, from: NodeId, to: NodeId) {
        if !self.by_hash.contains_key(hash) {
            self.by_hash.insert(hash.to_owned(), TxSpread::default());
        }
        let Some(tx) = self.by_hash.get_mut(hash) else {
            return;
        };
        tx.copies += 1;
        let hop = tx.hops.get(&from.0).map_or(1, |h| h + 1);
        tx.hops.entry(to.0).or_insert(hop);
    }

    /// Relative message redundancy, averaged over the transactions that reached more
    /// than one node: copies delivered / (nodes reached - 1) - 1. Zero when every node
    /// but the origin got exactly one copy.
    pub fn rmr(&self) -> f64 {
        let per_tx: Vec<f64> = self
            .by_hash
            .values()
            .filter(|tx| tx.hops.len() > 1)
            .map(|tx| tx.copies as f64 / (tx.hops.len() - 1) as f64 - 1.0)
            .collect();
        if per_tx.is_empty() {
            0.0
        } else {
            per_tx.iter().sum::<f64>() / per_tx.len() as f64
        }
    }

    /// The largest hop at which any node first got any transaction (last delivery hop).
    pub fn ldh_max(&self) -> u32 {
        self.by_hash
            .values()
            .flat_map(|tx| tx.hops.values().copied())
            .max()
            .unwrap_or(0)
    }
}
