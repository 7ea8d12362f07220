//! Catch-up between two of our nodes: range-based set reconciliation over the hashes of
//! their pools (the technique of negentropy).
//!
//! Each side keeps its hashes sorted. A SYNC frame carries sorted, disjoint ranges of
//! that order, each with one of: a fingerprint (count and sum of mixed hashes) of what
//! the sender holds in it, the full list of its hashes in it (when the range is small),
//! or the hashes it needs from it. A side whose fingerprint for a range matches says
//! nothing about it; one that differs splits it or lists it. Equal pools cost one small
//! frame; a difference of `d` transactions costs SYNC bytes in proportion to `d` (a few
//! kB each when they are spread thin, mostly in lists), and only the missing
//! transactions' bodies travel (in TXS frames).
//!
//! Every reply is bounded in bytes, ranges and bodies (see `answer`). When the next part
//! of an answer would not fit, the rest of the frame is answered with one fingerprint
//! range from where the answer stopped to the end of the last received range, and the
//! peer splits it again. Each round thus settles a prefix of what differs: any two pools
//! converge, in about `log16(pool)` rounds for a small difference, plus about one round
//! per reply's worth of lists or bodies for a large one.
//!
//! Measured over a pool of 200,000 (`cargo test --release -p p2p-core --lib --
//! --ignored --nocapture figures`): SYNC frames of both sides (a round trip is two),
//! their bytes, and the CPU time of writing, reading and answering them all, on one
//! core of a shared two-core machine; the bodies travel besides, in TXS frames.
//!
//! | the other pool                 | frames | SYNC bytes | largest | bodies  | CPU     |
//! |--------------------------------|-------:|-----------:|--------:|--------:|--------:|
//! | lacks 1                        |      6 |     4.8 kB |  1.7 kB |       1 |   14 ms |
//! | lacks 1,000                    |     22 |     2.5 MB |  260 kB |   1,000 |  0.14 s |
//! | lacks 100,000                  |     90 |    11.3 MB |  260 kB | 100,000 |  0.50 s |
//! | lacks 500, holds 500 others    |     29 |     2.2 MB |  260 kB |   1,000 |  0.16 s |
//! | lacks 50,000, holds 50,000     |    151 |    22.6 MB |  260 kB | 100,000 |  1.0 s  |
//! | is empty                       |     26 |     3.2 kB |   143 B | 200,000 |   42 ms |

use std::collections::BTreeMap;
use std::io;
use std::ops::{Bound, ControlFlow};

use serde::{Deserialize, Serialize};

use crate::transaction::{TxHash, MAX_HASH_LEN};

/// A range listed by hashes when it holds at most this many (else it is split).
const LIST_AT_MOST: usize = 32;
/// Into how many parts a differing range is split, unless its counts show it holds more
/// differences than that, or parts would hold fewer hashes than a list.
const SPLIT_INTO: usize = 16;
/// Most ranges one SYNC frame may carry.
pub const MAX_RANGES: usize = 1024;
/// Longest `ids` or `need` list a range may carry: twice what we list ourselves, and our
/// `need` lists only ids the peer listed, so it stays under it too.
pub const MAX_LIST: usize = 64;

/// What one reply may hold. Every part of an answer (a range, a body) is taken only if
/// the closing remainder range still fits after it.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Bytes of the whole SYNC frame, as `frame::sync` writes it.
    bytes: usize,
    /// Ranges in the SYNC frame.
    ranges: usize,
    /// Hashes whose bodies are sent.
    bodies: usize,
}

impl Budget {
    /// A quarter of the default 1 MiB frame limit, far from refusal; the cap on ranges
    /// every node of ours reads; 16,384 bodies (about 4 MiB of TXS frames at our
    /// transactions' ~270 bytes) bring 200,000 missing transactions over in 13 round
    /// trips, while one small SYNC frame cannot make us queue more than that.
    const DEFAULT: Budget = Budget {
        bytes: 256 * 1024,
        ranges: MAX_RANGES,
        bodies: 16_384,
    };
}

// Our replies pass our own `validate`, and a fresh reply takes a whole split and the
// remainder, so every reply settles something.
const _: () =
    assert!(SPLIT_INTO + 2 <= Budget::DEFAULT.ranges && Budget::DEFAULT.ranges <= MAX_RANGES);

/// Room kept in every reply for the remainder range: two bounds of the longest hash with
/// every byte escaped (`\u00XX`), the largest count and a fingerprint.
const REMAINDER_BYTES: usize = 2 * (6 * MAX_HASH_LEN + 2) + 80;
/// `{"type":"SYNC","data":[]}`: what `frame::sync` adds around the ranges.
const FRAME_BYTES: usize = 25;

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
    /// Hashes whose transactions the peer lacks: send their bodies. Each at most once.
    pub(crate) send: Vec<TxHash>,
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
    /// Ranges that are empty, overlap, are out of order, or end before the last one.
    #[error("SYNC ranges are not sorted and disjoint")]
    Unsorted,
    /// An `ids` or `need` list longer than [`MAX_LIST`].
    #[error("SYNC list has more than {MAX_LIST} hashes")]
    LongList,
    /// A bound or listed hash longer than any hash we accept.
    #[error("SYNC bound or hash is longer than {MAX_HASH_LEN} bytes")]
    LongHash,
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
    map: BTreeMap<TxHash, Slot>,
    sum: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: usize,
    mix: u64,
}

