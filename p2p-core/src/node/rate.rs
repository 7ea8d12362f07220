//! A rate limit as the generic cell rate algorithm (GCRA): a burst, then a sustained
//! rate. Its whole state is one time, the theoretical arrival time, kept by whoever is
//! limited (the node's dials, each connection's catch-up bodies).

use std::time::Duration;

use crate::time::Time;

/// `per_second` units sustained after a burst of `burst`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rate {
    interval: Duration,
    burst: Duration,
}

impl Rate {
    pub(super) fn new(per_second: u32, burst: u32) -> Rate {
        let interval = Duration::from_secs(1) / per_second.max(1);
        Rate {
            interval,
            burst: interval * burst,
        }
    }

    /// When the next unit may go, for the theoretical arrival time `tat`.
    pub(super) fn allowed_at(self, tat: Time) -> Time {
        let burst = u64::try_from(self.burst.as_micros()).unwrap_or(u64::MAX);
        Time::from_micros(tat.as_micros().saturating_sub(burst))
    }

    /// The theoretical arrival time once `units` more went at `now`.
    pub(super) fn spend(self, tat: Time, now: Time, units: u32) -> Time {
        tat.max(now) + self.interval * units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_units_come_at_the_sustained_rate() {
        let rate = Rate::new(10, 3);
        let now = Time::from_millis(1_000);
        let mut tat = Time::ZERO;
        let mut at_once = 0;
        while rate.allowed_at(tat) <= now {
            tat = rate.spend(tat, now, 1);
            at_once += 1;
        }
        // The first unit, then a burst of three more (GCRA's tolerance).
        assert_eq!(at_once, 4);
        assert_eq!(rate.allowed_at(tat), now + Duration::from_millis(100));
    }
}
