//! Catch-up between two of our nodes: range-based set reconciliation over the hashes of
//! their pools.
//!
//! Each side keeps its hashes sorted. A SYNC frame carries ranges of that order, each
//! with one of: a fingerprint (count and sum of mixed hashes) of what the sender holds
//! in it, the full list of its hashes in it (when the range is small), or the hashes it
//! needs from it. A side whose fingerprint for a range matches says nothing about it;
//! one that differs splits it or lists it. Equal pools cost one small frame; a
//! difference of `d` transactions costs about `d · log(pool)` hashes, and only the
//! missing transactions' bodies travel (in TXS frames).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A range listed by hashes when it holds at most this many (else it is split).
const LIST_AT_MOST: usize = 32;
/// Into how many parts a differing range is split.
const SPLIT_INTO: usize = 16;
/// Most ranges one SYNC frame may carry.
pub const MAX_RANGES: usize = 1024;

/// One range `[lo, ub)` of the hash order and what the sender says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Inclusive lower bound.
    pub lo: String,
    /// Exclusive upper bound; `None` for the end of the order.
    pub ub: Option<String>,
    /// How many hashes the sender holds in the range (with `fp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// Fingerprint of the sender's hashes in the range, 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp: Option<String>,
    /// Every hash the sender holds in the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// Hashes in the range the sender lacks and asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<Vec<String>>,
}

/// What to answer to a SYNC frame.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// Ranges for the SYNC answer (none: nothing to say).
    pub(crate) ranges: Vec<Range>,
    /// Hashes whose transactions the peer lacks: send their bodies.
    pub(crate) send: Vec<Arc<str>>,
}

/// Why a SYNC frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// More ranges than [`MAX_RANGES`].
    #[error("SYNC frame has more than {MAX_RANGES} ranges")]
    TooManyRanges,
    /// A range with no mode, or more than one.
    #[error("SYNC range must have exactly one of fp, ids, need")]
    BadRange,
    /// A fingerprint that is not 16 hex digits.
    #[error("SYNC fingerprint is not 16 hex digits")]
    BadFingerprint,
}

/// 64 well-mixed bits of a hash string (FNV-1a, then SplitMix64's finaliser).
fn mix(hash: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in hash.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The hashes of a pool in sorted order, each with its position in arrival order and its
/// mixed bits cached, with a running sum: the fingerprint of the whole pool costs
/// nothing, and that of a range one addition per hash in it.
#[derive(Debug, Default, Clone)]
pub(crate) struct HashIndex {
    map: BTreeMap<Arc<str>, Slot>,
    sum: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: usize,
    mix: u64,
}

impl HashIndex {
    /// Adds `hash` at arrival position `index`; false if it was there already.
    pub(crate) fn insert(&mut self, hash: Arc<str>, index: usize) -> bool {
        if self.map.contains_key(&hash) {
            return false;
        }
        let mix = mix(&hash);
        self.sum = self.sum.wrapping_add(mix);
        self.map.insert(hash, Slot { index, mix });
        true
    }

    pub(crate) fn contains(&self, hash: &str) -> bool {
        self.map.contains_key(hash)
    }

    /// The arrival position of `hash`.
    pub(crate) fn index(&self, hash: &str) -> Option<usize> {
        self.map.get(hash).map(|slot| slot.index)
    }

    fn key(&self, hash: &str) -> Option<&Arc<str>> {
        self.map.get_key_value(hash).map(|(k, _)| k)
    }

    fn range<'a>(
        &'a self,
        lo: &str,
        ub: Option<&str>,
    ) -> impl Iterator<Item = (&'a Arc<str>, &'a Slot)> + 'a {
        let upper = match ub {
            Some(ub) => Bound::Excluded(ub),
            None => Bound::Unbounded,
        };
        // BTreeMap::range panics on an inverted range; a peer's bounds may be anything.
        let valid = ub.is_none_or(|ub| lo < ub);
        valid
            .then(|| self.map.range::<str, _>((Bound::Included(lo), upper)))
            .into_iter()
            .flatten()
    }

    /// Count and fingerprint of the hashes in `[lo, ub)`.
    fn fingerprint(&self, lo: &str, ub: Option<&str>) -> (u64, String) {
        let (count, sum) = if lo.is_empty() && ub.is_none() {
            (self.map.len() as u64, self.sum)
        } else {
            self.range(lo, ub)
                .fold((0u64, 0u64), |(n, sum), (_, slot)| {
                    (n + 1, sum.wrapping_add(slot.mix))
                })
        };
        (count, format!("{sum:016x}"))
    }
}

