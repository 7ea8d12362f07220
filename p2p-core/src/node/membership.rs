//! Membership: the address book and dialling (whom to dial, when, how often, when to
//! give up), and which peers are connected and what they are. Its state is
//! [`Membership`]; what it needs of the rest of the node (the config, random numbers,
//! the actions queue) it is handed as an [`Io`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use super::rate::Rate;
use super::{Action, DialId, Notice, Peer, PeerState, SeededHasher};
use crate::address::Address;
use crate::config::Config;
use crate::rng::Rng;
use crate::time::Time;

/// What membership and broadcast share of the node: its config, its random numbers and
/// the actions it hands the host.
pub(super) struct Io<'a> {
    pub(super) config: &'a Config,
    pub(super) rng: &'a mut Rng,
    pub(super) actions: &'a mut VecDeque<Action>,
}

impl Io<'_> {
    pub(super) fn log(&mut self, notice: Notice) {
        self.actions.push_back(Action::Log(notice));
    }
}

/// The node's peers: its address book, its dials and its `connectedAddresses`.
pub(super) struct Membership {
    /// The address book; never iterated, so a hash map (keyed by the node's seed, so
    /// a peer cannot aim collisions at it) keeps the simulator deterministic.
    pub(super) peers: HashMap<Address, Peer, SeededHasher>,
    /// `connectedAddresses`, in the order the dials opened.
    pub(super) connected: Vec<Address>,
    pub(super) dials: BTreeMap<DialId, Address>,
    /// Waiting known peers, HANDSHAKE senders and peers once reached, by the time they
    /// may be dialled.
    wakeups: BTreeSet<(Time, Address)>,
    /// Waiting learned addresses (only listed in a HANDSHAKE), likewise: a queue of their
    /// own, so they never delay the others.
    learned_wakeups: BTreeSet<(Time, Address)>,
    /// Dials in flight to learned addresses.
    learned_dials: BTreeSet<DialId>,
    /// Learned addresses in the book, by source.
    learned_counts: HashMap<u64, usize, SeededHasher>,
    pub(super) dial_deadlines: BTreeSet<(Time, DialId)>,
    next_dial: u64,
    /// The dial-rate limit's theoretical arrival time.
    dial_rate_tat: Time,
    /// Accepted connections open.
    pub(super) inbound: usize,
    /// Spellings found to reach this node itself.
    pub(super) learned_aliases: BTreeSet<Address>,
    /// The address book filled up and that was logged; reset when a HANDSHAKE ends, so
    /// one HANDSHAKE of thousands of addresses logs it once.
    pub(super) book_full_logged: bool,
    /// Peers in the book found not to be ours (`Peer::foreign`): while there are none,
    /// what comes from ours is passed to no one, and relay looks at no peer for it.
    pub(super) foreign_peers: usize,
}

impl Membership {
    pub(super) fn new(seed: u64) -> Membership {
        Membership {
            peers: HashMap::with_hasher(SeededHasher(seed)),
            connected: Vec::new(),
            dials: BTreeMap::new(),
            wakeups: BTreeSet::new(),
            learned_wakeups: BTreeSet::new(),
            learned_dials: BTreeSet::new(),
            learned_counts: HashMap::with_hasher(SeededHasher(seed)),
            dial_deadlines: BTreeSet::new(),
            next_dial: 0,
            dial_rate_tat: Time::ZERO,
            inbound: 0,
            learned_aliases: BTreeSet::new(),
            book_full_logged: false,
            foreign_peers: 0,
        }
    }

    /// Whether `address` is this node itself, under any spelling it knows.
    pub(super) fn is_self(&self, config: &Config, address: &Address) -> bool {
        *address == config.address
            || config.aliases.contains(address)
            || self.learned_aliases.contains(address)
    }

    /// Whether the peer at `address` said it is one of ours.
    pub(super) fn is_ours(&self, address: &Address) -> bool {
        self.peers.get(address).is_some_and(|p| p.ours)
    }

    /// The dial-rate limit: a burst of `dial_burst`, then `max_dials_per_second`.
    fn dial_rate(config: &Config) -> Rate {
        let limits = &config.limits;
        Rate::new(limits.max_dials_per_second, limits.dial_burst)
    }

    /// When the dial-rate limit next lets a dial start.
    pub(super) fn next_dial_allowed(&self, config: &Config) -> Time {
        Self::dial_rate(config).allowed_at(self.dial_rate_tat)
    }