impl HashIndex {
    /// Adds `hash` at arrival position `index`; false if it was there already.
    pub(crate) fn insert(&mut self, hash: TxHash, index: usize) -> bool {
        match self.map.entry(hash) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(entry) => {
                let mix = mix(entry.key());
                self.sum = self.sum.wrapping_add(mix);
                entry.insert(Slot { index, mix });
                true
            }
        }
    }

    pub(crate) fn contains(&self, hash: &str) -> bool {
        self.map.contains_key(hash)
    }

    /// The arrival position of `hash`.
    pub(crate) fn index(&self, hash: &str) -> Option<usize> {
        self.map.get(hash).map(|slot| slot.index)
    }

    fn key(&self, hash: &str) -> Option<&TxHash> {
        self.map.get_key_value(hash).map(|(k, _)| k)
    }

    fn range<'a>(
        &'a self,
        lo: &str,
        ub: Option<&str>,
    ) -> impl Iterator<Item = (&'a TxHash, &'a Slot)> + 'a {
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

    /// Count and sum of the mixed hashes in `[lo, ub)`.
    fn fingerprint(&self, lo: &str, ub: Option<&str>) -> (usize, u64) {
        if lo.is_empty() && ub.is_none() {
            return (self.map.len(), self.sum);
        }
        self.range(lo, ub).fold((0, 0), |(n, sum), (_, slot)| {
            (n + 1, sum.wrapping_add(slot.mix))
        })
    }
}

fn fp_range(lo: String, ub: Option<String>, n: usize, sum: u64) -> Range {
    Range {
        lo,
        ub,
        n: Some(n as u64),
        fp: Some(format!("{sum:016x}")),
        ids: None,
        need: None,
    }
}

fn list_range(lo: String, ub: Option<String>, ids: Vec<String>, need: bool) -> Range {
    let (ids, need) = if need {
        (None, Some(ids))
    } else {
        (Some(ids), None)
    };
    Range {
        lo,
        ub,
        n: None,
        fp: None,
        ids,
        need,
    }
}

/// The opening SYNC of a round: one fingerprint of the whole pool.
pub(crate) fn open(set: &HashIndex) -> Vec<Range> {
    let (n, sum) = set.fingerprint("", None);
    vec![fp_range(String::new(), None, n, sum)]
}

/// Whether `ranges` open a conversation: one fingerprint of the whole order, as
/// [`open`] writes it (no reply has this shape: a split has several ranges, and a
/// remainder starts after what its reply settled).
pub(crate) fn is_opening(ranges: &[Range]) -> bool {
    matches!(ranges, [range] if range.lo.is_empty() && range.ub.is_none() && range.fp.is_some())
}

/// Checks a received SYNC frame's ranges before any work is done on them.
///
/// Ranges must be non-empty, sorted and disjoint (`lo < ub`, each `lo` at or after the
/// previous `ub`, an open end only on the last), so that answering the frame visits each
/// hash of the pool a bounded number of times; lists hold at most [`MAX_LIST`] hashes
/// and no string is longer than a hash, so that echoing them keeps a reply in budget.
pub(crate) fn validate(ranges: &[Range]) -> Result<(), SyncError> {
    if ranges.len() > MAX_RANGES {
        return Err(SyncError::TooManyRanges);
    }
    let mut previous_ub: Option<&str> = None;
    for (i, range) in ranges.iter().enumerate() {
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
        let list = range.ids.as_ref().or(range.need.as_ref());
        if list.is_some_and(|list| list.len() > MAX_LIST) {
            return Err(SyncError::LongList);
        }
        let too_long = |s: &String| s.len() > MAX_HASH_LEN;
        if too_long(&range.lo)
            || range.ub.as_ref().is_some_and(too_long)
            || list.is_some_and(|list| list.iter().any(too_long))
        {
            return Err(SyncError::LongHash);
        }
        let after_previous = previous_ub.is_none_or(|ub| range.lo.as_str() >= ub);
        let non_empty = range.ub.as_ref().is_none_or(|ub| range.lo < *ub);
        let open_end_last = range.ub.is_some() || i + 1 == ranges.len();
        if !(after_previous && non_empty && open_end_last) {
            return Err(SyncError::Unsorted);
        }
        previous_ub = range.ub.as_deref();
    }
    Ok(())
}

