//! The address book and dialling: whom to dial, when, how often, and when to give up.

use std::time::Duration;

use super::{Action, DialId, Node, Notice, Peer, PeerState};
use crate::address::Address;
use crate::time::Time;

impl Node {
    /// Time between dials at the sustained dial rate.
    pub(super) fn dial_interval(&self) -> Duration {
        Duration::from_secs(1) / self.config.limits.max_dials_per_second.max(1)
    }

    /// When the dial-rate limit (GCRA: a burst of `dial_burst`, then
    /// `max_dials_per_second`) next lets a dial start.
    pub(super) fn next_dial_allowed(&self) -> Time {
        let burst = self.dial_interval() * self.config.limits.dial_burst;
        Time::from_micros(
            self.dial_rate_tat
                .as_micros()
                .saturating_sub(burst.as_micros() as u64),
        )
    }

    /// Makes sure `address` is dialled soon unless it is us, open, or being dialled.
    /// Returns its book entry, if it has one.
    pub(super) fn want(&mut self, address: Address, now: Time) -> Option<&mut Peer> {
        if self.is_self(&address) {
            return None;
        }
        if !self.peers.contains_key(&address) {
            let limit = self.config.limits.max_address_book;
            if self.peers.len() >= limit {
                if !self.book_full_logged {
                    self.book_full_logged = true;
                    self.log(Notice::Limit {
                        what: "address book",
                        limit,
                    });
                }
                return None;
            }
            self.peers.insert(
                address.clone(),
                Peer {
                    state: PeerState::Waiting { at: now },
                    keep: false,
                    failures: 0,
                    ours: false,
                    synced_on: None,
                    opened_at: Time::ZERO,
                },
            );
            self.wait(&address, now);
        }
        if let Some(PeerState::Waiting { at }) = self.peers.get(&address).map(|p| p.state) {
            if at > now {
                self.wakeups.remove(&(at, address.clone()));
                self.wait(&address, now);
            }
        }
        self.peers.get_mut(&address)
    }

    pub(super) fn dial_failed(&mut self, address: Address, now: Time) {
        let forget_after = self.config.backoff.forget_after;
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        peer.failures = peer.failures.saturating_add(1);
        let attempt = peer.failures;
        if !peer.keep && attempt >= forget_after {
            self.peers.remove(&address);
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
        self.wakeups.insert((at, address.clone()));
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

    /// Starts dials whose time has come, as far as the concurrency cap allows.
    pub(super) fn pump_dials(&mut self, now: Time) {
        let interval = self.dial_interval();
        while self.dials.len() < self.config.limits.max_concurrent_dials {
            let Some((at, _)) = self.wakeups.first() else {
                break;
            };
            if *at > now || self.next_dial_allowed() > now {
                break;
            }
            let Some((at, address)) = self.wakeups.pop_first() else {
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
            self.dial_rate_tat = self.dial_rate_tat.max(now) + interval;
            peer.state = PeerState::Dialling { dial };
            let attempt = peer.failures;
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
}