fn fp_range(lo: String, ub: Option<String>, n: u64, fp: String) -> Range {
    Range {
        lo,
        ub,
        n: Some(n),
        fp: Some(fp),
        ids: None,
        need: None,
    }
}

/// The opening SYNC of a round: one fingerprint of the whole pool.
pub(crate) fn open(set: &HashIndex) -> Vec<Range> {
    let (n, fp) = set.fingerprint("", None);
    vec![fp_range(String::new(), None, n, fp)]
}

/// Checks a received SYNC frame's ranges before any work is done on them.
pub(crate) fn validate(ranges: &[Range]) -> Result<(), SyncError> {
    if ranges.len() > MAX_RANGES {
        return Err(SyncError::TooManyRanges);
    }
    for range in ranges {
        let modes = usize::from(range.fp.is_some())
            + usize::from(range.ids.is_some())
            + usize::from(range.need.is_some());
        if modes != 1 || range.fp.is_some() != range.n.is_some() {
            return Err(SyncError::BadRange);
        }
        if let Some(fp) = &range.fp {
            if fp.len() != 16 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SyncError::BadFingerprint);
            }
        }
    }
    Ok(())
}

/// Answers a peer's SYNC ranges from our own hashes `set`.
pub(crate) fn answer(set: &HashIndex, ranges: &[Range]) -> Reply {
    let mut reply = Reply::default();
    for range in ranges {
        let ub = range.ub.as_deref();
        if let (Some(their_n), Some(their_fp)) = (range.n, &range.fp) {
            let (n, fp) = set.fingerprint(&range.lo, ub);
            if n == their_n && fp.eq_ignore_ascii_case(their_fp) {
                continue;
            }
            let mine: Vec<(&Arc<str>, &Slot)> = set.range(&range.lo, ub).collect();
            if mine.len() <= LIST_AT_MOST {
                reply.ranges.push(Range {
                    lo: range.lo.clone(),
                    ub: range.ub.clone(),
                    n: None,
                    fp: None,
                    ids: Some(mine.iter().map(|(h, _)| h.to_string()).collect()),
                    need: None,
                });
                continue;
            }
            let chunk = mine.len().div_ceil(SPLIT_INTO);
            let mut lo = range.lo.clone();
            for (index, part) in mine.chunks(chunk).enumerate() {
                let last = (index + 1) * chunk >= mine.len();
                let ub = if last {
                    range.ub.clone()
                } else {
                    Some(mine[(index + 1) * chunk].0.to_string())
                };
                let sum = part
                    .iter()
                    .fold(0u64, |sum, (_, slot)| sum.wrapping_add(slot.mix));
                let (n, fp) = (part.len() as u64, format!("{sum:016x}"));
                reply.ranges.push(fp_range(lo, ub.clone(), n, fp));
                lo = ub.unwrap_or_default();
            }
        } else if let Some(ids) = &range.ids {
            let theirs: std::collections::BTreeSet<&str> = ids.iter().map(String::as_str).collect();
            for (mine, _) in set.range(&range.lo, ub) {
                if !theirs.contains(mine.as_ref()) {
                    reply.send.push(Arc::clone(mine));
                }
            }
            let in_bounds = |id: &str| id >= range.lo.as_str() && ub.is_none_or(|ub| id < ub);
            let need: Vec<String> = theirs
                .iter()
                .copied()
                .filter(|id| in_bounds(id) && !set.contains(id))
                .map(str::to_owned)
                .collect();
            if !need.is_empty() {
                reply.ranges.push(Range {
                    lo: range.lo.clone(),
                    ub: range.ub.clone(),
                    n: None,
                    fp: None,
                    ids: None,
                    need: Some(need),
                });
            }
        } else if let Some(need) = &range.need {
            for id in need {
                if let Some(mine) = set.key(id) {
                    reply.send.push(Arc::clone(mine));
                }
            }
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: impl IntoIterator<Item = String>) -> HashIndex {
        let mut index = HashIndex::default();
        for (i, item) in items.into_iter().enumerate() {
            index.insert(Arc::from(item), i);
        }
        index
    }

    fn keys(index: &HashIndex) -> Vec<&str> {
        index.map.keys().map(|k| k.as_ref()).collect()
    }

    fn hashes(range: std::ops::Range<u32>) -> Vec<String> {
        range
            .map(|i| format!("{:064x}", mix(&i.to_string())))
            .collect()
    }

    /// Runs a whole conversation between `a` and `b`; returns what each sent in bodies and
    /// in hashes (inside SYNC frames), and the number of SYNC frames.
    fn reconcile(a: &mut HashIndex, b: &mut HashIndex) -> (usize, usize, usize) {
        let (mut bodies, mut listed, mut frames) = (0, 0, 1);
        let mut message = open(a);
        let mut a_turn = false; // b answers the opening
        while !message.is_empty() {
            validate(&message).unwrap();
            let (me, other) = if a_turn {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            let reply = answer(me, &message);
            for hash in &reply.send {
                other.insert(Arc::clone(hash), 0);
            }
            bodies += reply.send.len();
            listed += reply
                .ranges
                .iter()
                .map(|r| r.ids.as_ref().map_or(0, Vec::len) + r.need.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
            message = reply.ranges;
            frames += usize::from(!message.is_empty());
            a_turn = !a_turn;
        }
        (bodies, listed, frames)
    }

    #[test]
    fn equal_pools_agree_in_one_frame() {
        let mut a = set(hashes(0..5000));
        let mut b = a.clone();
        assert_eq!(reconcile(&mut a, &mut b), (0, 0, 1));
    }

    #[test]
    fn reconciled_pools_end_equal_whichever_side_lacks() {
        let mut a = set(hashes(0..3000));
        let mut b = set(hashes(1000..4000));
        let (bodies, _, _) = reconcile(&mut a, &mut b);
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(keys(&a).len(), 4000);
        assert_eq!(bodies, 2000);
    }

    #[test]
    fn an_empty_side_gets_everything() {
        let mut a = HashIndex::default();
        let mut b = set(hashes(0..700));
        reconcile(&mut a, &mut b);
        assert_eq!(keys(&a).len(), 700);
    }

    #[test]
    fn a_few_missing_cost_hashes_in_proportion_to_what_is_missing_not_to_the_pool() {
        let all = hashes(0..50_000);
        let mut a = set(all.clone());
        let mut b = set(all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10_000 != 7)
            .map(|(_, h)| h.clone()));
        let (bodies, listed, frames) = reconcile(&mut a, &mut b);
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(bodies, 5);
        assert!(listed <= 5 * 2 * LIST_AT_MOST, "listed {listed} hashes");
        assert!(frames <= 10, "{frames} frames");
    }

    #[test]
    fn malformed_ranges_are_refused() {
        let mut r = fp_range(String::new(), None, 1, "00".into());
        assert_eq!(validate(&[r.clone()]), Err(SyncError::BadFingerprint));
        r.fp = Some("0123456789abcdef".into());
        r.ids = Some(vec![]);
        assert_eq!(validate(&[r.clone()]), Err(SyncError::BadRange));
        r.ids = None;
        r.n = None;
        assert_eq!(validate(&[r.clone()]), Err(SyncError::BadRange));
        r.n = Some(0);
        assert_eq!(
            validate(&vec![r; MAX_RANGES + 1]),
            Err(SyncError::TooManyRanges)
        );
    }

    #[test]
    fn inverted_or_foreign_bounds_do_no_harm() {
        let a = set(hashes(0..100));
        let weird = Range {
            lo: "z".into(),
            ub: Some("a".into()),
            n: None,
            fp: None,
            ids: Some(vec!["zz".into(), "0".into()]),
            need: None,
        };
        let reply = answer(&a, &[weird]);
        assert!(reply.send.is_empty());
        assert!(reply.ranges.is_empty());
    }
}