    /// Makes sure `address` is dialled soon unless it is us, open, or being dialled.
    /// Returns its book entry, if it has one.
    ///
    /// Addresses merely listed in a HANDSHAKE (`Wanted::Listed`) are learned: one source
    /// may fill only `Limits::learned_book_share` of the book, they wait in their own
    /// queue and take at most `Limits::learned_dial_share` of the dial slots. Known peers
    /// and the senders of HANDSHAKEs go first, and a full book makes room for them by
    /// forgetting a learned address that is waiting.
    pub(super) fn want(
        &mut self,
        address: Address,
        now: Time,
        wanted: Wanted,
        io: &mut Io<'_>,
    ) -> Option<&mut Peer> {
        if self.is_self(io.config, &address) {
            return None;
        }
        let source = match wanted {
            Wanted::Listed { source } => Some(source),
            Wanted::Known | Wanted::Direct => None,
        };
        match self.peers.get(&address) {
            None => {
                let limits = &io.config.limits;
                let book = limits.max_address_book;
                if let Some(source) = source {
                    let share = book * usize::from(limits.learned_book_share.min(100)) / 100;
                    let learned = self.learned_counts.get(&source).copied().unwrap_or(0);
                    if learned >= share.max(1) {
                        self.limit_once("addresses learned from one source", share, io);
                        return None;
                    }
                }
                if self.peers.len() >= book && (source.is_some() || !self.evict_learned()) {
                    self.limit_once("address book", book, io);
                    return None;
                }
                self.peers.insert(
                    address.clone(),
                    Peer {
                        state: PeerState::Waiting { at: now },
                        keep: matches!(wanted, Wanted::Known),
                        failures: 0,
                        ours: false,
                        foreign: false,
                        opened_at: Time::ZERO,
                        learned_from: source,
                    },
                );
                if let Some(source) = source {
                    *self.learned_counts.entry(source).or_insert(0) += 1;
                }
                self.wait(&address, now);
            }
            Some(peer) => {
                let (state, learned) = (peer.state, peer.learned_from.is_some());
                if learned && source.is_none() {
                    // Someone vouches for it: it leaves the learned queue.
                    if let PeerState::Waiting { at } = state {
                        self.learned_wakeups.remove(&(at, address.clone()));
                    }
                    self.unlearn(&address);
                    if let PeerState::Waiting { .. } = state {
                        self.wait(&address, now);
                    }
                } else if let PeerState::Waiting { at } = state {
                    // An address listed as someone's open connection is alive: dial it
                    // now, unless it is only learned (its backoff stands).
                    if at > now && !learned {
                        self.wakeups.remove(&(at, address.clone()));
                        self.wait(&address, now);
                    }
                }
            }
        }
        self.peers.get_mut(&address)
    }

    /// Logs that a limit bit, once per HANDSHAKE.
    fn limit_once(&mut self, what: &'static str, limit: usize, io: &mut Io<'_>) {
        if !self.book_full_logged {
            self.book_full_logged = true;
            io.log(Notice::Limit { what, limit });
        }
    }

    /// Forgets the learned address that waits longest for its next dial, to make room
    /// for one a peer vouched for; false if none waits.
    fn evict_learned(&mut self) -> bool {
        while let Some((at, address)) = self.learned_wakeups.pop_last() {
            let waiting = self
                .peers
                .get(&address)
                .is_some_and(|p| p.state == PeerState::Waiting { at } && p.learned_from.is_some());
            if waiting {
                self.forget(&address);
                return true;
            }
        }
        false
    }

    /// Removes `address` from the book.
    pub(super) fn forget(&mut self, address: &Address) {
        self.unlearn(address);
        if self.peers.remove(address).is_some_and(|peer| peer.foreign) {
            self.foreign_peers -= 1;
        }
    }

