//! The address book and dialling: whom to dial, when, how often, and when to give up.

use std::time::Duration;

use super::rate::Rate;
use super::{Action, DialId, Node, Notice, Peer, PeerState, Reconciled};
use crate::address::Address;
use crate::time::Time;

impl Node {
    /// The dial-rate limit: a burst of `dial_burst`, then `max_dials_per_second`.
    fn dial_rate(&self) -> Rate {
        let limits = &self.config.limits;
        Rate::new(limits.max_dials_per_second, limits.dial_burst)
    }

    /// When the dial-rate limit next lets a dial start.
    pub(super) fn next_dial_allowed(&self) -> Time {
        self.dial_rate().allowed_at(self.dial_rate_tat)
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
    ) -> Option<&mut Peer> {
        if self.is_self(&address) {
            return None;
        }
        let source = match wanted {
            Wanted::Listed { source } => Some(source),
            Wanted::Known | Wanted::Direct => None,
        };
        match self.peers.get(&address) {
            None => {
                let limits = &self.config.limits;
                let book = limits.max_address_book;
                if let Some(source) = source {
                    let share = book * usize::from(limits.learned_book_share.min(100)) / 100;
                    let learned = self.learned_counts.get(&source).copied().unwrap_or(0);
                    if learned >= share.max(1) {
                        self.limit_once("addresses learned from one source", share);
                        return None;
                    }
                }
                if self.peers.len() >= book && (source.is_some() || !self.evict_learned()) {
                    self.limit_once("address book", book);
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
                        sync: Reconciled::default(),
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
    fn limit_once(&mut self, what: &'static str, limit: usize) {
        if !self.book_full_logged {
            self.book_full_logged = true;
            self.log(Notice::Limit { what, limit });
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
    pub(super) fn learned_dial_slots(&self) -> usize {
        let limits = &self.config.limits;
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

    pub(super) fn dial_failed(&mut self, address: Address, now: Time) {
        let forget_after = self.config.backoff.forget_after;
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        peer.failures = peer.failures.saturating_add(1);
        let attempt = peer.failures;
        if !peer.keep && attempt >= forget_after {
            self.forget(&address);
            self.log(Notice::DialFailed {
                address,
                attempt,
                retry_in: None,
            });
            return;
        }
        let retry_in = self.backoff(attempt);
        self.wait(&address, now + retry_in);
        self.log(Notice::DialFailed {
            address,
            attempt,
            retry_in: Some(retry_in),
        });
    }

    pub(super) fn retry_later(&mut self, address: Address, now: Time) {
        let retry_in = self.backoff(1);
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

    /// The delay before retry number `attempt` (1 for the first): doubling from the
    /// initial delay up to the cap, then jittered.
    pub(super) fn backoff(&mut self, attempt: u32) -> Duration {
        let initial = self.config.backoff.initial;
        let doubled = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        self.jitter(doubled.min(self.config.backoff.max))
    }

    /// A random delay in `[d/2, d]`, so nodes that failed together do not retry together.
    pub(super) fn jitter(&mut self, delay: Duration) -> Duration {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.range(micros / 2, micros))
    }

    /// Starts dials whose time has come, as far as the concurrency cap allows: known
    /// peers and HANDSHAKE senders first (not held by the dial rate, which exists
    /// against lists of addresses), then learned addresses within their share of the
    /// slots and the dial rate.
    pub(super) fn pump_dials(&mut self, now: Time) {
        let rate = self.dial_rate();
        let learned_slots = self.learned_dial_slots();
        while self.dials.len() < self.config.limits.max_concurrent_dials {
            let next = if self.wakeups.first().is_some_and(|&(at, _)| at <= now) {
                self.wakeups.pop_first()
            } else if self.learned_dials.len() < learned_slots
                && self
                    .learned_wakeups
                    .first()
                    .is_some_and(|&(at, _)| at <= now)
                && self.next_dial_allowed() <= now
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
                .insert((now + self.config.backoff.dial_timeout, dial));
            self.actions.push_back(Action::Dial {
                dial,
                address: address.clone(),
            });
            self.log(Notice::Dialling { address, attempt });
        }
    }

    /// When `pump_dials` can next start a dial, if a dial waits.
    pub(super) fn next_dial_at(&self) -> Option<Time> {
        if self.dials.len() >= self.config.limits.max_concurrent_dials {
            return None;
        }
        let direct = self.wakeups.first().map(|&(at, _)| at);
        let learned = (self.learned_dials.len() < self.learned_dial_slots())
            .then(|| self.learned_wakeups.first())
            .flatten()
            .map(|&(at, _)| at.max(self.next_dial_allowed()));
        direct.into_iter().chain(learned).min()
    }
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
