//! The network between the nodes: connections (links) that carry frames and closes in
//! order after a latency, dials that open or fail, partitions that cut links, and frames
//! lost on a closed end.

use std::collections::BTreeSet;
use std::time::Duration;

use super::queue::{Pending, Queue};
use super::{Command, Event, FrameCounts, FrameKind, NodeId, Sim, SimError};
use crate::address::Address;
use crate::node::{ConnId, DialId, Payload};
use crate::rng::Rng;
use crate::time::Time;

/// The range one-way latencies are drawn from, uniformly, per dial and per frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Latency {
    min: Duration,
    max: Duration,
}

impl Latency {
    /// Latencies between `a` and `b`, in either order.
    pub fn new(a: Duration, b: Duration) -> Latency {
        Latency {
            min: a.min(b),
            max: a.max(b),
        }
    }

    /// Latencies between `min` and `max` milliseconds.
    pub fn from_millis(min: u64, max: u64) -> Latency {
        Latency::new(Duration::from_millis(min), Duration::from_millis(max))
    }

    /// The shortest.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The longest.
    pub fn max(&self) -> Duration {
        self.max
    }

    fn sample(&self, rng: &mut Rng) -> Duration {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.range(micros(self.min), micros(self.max)))
    }
}

impl Default for Latency {
    /// 1 to 20 ms.
    fn default() -> Latency {
        Latency::from_millis(1, 20)
    }
}

/// A frame on its way, for drawing the network.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// Its type.
    pub kind: FrameKind,
    /// When it was sent.
    pub sent: Time,
    /// When it arrives.
    pub arrives: Time,
}

/// One end of a connection, as the simulator sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// Its node holds it; frames to it are delivered.
    Open,
    /// Its node asked to close it (or a partition cut it) and will be told; frames to it
    /// are lost.
    Closing,
    /// Its node was told it closed, or crashed.
    Closed,
}

/// Side 0 of a link is the dialler's end, side 1 the server's.
pub(super) const DIALLER: usize = 0;
pub(super) const SERVER: usize = 1;

/// A connection. Its ends are `ConnId(2 * id)` (the dialler's) and `ConnId(2 * id + 1)`.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) nodes: [NodeId; 2],
    ends: [End; 2],
    /// Arrival time of the last frame or close sent toward each side.
    last: [Time; 2],
    /// Whether the dialler counts it among its connections: not if it had given up on
    /// the dial before it opened (it then only closes it).
    wanted: bool,
    /// When it opened.
    pub(super) opened: Time,
}

impl Link {
    /// Whether the end at `side` is open (its node holds it and has not asked to close it).
    pub(super) fn is_open(&self, side: usize) -> bool {
        self.ends[side] == End::Open
    }

    /// Starts closing this link's end at `side`, if it is open (its node is told at `now`);
    /// false if it was not open.
    fn start_closing(&mut self, link_id: u64, side: usize, queue: &mut Queue, now: Time) -> bool {
        if self.ends[side] != End::Open {
            return false;
        }
        self.ends[side] = End::Closing;
        queue.push(
            now,
            Pending::ClosedHere {
                link: link_id,
                side,
            },
        );
        true
    }
}

pub(super) fn conn_id(link: u64, side: usize) -> ConnId {
    ConnId(link * 2 + side as u64)
}

fn split(conn: ConnId) -> (u64, usize) {
    (conn.0 / 2, (conn.0 % 2) as usize)
}

impl Sim {
    // ----- partitions ------------------------------------------------------------------