    /// `address` is no longer merely learned (reached, vouched for, or forgotten): its
    /// source's share shrinks.
    pub(super) fn unlearn(&mut self, address: &Address) {
        let Some(source) = self
            .peers
            .get_mut(address)
            .and_then(|p| p.learned_from.take())
        else {
            return;
        };
        if let Some(count) = self.learned_counts.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.learned_counts.remove(&source);
            }
        }
    }

    /// Dial slots learned addresses may take.
    fn learned_dial_slots(config: &Config) -> usize {
        let limits = &config.limits;
        (limits.max_concurrent_dials * usize::from(limits.learned_dial_share.min(100)) / 100).max(1)
    }

    /// Dial `dial` ended (opened, failed or abandoned): its slot is free. Returns the
    /// address it was for, if it was still in flight.
    pub(super) fn end_dial(&mut self, dial: DialId) -> Option<Address> {
        let address = self.dials.remove(&dial)?;
        self.learned_dials.remove(&dial);
        self.dial_deadlines.retain(|&(_, d)| d != dial);
        Some(address)
    }

    pub(super) fn dial_failed(&mut self, address: Address, now: Time, io: &mut Io<'_>) {
        let forget_after = io.config.backoff.forget_after;
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        peer.failures = peer.failures.saturating_add(1);
        let attempt = peer.failures;
        if !peer.keep && attempt >= forget_after {
            self.forget(&address);
            io.log(Notice::DialFailed {
                address,
                attempt,
                retry_in: None,
            });
            return;
        }
        let retry_in = backoff(attempt, io);
        self.wait(&address, now + retry_in);
        io.log(Notice::DialFailed {
            address,
            attempt,
            retry_in: Some(retry_in),
        });
    }

    pub(super) fn retry_later(&mut self, address: Address, now: Time, io: &mut Io<'_>) {
        let retry_in = backoff(1, io);
        self.wait(&address, now + retry_in);
    }

    /// Puts a known peer in `Waiting { at }` with its wake-up in the schedule, the one
    /// place the two are kept in step (`pump_dials` skips wake-ups whose peer has moved on).
    /// False if the address is not in the book.
    pub(super) fn wait(&mut self, address: &Address, at: Time) -> bool {
        let Some(peer) = self.peers.get_mut(address) else {
            return false;
        };
        peer.state = PeerState::Waiting { at };
        if peer.learned_from.is_some() {
            self.learned_wakeups.insert((at, address.clone()));
        } else {
            self.wakeups.insert((at, address.clone()));
        }
        true
    }

    /// Starts dials whose time has come, as far as the concurrency cap allows: known
    /// peers and HANDSHAKE senders first (not held by the dial rate, which exists
    /// against lists of addresses), then learned addresses within their share of the
    /// slots and the dial rate.
    pub(super) fn pump_dials(&mut self, now: Time, io: &mut Io<'_>) {
        let rate = Self::dial_rate(io.config);
        let learned_slots = Self::learned_dial_slots(io.config);
        while self.dials.len() < io.config.limits.max_concurrent_dials {
            let next = if self.wakeups.first().is_some_and(|&(at, _)| at <= now) {
                self.wakeups.pop_first()
            } else if self.learned_dials.len() < learned_slots
                && self
                    .learned_wakeups
                    .first()
                    .is_some_and(|&(at, _)| at <= now)
                && self.next_dial_allowed(io.config) <= now
            {
                self.learned_wakeups.pop_first()
            } else {
                break;
            };
            let Some((at, address)) = next else {
                break;
            };
            let Some(peer) = self.peers.get_mut(&address) else {
                continue;
            };
            // Stale entries (the peer was rescheduled, or connected) are skipped.
            if peer.state != (PeerState::Waiting { at }) {
                continue;
            }
            let dial = DialId(self.next_dial);
            self.next_dial += 1;
            self.dial_rate_tat = rate.spend(self.dial_rate_tat, now, 1);
            peer.state = PeerState::Dialling { dial };
            let attempt = peer.failures;
            if peer.learned_from.is_some() {
                self.learned_dials.insert(dial);
            }
            self.dials.insert(dial, address.clone());
            self.dial_deadlines
                .insert((now + io.config.backoff.dial_timeout, dial));
            io.actions.push_back(Action::Dial {
                dial,
                address: address.clone(),
            });
            io.log(Notice::Dialling { address, attempt });
        }
    }

    /// A new dial's name, for a dial started elsewhere (the overlay's).
    pub(super) fn new_dial_id(&mut self) -> DialId {
        let dial = DialId(self.next_dial);
        self.next_dial += 1;
        dial
    }

    /// When `pump_dials` can next start a dial, if a dial waits.
    pub(super) fn next_dial_at(&self, config: &Config) -> Option<Time> {
        if self.dials.len() >= config.limits.max_concurrent_dials {
            return None;
        }
        let direct = self.wakeups.first().map(|&(at, _)| at);
        let learned = (self.learned_dials.len() < Self::learned_dial_slots(config))
            .then(|| self.learned_wakeups.first())
            .flatten()
            .map(|&(at, _)| at.max(self.next_dial_allowed(config)));
        direct.into_iter().chain(learned).min()
    }
}

/// The delay before retry number `attempt` (1 for the first): doubling from the initial
/// delay up to the cap, then jittered.
pub(super) fn backoff(attempt: u32, io: &mut Io<'_>) -> Duration {
    let initial = io.config.backoff.initial;
    let doubled = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    jitter(doubled.min(io.config.backoff.max), io.rng)
}

/// A random delay in `[d/2, d]`, so nodes that failed together do not retry together.
pub(super) fn jitter(delay: Duration, rng: &mut Rng) -> Duration {
    let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rng.range(micros / 2, micros))
}

/// Why an address is wanted, which decides its queue and whether it may be forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    /// In `known-peers.json`: kept for good.
    Known,
    /// The sender of a HANDSHAKE: the peer talking to us now.
    Direct,
    /// Listed in a HANDSHAKE from `source` (a hash of its sender).
    Listed {
        /// Who listed it.
        source: u64,
    },
}