/// Answers a peer's SYNC ranges from our own hashes `set`.
///
/// For each range, in order:
/// - a fingerprint that matches ours is passed over;
/// - one that differs, where the peer holds nothing, is answered with the bodies of all
///   we hold there; where we hold at most [`LIST_AT_MOST`], with the list of our hashes;
///   else with fingerprints of [`SPLIT_INTO`] equal parts, more when the two counts
///   differ by more (the range holds at least that many differences), fewer when parts
///   would hold less than a list;
/// - a list is answered with the bodies of ours it lacks and a `need` of its hashes we
///   lack (never longer than the list);
/// - a `need` with the bodies asked for, each once.
///
/// A reply holds at most 256 KiB of SYNC frame, [`MAX_RANGES`] ranges and 16,384 bodies.
/// At the first part that would not fit (a range, a body) the answer stops, and the rest
/// is answered with one fingerprint range from where it stopped to the end of the last
/// received range, which the peer splits again: every reply settles at least its first
/// part, so the conversation always moves on. Replies are sorted and disjoint, as
/// [`validate`] asks.
///
/// Work: on a frame that passed [`validate`] (disjoint ranges), each hash of the pool is
/// visited at most three times (fingerprint, split or list, remainder), so one frame
/// costs O(pool + ranges · log pool) whatever the peer puts in it.
pub(crate) fn answer(set: &HashIndex, ranges: &[Range]) -> Reply {
    answer_within(set, ranges, Budget::DEFAULT)
}

fn answer_within(set: &HashIndex, ranges: &[Range], budget: Budget) -> Reply {
    let mut out = Answer {
        set,
        budget,
        reply: Reply::default(),
        bytes: FRAME_BYTES,
    };
    for range in ranges {
        let step = match said(range) {
            Said::Fingerprint(n, fp) => out.fingerprint(range, n, fp),
            Said::List(ids) => out.list(range, ids),
            Said::Need(need) => out.need(range, need),
            Said::Nothing => ControlFlow::Continue(()),
        };
        if let ControlFlow::Break(cut) = step {
            let end = ranges.last().and_then(|last| last.ub.clone());
            // Only an unvalidated frame could put the cut at or past its end.
            if end.as_ref().is_none_or(|end| cut < *end) {
                let (n, sum) = set.fingerprint(&cut, end.as_deref());
                out.reply.ranges.push(fp_range(cut, end, n, sum));
            }
            break;
        }
    }
    out.reply
}

/// What a received range says.
enum Said<'a> {
    /// The sender holds this many hashes, with this fingerprint.
    Fingerprint(u64, &'a str),
    /// The sender holds exactly these.
    List(&'a [String]),
    /// The sender asks for these.
    Need(&'a [String]),
    /// Nothing we understand (a frame that skipped `validate`).
    Nothing,
}

fn said(range: &Range) -> Said<'_> {
    match (range.n, &range.fp, &range.ids, &range.need) {
        (Some(n), Some(fp), None, None) => Said::Fingerprint(n, fp),
        (None, None, Some(ids), None) => Said::List(ids),
        (None, None, None, Some(need)) => Said::Need(need),
        _ => Said::Nothing,
    }
}

/// A reply being built, and what it has used of its budget.
struct Answer<'a> {
    set: &'a HashIndex,
    budget: Budget,
    reply: Reply,
    /// Bytes of the SYNC frame so far.
    bytes: usize,
}

