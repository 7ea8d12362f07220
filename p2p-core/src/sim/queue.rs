//! The queue of everything that will happen, earliest first: frame arrivals, dial
//! outcomes, closes, node timers and scheduled commands.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Command, FrameKind, NodeId};
use crate::address::Address;
use crate::node::{DialId, Payload};
use crate::time::Time;

pub(super) enum Pending {
    Command(Command),
    DialArrives {
        from: NodeId,
        epoch: u32,
        dial: DialId,
        address: Address,
    },
    Deliver {
        link: u64,
        to: usize,
        frame: Payload,
        kind: FrameKind,
        sent: Time,
    },
    /// The far end closed: tell this side if it is still open.
    CloseArrives {
        link: u64,
        side: usize,
    },
    /// This side closed (or was cut): tell its node.
    ClosedHere {
        link: u64,
        side: usize,
    },
    Timer {
        node: NodeId,
        epoch: u32,
    },
}

/// A place in the queue: ordered by time, then by the order scheduled. Node timers sit in
/// the key itself, so that finding a superseded one touches nothing else; every other
/// event waits in a slot of [`Queue::slots`], so the heap only moves small keys.
#[derive(PartialEq, Eq)]
struct Key {
    at: Time,
    seq: u64,
    entry: Entry,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Entry {
    Slot(usize),
    Timer { node: NodeId, epoch: u32 },
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Reversed, so that the max-heap pops the earliest; ties go in the order scheduled.
    fn cmp(&self, other: &Key) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Everything that will happen, earliest first.
#[derive(Default)]
pub(super) struct Queue {
    heap: BinaryHeap<Key>,
    slots: Vec<Option<Pending>>,
    free: Vec<usize>,
    seq: u64,
    /// Entries that are not node timers: while any is left, the network is not quiet.
    pub(super) network: usize,
}

impl Queue {
    pub(super) fn push(&mut self, at: Time, what: Pending) {
        self.seq += 1;
        let entry = match what {
            Pending::Timer { node, epoch } => Entry::Timer { node, epoch },
            what => {
                self.network += 1;
                match self.free.pop() {
                    Some(slot) => {
                        self.slots[slot] = Some(what);
                        Entry::Slot(slot)
                    }
                    None => {
                        self.slots.push(Some(what));
                        Entry::Slot(self.slots.len() - 1)
                    }
                }
            }
        };
        self.heap.push(Key {
            at,
            seq: self.seq,
            entry,
        });
    }

    /// The time of the first entry, and its node and epoch if it is a timer.
    pub(super) fn peek(&self) -> Option<(Time, Option<(NodeId, u32)>)> {
        let key = self.heap.peek()?;
        Some(match key.entry {
            Entry::Timer { node, epoch } => (key.at, Some((node, epoch))),
            Entry::Slot(_) => (key.at, None),
        })
    }

    pub(super) fn pop(&mut self) -> Option<(Time, Pending)> {
        loop {
            let key = self.heap.pop()?;
            match key.entry {
                Entry::Timer { node, epoch } => {
                    return Some((key.at, Pending::Timer { node, epoch }));
                }
                Entry::Slot(slot) => {
                    // Every slot key has a filled slot; a missing one would only be skipped.
                    let Some(what) = self.slots.get_mut(slot).and_then(Option::take) else {
                        continue;
                    };
                    self.free.push(slot);
                    self.network -= 1;
                    return Some((key.at, what));
                }
            }
        }
    }

    /// Every entry but the timers, in no order, with its time and place in line.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Time, u64, &Pending)> {
        self.heap.iter().filter_map(|key| match key.entry {
            Entry::Slot(slot) => Some((key.at, key.seq, self.slots.get(slot)?.as_ref()?)),
            Entry::Timer { .. } => None,
        })
    }
}
