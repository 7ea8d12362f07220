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
    Transaction,
    /// Any other type (`STATUS`, extensions, frames that are not JSON).
    Other,
}

impl FrameKind {
    /// The type of a frame's text. Frames of our nodes start with their `type`, so this is
    /// a prefix test; anything else is parsed for its `type`.
    pub fn of(text: &str) -> FrameKind {
        if text.starts_with(r#"{"type":"HANDSHAKE""#) {
            return FrameKind::Handshake;
        }
        if text.starts_with(r#"{"type":"TRANSACTION""#) || text.starts_with(r#"{"type":"TXS""#) {
            return FrameKind::Transaction;
        }
        #[derive(Deserialize)]
        struct TypeOnly<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        match serde_json::from_str::<TypeOnly<'_>>(text) {
            Ok(t) if t.kind == "HANDSHAKE" => FrameKind::Handshake,
            Ok(t) if t.kind == "TRANSACTION" || t.kind == "TXS" => FrameKind::Transaction,
            _ => FrameKind::Other,
        }
    }
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
    lines: VecDeque<(Option<NodeId>, String)>,
    dropped: u64,
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
        if self.capacity == 0 {
            return;
        }
        let line = match who {
            Some(node) => format!("{at} {node}: {text}"),
            None => format!("{at} sim: {text}"),
        };
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back((who, line));
    }

    pub(crate) fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|(_, line)| line.as_str())
    }

    pub(crate) fn lines_of(&self, node: NodeId) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(move |(who, _)| *who == Some(node))
            .map(|(_, line)| line.as_str())
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