/// The shortest prefix of `next` that sorts after `prev` (given `prev < next`): a bound
/// between two neighbours that costs a few characters instead of a whole hash.
fn separator(prev: &str, next: &str) -> String {
    let common = prev
        .bytes()
        .zip(next.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    // `next` is longer than `common` (it is not a prefix of `prev`, which sorts first).
    let end = (common + 1..=next.len())
        .find(|&i| next.is_char_boundary(i))
        .unwrap_or(next.len());
    next[..end].to_owned()
}

/// Counts what is written to it.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes of `range` in JSON, as `frame::sync` writes it.
fn json_len(range: &Range) -> usize {
    let mut counter = Counter(0);
    // Writing plain strings and numbers to a counter cannot fail; were it to, the
    // count would only be short of a range that is then still bounded by validate.
    let _ = serde_json::to_writer(&mut counter, range);
    counter.0
}

impl Answer<'_> {
    /// Adds `range` if it leaves room for the remainder; false if it does not fit.
    fn push(&mut self, range: Range) -> bool {
        let len = json_len(&range) + 1; // and a comma
        let fits = self.reply.ranges.len() + 2 <= self.budget.ranges
            && self.bytes + len + REMAINDER_BYTES <= self.budget.bytes;
        if fits {
            self.bytes += len;
            self.reply.ranges.push(range);
        }
        fits
    }

    /// Bodies the reply may still send.
    fn bodies_left(&self) -> usize {
        self.budget.bodies.saturating_sub(self.reply.send.len())
    }

    /// Answers the peer's count and fingerprint of `range`.
    fn fingerprint(&mut self, range: &Range, their_n: u64, their_fp: &str) -> ControlFlow<String> {
        let ub = range.ub.as_deref();
        let (n, sum) = self.set.fingerprint(&range.lo, ub);
        if n as u64 == their_n && u64::from_str_radix(their_fp, 16) == Ok(sum) {
            return ControlFlow::Continue(());
        }
        if their_n == 0 {
            // The peer holds nothing here: everything we hold goes, without a round of
            // listing first.
            return self.list(range, &[]);
        }
        if n <= LIST_AT_MOST {
            let ids = self.set.range(&range.lo, ub).map(|(h, _)| h.to_string());
            let listed = list_range(range.lo.clone(), range.ub.clone(), ids.collect(), false);
            if !self.push(listed) {
                return ControlFlow::Break(range.lo.clone());
            }
            return ControlFlow::Continue(());
        }
        let at_least = usize::try_from(their_n.abs_diff(n as u64)).unwrap_or(usize::MAX);
        self.split(range, n, at_least)
    }

    /// Answers a differing range holding `count` of ours with fingerprints of parts:
    /// [`SPLIT_INTO`] of them, or fewer so that none is smaller than what the peer may
    /// list next round (a part of a handful of hashes costs a range and a round to say
    /// little; the frame's cap on ranges binds long before its bytes do).
    fn split(&mut self, range: &Range, count: usize, differences: usize) -> ControlFlow<String> {
        let room = self
            .budget
            .ranges
            .saturating_sub(self.reply.ranges.len() + 2);
        let most = differences.min(room).max(SPLIT_INTO);
        let parts = count.div_ceil(LIST_AT_MOST).clamp(2, most);
        let chunk = count.div_ceil(parts);
        let mut lo = range.lo.clone();
        let (mut n, mut sum) = (0, 0u64);
        let mut last: &str = "";
        for (i, (hash, slot)) in self.set.range(&range.lo, range.ub.as_deref()).enumerate() {
            if i > 0 && i % chunk == 0 {
                let next = separator(last, hash);
                if !self.push(fp_range(lo.clone(), Some(next.clone()), n, sum)) {
                    return ControlFlow::Break(lo);
                }
                (lo, n, sum) = (next, 0, 0);
            }
            n += 1;
            sum = sum.wrapping_add(slot.mix);
            last = hash;
        }
        if !self.push(fp_range(lo.clone(), range.ub.clone(), n, sum)) {
            return ControlFlow::Break(lo);
        }
        ControlFlow::Continue(())
    }

    /// Answers the peer's full list `theirs` of `range`: bodies of what it lacks, as
    /// many as the budget takes, and a `need` of what we lack up to where they stopped.
    fn list(&mut self, range: &Range, theirs: &[String]) -> ControlFlow<String> {
        let ub = range.ub.as_deref();
        let theirs = within(range, theirs);
        let room = self.bodies_left();
        let mut send = Vec::new();
        let mut cut: Option<&TxHash> = None;
        for (mine, _) in self.set.range(&range.lo, ub) {
            if theirs.binary_search(&mine.as_ref()).is_ok() {
                continue;
            }
            if send.len() == room {
                cut = Some(mine);
                break;
            }
            send.push(mine.clone());
        }
        let need_ub = cut.map(AsRef::as_ref).or(ub);
        let need: Vec<String> = theirs
            .into_iter()
            .filter(|id| need_ub.is_none_or(|ub| *id < ub) && !self.set.contains(id))
            .map(str::to_owned)
            .collect();
        // Every needed id is at or after `lo` and before the cut: the range is not empty.
        if !need.is_empty() {
            let need_ub = cut.map(ToString::to_string).or_else(|| range.ub.clone());
            if !self.push(list_range(range.lo.clone(), need_ub, need, true)) {
                return ControlFlow::Break(range.lo.clone());
            }
        }
        self.reply.send.extend(send);
        match cut {
            Some(cut) => ControlFlow::Break(cut.to_string()),
            None => ControlFlow::Continue(()),
        }
    }

    /// Sends the bodies asked for in `range`, as many as the budget takes.
    fn need(&mut self, range: &Range, need: &[String]) -> ControlFlow<String> {
        let wanted = within(range, need);
        for id in wanted {
            if let Some(mine) = self.set.key(id) {
                if self.bodies_left() == 0 {
                    return ControlFlow::Break(id.to_owned());
                }
                self.reply.send.push(mine.clone());
            }
        }
        ControlFlow::Continue(())
    }
}