    /// Splits the network into `groups` (nodes in none form one more group, and so do
    /// nodes added later). Connections across groups close at once, on both sides.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) -> Result<(), SimError> {
        for id in groups.iter().flatten() {
            self.host(*id)?;
        }
        self.log.write(
            self.now,
            None,
            format_args!("{}", Command::Partition(groups.to_vec())),
        );
        for host in &mut self.hosts {
            host.group = 0;
        }
        for (index, group) in groups.iter().enumerate() {
            for id in group {
                self.hosts[id.0].group = index + 1;
            }
        }
        for (link_id, link) in self.links.iter_mut().enumerate() {
            let Some(link) = link else { continue };
            let link_id = link_id as u64;
            let [a, b] = link.nodes;
            if self.hosts[a.0].group == self.hosts[b.0].group {
                continue;
            }
            for side in [DIALLER, SERVER] {
                link.start_closing(link_id, side, &mut self.queue, self.now);
            }
        }
        Ok(())
    }

    /// Ends the partition: every node can reach every other again.
    pub fn heal(&mut self) {
        self.log
            .write(self.now, None, format_args!("the partition heals"));
        for host in &mut self.hosts {
            host.group = 0;
        }
    }

    /// Closes every link of a node that just crashed: its own ends at once, so that
    /// frames on their way to it are lost; each peer's end still open hears of it after
    /// a latency, behind the frames sent before.
    pub(super) fn cut_links(&mut self, id: NodeId, ends: BTreeSet<u64>) {
        for link_id in ends {
            let Some(link) = self
                .links
                .get_mut(link_id as usize)
                .and_then(Option::as_mut)
            else {
                continue;
            };
            for side in [DIALLER, SERVER] {
                if link.nodes[side] == id {
                    link.ends[side] = End::Closed;
                }
            }
            for side in [DIALLER, SERVER] {
                if link.nodes[side] != id && link.ends[side] == End::Open {
                    let at =
                        link.last[side].max(self.now + self.config.latency.sample(&mut self.rng));
                    link.last[side] = at;
                    self.queue.push(
                        at,
                        Pending::CloseArrives {
                            link: link_id,
                            side,
                        },
                    );
                }
            }
            if link.ends == [End::Closed, End::Closed] {
                self.links[link_id as usize] = None;
            }
        }
    }

    // ----- what it sees ----------------------------------------------------------------

    /// Frames `from` sent to `to` so far.
    pub fn link_frames(&self, from: NodeId, to: NodeId) -> FrameCounts {
        self.hosts
            .get(from.0)
            .and_then(|h| h.sent_to.get(&to))
            .copied()
            .unwrap_or_default()
    }

    /// Frames sent so far on every link that carried one, by (sender, receiver).
    pub fn links(&self) -> impl Iterator<Item = ((NodeId, NodeId), FrameCounts)> + '_ {
        self.hosts.iter().enumerate().flat_map(|(i, host)| {
            host.sent_to
                .iter()
                .filter(|(_, counts)| counts.total() > 0)
                .map(move |(&to, &counts)| ((NodeId(i), to), counts))
        })
    }

    /// Frames on their way now, by arrival.
    pub fn frames_in_flight(&self) -> Vec<InFlight> {
        self.frames_in_flight_with_text()
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    /// [`Sim::frames_in_flight`], each with its frame's text: what tells apart the types
    /// [`FrameKind`] counts together (`TXS`, `SYNC`, `STATUS_REQUEST`, …), for a host that
    /// shows them, like the browser demo.
    pub fn frames_in_flight_with_text(&self) -> Vec<(InFlight, &str)> {
        let mut frames: Vec<(u64, InFlight, &str)> = self
            .queue
            .iter()
            .filter_map(|(at, seq, what)| match what {
                Pending::Deliver {
                    link,
                    to,
                    frame,
                    kind,
                    sent,
                } => {
                    let l = self.link(*link)?;
                    Some((
                        seq,
                        InFlight {
                            from: l.nodes[1 - to],
                            to: l.nodes[*to],
                            kind: *kind,
                            sent: *sent,
                            arrives: at,
                        },
                        &**frame,
                    ))
                }
                _ => None,
            })
            .collect();
        frames.sort_by_key(|(seq, f, _)| (f.arrives, *seq));
        frames.into_iter().map(|(_, f, text)| (f, text)).collect()
    }

    // ----- the network's work ----------------------------------------------------------

    pub(super) fn link(&self, id: u64) -> Option<&Link> {
        self.links.get(usize::try_from(id).ok()?)?.as_ref()
    }

    fn link_mut(&mut self, id: u64) -> Option<&mut Link> {
        self.links.get_mut(usize::try_from(id).ok()?)?.as_mut()
    }

    fn latency(&mut self) -> Duration {
        self.config.latency.sample(&mut self.rng)
    }

    pub(super) fn dial(&mut self, id: NodeId, dial: DialId, address: Address) {
        self.counters.dials += 1;
        self.check_dial(id, &address);
        let host = &mut self.hosts[id.0];
        host.dialling.insert(dial, address.clone());
        let epoch = host.epoch;
        let at = self.now + self.latency();
        self.queue.push(
            at,
            Pending::DialArrives {
                from: id,
                epoch,
                dial,
                address,
            },
        );
    }

    pub(super) fn send(&mut self, id: NodeId, conn: ConnId, frame: Payload) {
        let (link_id, side) = split(conn);
        let kind = FrameKind::of(&frame);
        let Some(link) = self.link(link_id).filter(|l| l.nodes[side] == id) else {
            self.violation(
                id,
                format!("sends on {conn}, a connection it does not hold"),
            );
            return;
        };
        let (to, ends) = (link.nodes[1 - side], link.ends);
        if ends[side] == End::Closed {
            self.violation(id, format!("sends on {conn} after it was told it closed"));
            return;
        }
        self.counters.sent.add(kind);
        if kind == FrameKind::Other && super::record::is_packed(&frame) {
            self.counters.packed += 1;
        }
        self.hosts[id.0].sent_to.entry(to).or_default().add(kind);
        if self.config.check_frames && kind == FrameKind::Handshake {
            let server = (side == DIALLER).then_some(to);
            self.check_handshake(id, server, &frame);
        }
        if ends != [End::Open, End::Open] {
            self.counters.dropped.add(kind);
            return;
        }
        let arrival = self.now + self.latency();
        let Some(link) = self.link_mut(link_id) else {
            return;
        };
        let at = link.last[1 - side].max(arrival);
        link.last[1 - side] = at;
        self.queue.push(
            at,
            Pending::Deliver {
                link: link_id,
                to: 1 - side,
                frame,
                kind,
                sent: self.now,
            },
        );
    }

    pub(super) fn close(&mut self, id: NodeId, conn: ConnId) {
        let (link_id, side) = split(conn);
        let Some(link) = self
            .links
            .get_mut(link_id as usize)
            .and_then(Option::as_mut)
            .filter(|l| l.nodes[side] == id)
        else {
            self.violation(id, format!("closes {conn}, a connection it does not hold"));
            return;
        };
        if !link.start_closing(link_id, side, &mut self.queue, self.now) {
            return;
        }
        let other = 1 - side;
        if link.ends[other] == End::Open {
            let at = link.last[other].max(self.now + self.config.latency.sample(&mut self.rng));
            link.last[other] = at;
            self.queue.push(
                at,
                Pending::CloseArrives {
                    link: link_id,
                    side: other,
                },
            );
        }
    }

    pub(super) fn dial_arrives(
        &mut self,
        from: NodeId,
        epoch: u32,
        dial: DialId,
        address: Address,
    ) -> Event {
        let host = &mut self.hosts[from.0];
        if host.epoch != epoch || !host.is_up() {
            return Event::Moot;
        }
        let wanted = host.dialling.remove(&dial).is_some();
        let group = host.group;
        let server = self.node_at(&address).filter(|t| {
            let h = &self.hosts[t.0];
            h.is_up() && h.listening && h.group == group
        });
        let Some(to) = server else {
            self.counters.dials_failed += 1;
            self.input(from, false, |node, now| node.handle_dial_failed(dial, now));
            return Event::DialFailed { from, address };
        };
        let link_id = self.links.len() as u64;
        self.links.push(Some(Link {
            nodes: [from, to],
            ends: [End::Open, End::Open],
            last: [self.now, self.now],
            wanted,
            opened: self.now,
        }));
        self.hosts[from.0].ends.insert(link_id);
        self.hosts[to.0].ends.insert(link_id);
        self.counters.connections += 1;
        if wanted {
            self.view_add(from, to);
        }
        self.input(to, false, |node, now| {
            node.handle_accepted(conn_id(link_id, SERVER), now)
        });
        self.input(from, false, |node, now| {
            node.handle_dial_opened(dial, conn_id(link_id, DIALLER), now)
        });
        Event::DialOpened { from, to }
    }

    pub(super) fn deliver(
        &mut self,
        link_id: u64,
        side: usize,
        frame: &str,
        kind: FrameKind,
    ) -> Event {
        let Some(link) = self.link(link_id) else {
            self.counters.dropped.add(kind);
            return Event::Moot;
        };
        let (from, to) = (link.nodes[1 - side], link.nodes[side]);
        if link.ends[side] != End::Open {
            self.counters.dropped.add(kind);
            return Event::Dropped { from, to, kind };
        }
        let sender_open = link.ends[1 - side] == End::Open;
        self.counters.delivered.add(kind);
        let bodies = kind == FrameKind::Transaction || super::record::is_packed(frame);
        if self.config.measure_spread && bodies {
            self.record_spread(frame, from, to);
        }
        self.input(to, false, |node, now| {
            node.handle_text(conn_id(link_id, side), frame, now)
        });
        if sender_open {
            // The frame left the sender's buffer: room for more there.
            let len = frame.len();
            self.input_written(from, |node, now| {
                node.handle_written(conn_id(link_id, 1 - side), len, now)
            });
        }
        Event::Delivered { from, to, kind }
    }

    /// Counts the transactions `frame` carries from `from` to `to` (see [`Spread`](super::Spread)).
    /// Reads only each body's `hash`, as its JSON text (what `Transaction::hash` gives),
    /// not the whole transaction: this runs for every copy delivered.
    fn record_spread(&mut self, frame: &str, from: NodeId, to: NodeId) {
        use serde::Deserialize;
        use serde_json::value::RawValue;
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            data: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Body<'a> {
            #[serde(borrow)]
            hash: &'a RawValue,
        }
        fn hash<'a>(body: &Body<'a>) -> Option<&'a str> {
            let text = body.hash.get();
            text.strip_prefix('"')?.strip_suffix('"')
        }
        let Ok(Envelope {
            kind,
            data: Some(data),
        }) = serde_json::from_str::<Envelope<'_>>(frame)
        else {
            return;
        };
        match &*kind {
            "TRANSACTION" => {
                if let Some(h) = serde_json::from_str::<Body<'_>>(data.get())
                    .ok()
                    .as_ref()
                    .and_then(hash)
                {
                    self.spread.delivered(h, from, to);
                }
            }
            "TRANSACTIONS" | "TXS" => {
                let Ok(bodies) = serde_json::from_str::<Vec<Body<'_>>>(data.get()) else {
                    return;
                };
                for h in bodies.iter().filter_map(hash) {
                    self.spread.delivered(h, from, to);
                }
            }
            _ => {}
        }
    }

    /// Tells the node at `side` that its end closed, if the end is still `expected`.
    pub(super) fn report_closed(&mut self, link_id: u64, side: usize, expected: End) -> Event {
        let Some(link) = self.link_mut(link_id) else {
            return Event::Moot;
        };
        if link.ends[side] != expected {
            return Event::Moot;
        }
        link.ends[side] = End::Closed;
        let (node, peer) = (link.nodes[side], link.nodes[1 - side]);
        let other_end = link.ends[1 - side];
        let viewed = side == DIALLER && link.wanted;
        if other_end == End::Closed {
            self.links[link_id as usize] = None;
        }
        if !(peer == node && other_end != End::Closed) {
            self.hosts[node.0].ends.remove(&link_id);
        }
        if viewed {
            self.view_remove(node, peer);
        }
        self.counters.closes += 1;
        self.input(node, false, |n, now| {
            n.handle_closed(conn_id(link_id, side), now)
        });
        Event::Closed { node, peer }
    }
}