/// The ids of a peer's list that lie in `range`, sorted, each once.
fn within<'a>(range: &Range, ids: &'a [String]) -> Vec<&'a str> {
    let ub = range.ub.as_deref();
    let mut ids: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| *id >= range.lo.as_str() && ub.is_none_or(|ub| *id < ub))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;
    use crate::frame::{self, Frame};
    use crate::Limits;

    /// A hash-like string: 64 hex digits, well spread, one per `(salt, i)`.
    fn hash(salt: u64, i: u64) -> String {
        let mut x = salt ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            next(),
            next(),
            next(),
            next()
        )
    }

    fn hashes(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| hash(0, i)).collect()
    }

    fn set(items: impl IntoIterator<Item = String>) -> HashIndex {
        let mut index = HashIndex::default();
        for (i, item) in items.into_iter().enumerate() {
            index.insert(TxHash::of(&item), i);
        }
        index
    }

    fn keys(index: &HashIndex) -> Vec<&str> {
        index.map.keys().map(|k| k.as_ref()).collect()
    }

    fn ids(range: &Range) -> usize {
        range.ids.as_ref().map_or(0, Vec::len) + range.need.as_ref().map_or(0, Vec::len)
    }

    /// What a whole conversation cost.
    #[derive(Debug, Default)]
    struct Talk {
        /// SYNC frames, the opening one included.
        frames: usize,
        /// Bytes of all SYNC frames.
        sync_bytes: usize,
        /// Bytes of the largest SYNC frame.
        largest: usize,
        /// Hashes listed in SYNC frames (`ids` and `need`).
        listed: usize,
        /// Bodies sent.
        bodies: usize,
        /// Bodies that reached a side already holding them.
        resent: usize,
        /// Time spent writing, reading and answering SYNC frames.
        cpu: Duration,
    }

    /// Runs a whole conversation between `a` and `b` as two nodes hold it: every SYNC
    /// frame is written and read back as on the wire (so a frame our own node would
    /// refuse fails the test), and the bodies sent with a frame arrive just after it.
    fn reconcile_within(a: &mut HashIndex, b: &mut HashIndex, budget: Budget) -> Talk {
        let mut talk = Talk::default();
        let mut message = open(a);
        let mut in_flight: Vec<TxHash> = Vec::new();
        let mut a_answers = false;
        loop {
            let started = Instant::now();
            let text = frame::sync(&message);
            let decoded = frame::decode(&text, Limits::default().max_frame_bytes);
            talk.cpu += started.elapsed();
            let Ok(Frame::Sync(ranges)) = decoded else {
                panic!("our own frame was refused: {decoded:?}");
            };
            assert!(
                text.len() <= budget.bytes,
                "a frame of {} bytes",
                text.len()
            );
            assert!(ranges.len() <= budget.ranges, "{} ranges", ranges.len());
            talk.frames += 1;
            talk.sync_bytes += text.len();
            talk.largest = talk.largest.max(text.len());
            talk.listed += ranges.iter().map(ids).sum::<usize>();
            assert!(talk.frames < 100_000, "no convergence after {talk:?}");

            let (me, other) = if a_answers {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            let started = Instant::now();
            let reply = answer_within(me, &ranges, budget);
            talk.cpu += started.elapsed();
            for hash in in_flight.drain(..) {
                talk.resent += usize::from(!me.insert(hash, 0));
            }
            let unique: HashSet<&TxHash> = reply.send.iter().collect();
            assert_eq!(unique.len(), reply.send.len(), "a body twice in one reply");
            assert!(reply.send.len() <= budget.bodies);
            talk.bodies += reply.send.len();
            in_flight = reply.send;
            if reply.ranges.is_empty() {
                for hash in in_flight {
                    talk.resent += usize::from(!other.insert(hash, 0));
                }
                return talk;
            }
            message = reply.ranges;
            a_answers = !a_answers;
        }
    }

    fn reconcile(a: &mut HashIndex, b: &mut HashIndex) -> Talk {
        reconcile_within(a, b, Budget::DEFAULT)
    }

    /// A budget a tenth or so of the default, to play large cases quickly.
    const SMALL: Budget = Budget {
        bytes: 16 * 1024,
        ranges: 64,
        bodies: 1024,
    };

    /// Pools `a` and `b` converge within `budget`; what it cost.
    fn converge(a: Vec<String>, b: Vec<String>, budget: Budget) -> Talk {
        let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
        all.sort();
        all.dedup();
        let (mut a, mut b) = (set(a), set(b));
        let talk = reconcile_within(&mut a, &mut b, budget);
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(keys(&a).len(), all.len());
        assert_eq!(talk.resent, 0, "{talk:?}");
        talk
    }

    #[test]
    fn equal_pools_agree_in_one_frame() {
        let mut a = set(hashes(0..5000));
        let mut b = a.clone();
        let talk = reconcile(&mut a, &mut b);
        assert_eq!((talk.frames, talk.bodies, talk.listed), (1, 0, 0));
    }

    #[test]
    fn reconciled_pools_end_equal_whichever_side_lacks() {
        let talk = converge(hashes(0..3000), hashes(1000..4000), Budget::DEFAULT);
        assert_eq!(talk.bodies, 2000);
    }

    #[test]
    fn an_empty_side_gets_everything() {
        let talk = converge(Vec::new(), hashes(0..700), Budget::DEFAULT);
        assert_eq!((talk.frames, talk.bodies), (1, 700));
        let talk = converge(hashes(0..700), Vec::new(), Budget::DEFAULT);
        assert_eq!((talk.frames, talk.bodies), (2, 700));
    }

    #[test]
    fn a_few_missing_cost_hashes_in_proportion_to_what_is_missing_not_to_the_pool() {
        let all = hashes(0..50_000);
        let some = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10_000 != 7)
            .map(|(_, h)| h.clone())
            .collect();
        let talk = converge(all, some, Budget::DEFAULT);
        assert_eq!(talk.bodies, 5);
        assert!(talk.listed <= 5 * 2 * LIST_AT_MOST, "{talk:?}");
        assert!(talk.frames <= 10, "{talk:?}");
    }

    #[test]
    fn a_large_one_sided_difference_arrives_a_budget_of_bodies_per_round() {
        let talk = converge(hashes(0..20_000), Vec::new(), SMALL);
        assert_eq!(talk.bodies, 20_000);
        // Twenty budgets of bodies, one every other frame, and the opening.
        assert!(talk.frames <= 2 * 20 + 2, "{talk:?}");
    }

    #[test]
    fn disjoint_pools_of_different_sizes_converge_within_a_small_budget() {
        let talk = converge(hashes(0..6000), hashes(6000..7000), SMALL);
        assert_eq!(talk.bodies, 7000);
        assert!(talk.frames <= 80, "{talk:?}");
    }

    #[test]
    fn one_missing_of_many_takes_a_few_rounds_within_a_small_budget() {
        let all = hashes(0..20_000);
        let mut some = all.clone();
        some.remove(12_345);
        let talk = converge(all, some, SMALL);
        assert_eq!(talk.bodies, 1);
        assert!(talk.frames <= 8, "{talk:?}");
    }

    #[test]
    fn overlapping_pools_converge_within_a_small_budget() {
        let talk = converge(hashes(0..10_000), hashes(5000..15_000), SMALL);
        assert_eq!(talk.bodies, 10_000);
        assert!(talk.frames <= 150, "{talk:?}");
    }

    #[test]
    fn a_reply_over_budget_ends_with_one_fingerprint_from_where_it_stopped_to_the_end() {
        let ours = set(hashes(0..5000));
        let sorted: Vec<String> = keys(&ours).into_iter().map(str::to_owned).collect();
        // 100 differing ranges, each of which we would split 16 ways: 1,600 ranges.
        let ranges: Vec<Range> = (0..100)
            .map(|i| {
                let lo = if i == 0 {
                    String::new()
                } else {
                    sorted[i * 50].clone()
                };
                let ub = (i < 99).then(|| sorted[(i + 1) * 50].clone());
                fp_range(lo, ub, 1, 0)
            })
            .collect();
        validate(&ranges).unwrap();
        let reply = answer(&ours, &ranges);
        validate(&reply.ranges).unwrap();
        assert!(reply.ranges.len() <= MAX_RANGES);
        assert!(frame::sync(&reply.ranges).len() <= Budget::DEFAULT.bytes);
        let rest = reply.ranges.last().unwrap();
        assert_eq!(rest.ub, None);
        // The ranges above are contiguous: the remainder starts where the answer stopped.
        let before = &reply.ranges[reply.ranges.len() - 2];
        assert_eq!(before.ub.as_ref(), Some(&rest.lo));
        let (n, sum) = ours.fingerprint(&rest.lo, None);
        assert_eq!(rest, &fp_range(rest.lo.clone(), None, n, sum));
    }

    #[test]
    fn bodies_beyond_the_budget_are_asked_for_again_through_a_fingerprint() {
        let ours = set(hashes(0..100));
        let sorted = keys(&ours);
        let theirs = [list_range(String::new(), None, Vec::new(), false)];
        let budget = Budget {
            bodies: 10,
            ..Budget::DEFAULT
        };
        let reply = answer_within(&ours, &theirs, budget);
        let sent: Vec<&str> = reply.send.iter().map(AsRef::as_ref).collect();
        assert_eq!(sent, sorted[..10]);
        let (n, sum) = ours.fingerprint(sorted[10], None);
        assert_eq!(n, 90);
        assert_eq!(
            reply.ranges,
            [fp_range(sorted[10].to_owned(), None, n, sum)]
        );
    }

    #[test]
    fn a_list_answered_past_the_body_budget_asks_only_below_where_it_stopped() {
        let ours = set(hashes(0..100));
        let sorted = keys(&ours);
        let below = format!("{}0", sorted[3]);
        let above = format!("{}0", sorted[50]);
        let mut listed: Vec<String> = sorted[..2].iter().map(|h| h.to_string()).collect();
        listed.extend([below.clone(), above]);
        let budget = Budget {
            bodies: 10,
            ..Budget::DEFAULT
        };
        let theirs = [list_range(String::new(), None, listed, false)];
        let reply = answer_within(&ours, &theirs, budget);
        let sent: Vec<&str> = reply.send.iter().map(AsRef::as_ref).collect();
        assert_eq!(sent, sorted[2..12]);
        let cut = sorted[12].to_owned();
        let (n, sum) = ours.fingerprint(&cut, None);
        assert_eq!(
            reply.ranges,
            [
                list_range(String::new(), Some(cut.clone()), vec![below], true),
                fp_range(cut, None, n, sum),
            ]
        );
        validate(&reply.ranges).unwrap();
    }

    #[test]
    fn a_list_of_ours_is_answered_with_what_each_side_lacks() {
        let ours = set(hashes(0..10));
        let sorted = keys(&ours);
        let mut listed: Vec<String> = sorted[..5].iter().map(|h| h.to_string()).collect();
        listed.push(hash(1, 0));
        let reply = answer(&ours, &[list_range(String::new(), None, listed, false)]);
        let sent: Vec<&str> = reply.send.iter().map(AsRef::as_ref).collect();
        assert_eq!(sent, sorted[5..]);
        assert_eq!(
            reply.ranges,
            [list_range(String::new(), None, vec![hash(1, 0)], true)]
        );
    }

    #[test]
    fn a_need_naming_a_hash_twice_gets_its_body_once() {
        let ours = set(hashes(0..5));
        let first = keys(&ours)[0].to_owned();
        let need = vec![first.clone(), first.clone(), hash(1, 0), first.clone()];
        let reply = answer(&ours, &[list_range(String::new(), None, need, true)]);
        assert_eq!(reply.send.len(), 1);
        assert_eq!(reply.send[0].as_ref(), first);
        assert!(reply.ranges.is_empty());
    }

    #[test]
    fn hashes_listed_outside_their_range_are_ignored() {
        let ours = set(hashes(0..5));
        let sorted = keys(&ours);
        let need = sorted.iter().map(|h| h.to_string()).collect();
        let reply = answer(&ours, &[list_range(sorted[4].to_owned(), None, need, true)]);
        assert_eq!(reply.send.len(), 1);
    }

    #[test]
    fn fingerprints_of_the_two_sides_of_any_cut_add_up_to_the_whole() {
        let ours = set(hashes(0..1000));
        let whole = ours.fingerprint("", None);
        let folded = ours.range("", None).fold((0, 0u64), |(n, sum), (_, slot)| {
            (n + 1, sum.wrapping_add(slot.mix))
        });
        assert_eq!(whole, folded);
        for cut in [keys(&ours)[0], keys(&ours)[500], "8", "", "g"] {
            let below = if cut.is_empty() {
                (0, 0)
            } else {
                ours.fingerprint("", Some(cut))
            };
            let above = ours.fingerprint(cut, None);
            assert_eq!(
                (below.0 + above.0, below.1.wrapping_add(above.1)),
                whole,
                "{cut}"
            );
        }
    }

    #[test]
    fn a_split_bound_is_the_shortest_prefix_between_two_neighbours() {
        for (prev, next, bound) in [
            ("3a7f", "3a91", "3a9"),
            ("3a", "3a00", "3a0"),
            ("", "b", "b"),
            ("aé1", "aé2", "aé2"),
            ("aè", "aé", "aé"),
        ] {
            let got = separator(prev, next);
            assert_eq!(got, bound);
            assert!(prev < got.as_str() && got.as_str() <= next);
        }
    }

    #[test]
    fn malformed_ranges_are_refused() {
        let mut r = Range {
            fp: Some("00".into()),
            ..fp_range(String::new(), None, 1, 0)
        };
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
    fn many_ranges_over_the_whole_space_are_refused() {
        let whole = fp_range(String::new(), None, 1, 0);
        assert_eq!(validate(&vec![whole; MAX_RANGES]), Err(SyncError::Unsorted));
        let most = fp_range(String::new(), Some("f".into()), 1, 0);
        assert_eq!(validate(&vec![most; MAX_RANGES]), Err(SyncError::Unsorted));
    }

    #[test]
    fn unsorted_overlapping_or_empty_ranges_are_refused() {
        let r = |lo: &str, ub: Option<&str>| fp_range(lo.into(), ub.map(Into::into), 1, 0);
        let refused = [
            vec![r("b", Some("c")), r("a", Some("b"))],
            vec![r("a", Some("c")), r("b", Some("d"))],
            vec![r("a", None), r("b", Some("c"))],
            vec![r("b", Some("b"))],
            vec![r("c", Some("b"))],
        ];
        for ranges in refused {
            assert_eq!(validate(&ranges), Err(SyncError::Unsorted), "{ranges:?}");
        }
        let accepted = [r("", Some("b")), r("b", Some("c")), r("d", None)];
        assert_eq!(validate(&accepted), Ok(()));
    }

    #[test]
    fn long_lists_and_long_hashes_are_refused() {
        let list = |n: usize| vec!["a".to_owned(); n];
        let ids = list_range(String::new(), None, list(MAX_LIST + 1), false);
        assert_eq!(validate(&[ids]), Err(SyncError::LongList));
        let need = list_range(String::new(), None, list(MAX_LIST + 1), true);
        assert_eq!(validate(&[need]), Err(SyncError::LongList));
        assert_eq!(
            validate(&[list_range(String::new(), None, list(MAX_LIST), true)]),
            Ok(())
        );
        let long = "a".repeat(MAX_HASH_LEN + 1);
        let in_list = list_range(String::new(), None, vec![long.clone()], true);
        assert_eq!(validate(&[in_list]), Err(SyncError::LongHash));
        let as_bound = fp_range(long, None, 1, 0);
        assert_eq!(validate(&[as_bound]), Err(SyncError::LongHash));
    }

    #[test]
    fn inverted_or_foreign_bounds_do_no_harm() {
        let a = set(hashes(0..100));
        let weird = list_range(
            "z".into(),
            Some("a".into()),
            vec!["zz".into(), "0".into()],
            false,
        );
        let reply = answer(&a, &[weird]);
        assert!(reply.send.is_empty());
        assert!(reply.ranges.is_empty());
    }

    #[test]
    fn the_room_kept_for_the_remainder_holds_the_longest_one() {
        let bound = "\u{1}".repeat(MAX_HASH_LEN);
        let longest = fp_range(bound.clone(), Some(bound), usize::MAX, u64::MAX);
        assert!(json_len(&longest) < REMAINDER_BYTES);
        assert_eq!(FRAME_BYTES, frame::sync(&[]).len());
    }

    #[test]
    fn the_default_reply_is_far_under_the_default_frame_limit() {
        assert!(Budget::DEFAULT.bytes * 4 <= Limits::default().max_frame_bytes);
        // A first part always fits a fresh reply, so every round settles something.
        let part = list_range(
            String::new(),
            None,
            vec!["\u{1}".repeat(MAX_HASH_LEN); LIST_AT_MOST],
            false,
        );
        assert!(FRAME_BYTES + json_len(&part) + 1 + REMAINDER_BYTES <= Budget::DEFAULT.bytes);
    }

    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The default budget, or a smaller one that still takes any first part.
    fn budget() -> impl Strategy<Value = Budget> {
        prop_oneof![
            Just(Budget::DEFAULT),
            (6usize..=256, 2 * SPLIT_INTO..=MAX_RANGES, 6u32..=14).prop_map(
                |(kib, ranges, bodies)| Budget {
                    bytes: kib * 1024,
                    ranges,
                    bodies: 1 << bodies,
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(32)))]

        /// Pools of 0 to 3,000 hashes, disjoint, nested or overlapping: they end equal,
        /// every frame is one our node accepts and within budget, and no body is sent
        /// twice in a reply or to a side that already holds it.
        #[test]
        fn any_two_pools_converge_in_frames_within_budget(
            salt in any::<u64>(),
            a_len in 0..3000u64,
            b_len in 0..3000u64,
            b_from in 0..6000u64,
            budget in budget(),
        ) {
            let a = (0..a_len).map(|i| hash(salt, i)).collect();
            let b = (b_from..b_from + b_len).map(|i| hash(salt, i)).collect();
            converge(a, b, budget);
        }
    }

    /// Pool `a` and pool `b` at the default budget, with what it cost on one line.
    fn measured(name: &str, a: Vec<String>, b: Vec<String>) -> Talk {
        let talk = converge(a, b, Budget::DEFAULT);
        println!(
            "{name:<40} {:>6} frames {:>11} SYNC bytes {:>7} largest {:>8} listed {:>7} bodies {:>9.1?}",
            talk.frames, talk.sync_bytes, talk.largest, talk.listed, talk.bodies, talk.cpu
        );
        talk
    }

    /// Every `step`-th of `all` left out.
    fn without_every(all: &[String], step: usize) -> Vec<String> {
        all.iter()
            .enumerate()
            .filter(|(i, _)| i % step != 0)
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// The cases the issue names, at full size and the default budget; the bounds on
    /// frames are today's figures with some slack, to catch a regression.
    #[test]
    #[ignore = "200,000-hash pools: run with --release"]
    fn pools_far_apart_converge_at_the_default_budget() {
        let all = hashes(0..200_000);
        // A reply's worth of bodies (16,384) every other frame.
        let talk = measured("200,000 vs 0", all.clone(), Vec::new());
        assert!(talk.frames <= 2 * 13 + 2, "{talk:?}");
        let talk = measured(
            "60,000 vs 10,000 disjoint",
            hashes(0..60_000),
            hashes(60_000..70_000),
        );
        assert!(talk.frames <= 25, "{talk:?}");
        let mut one_less = all.clone();
        one_less.remove(123_456);
        let talk = measured("200,000 vs 200,000 - 1", all, one_less);
        assert!(talk.frames <= 8, "{talk:?}");
        let talk = measured(
            "100,000 vs 100,000, half shared",
            hashes(0..100_000),
            hashes(50_000..150_000),
        );
        assert!(talk.frames <= 100, "{talk:?}");
        let talk = measured(
            "100,000 vs 100,000 disjoint",
            hashes(0..100_000),
            hashes(100_000..200_000),
        );
        assert!(talk.frames <= 130, "{talk:?}");
    }

    /// The table in the module doc.
    #[test]
    #[ignore = "figures for the module doc: run with --release -- --nocapture"]
    fn figures_over_a_pool_of_200_000() {
        let all = hashes(0..200_000);
        for d in [1, 1000, 100_000] {
            let other = without_every(&all, 200_000 / d);
            measured(&format!("lacks {d}"), all.clone(), other);
        }
        for d in [500, 50_000] {
            let mut other = without_every(&all, 200_000 / d);
            other.extend(hashes(200_000..200_000 + d as u64));
            measured(&format!("lacks {d}, holds {d} others"), all.clone(), other);
        }
        measured("is empty", all, Vec::new());
    }
}
