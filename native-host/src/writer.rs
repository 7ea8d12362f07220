//! The pool store on a thread of its own, so that its fsyncs and rewrites never hold up
//! the sockets.
//!
//! The node's loop hands each batch of new transactions to [`PoolWriter::append`] and
//! goes on at once. The writer thread takes everything that has arrived (group commit:
//! whatever came while the last write and its fsync were under way goes in one batch)
//! and, if `transactions.json` is due for a rewrite, rewrites it first, so a transaction
//! that reaches an idle node is in its pool file as soon as one rewrite allows; then it
//! appends the batch to the journal with one fdatasync and counts it stored. The pool file
//! is due when ten times the processor time of the last rewrite has passed since it (so
//! rewrites take at most about a tenth of a processor however large the pool grows, and a
//! burst costs O(new transactions) a rewrite); a batch that comes sooner waits in the
//! journal until then, and whatever else arrives meanwhile rides along.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use p2p_core::Transaction;

use crate::store::{PoolStore, StoreError};

enum Command {
    Append(Vec<Transaction>),
    /// Write everything, bring the pool file up to date, and stop.
    Stop,
}

/// What the writer thread did, from its start to its stop.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    /// Batches appended to the journal (each one write and one fdatasync).
    pub(crate) batches: usize,
    /// Rewrites of the pool file while running (the one at the stop not counted).
    pub(crate) rewrites: usize,
    /// Time those rewrites took, and the longest of them.
    pub(crate) rewriting: Duration,
    pub(crate) longest: Duration,
    /// From the thread's start to its stop.
    pub(crate) running: Duration,
}

/// The handle the node's loop holds on the writer thread.
pub(crate) struct PoolWriter {
    commands: Sender<Command>,
    thread: Option<JoinHandle<Result<Written, StoreError>>>,
}

impl PoolWriter {
    /// Starts the writer thread over `store`; `failed` is called (once, on the writer
    /// thread) if the pool can no longer be written, so the node stops. The writer keeps
    /// only the transactions not yet in the pool file, not a copy of the pool.
    pub(crate) fn start(
        store: PoolStore,
        failed: impl FnOnce() + Send + 'static,
    ) -> io::Result<PoolWriter> {
        let (commands, inbox) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("pool-writer".into())
            .spawn(move || {
                let result = write(store, inbox);
                if result.is_err() {
                    failed();
                }
                result
            })?;
        Ok(PoolWriter {
            commands,
            thread: Some(thread),
        })
    }

    /// Queues `batch` (new transactions, in pool order) for the journal.
    pub(crate) fn append(&self, batch: Vec<Transaction>) {
        // A send fails only once the thread has ended on an error, which `stop` reports.
        let _ = self.commands.send(Command::Append(batch));
    }

    /// Writes what is queued, brings the pool file up to date durably, and ends the
    /// thread; says what it did.
    pub(crate) fn stop(&mut self) -> Result<Written, StoreError> {
        let _ = self.commands.send(Command::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            // The thread panicked (a broken invariant of ours), or was stopped before:
            // what it had stored is in the journal or the pool file.
            Some(Err(_)) | None => Ok(Written::default()),
        }
    }

    /// The first error of the writer thread, if it has ended on one.
    pub(crate) fn error(&mut self) -> Option<StoreError> {
        if !self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(error))) => Some(error),
            _ => None,
        }
    }
}

/// Spacing of rewrites while the writer is idle (each batch it takes is the only one
/// waiting), in multiples of the last rewrite's processor time: rewrites take at most a
/// tenth of a processor however large the pool grows.
const IDLE_SPACING: u32 = 10;
/// Spacing of rewrites while batches queue up behind the writer (a burst): rewrites come
/// when the transactions new since the last one are half as many as the pool file holds
/// (a burst's rewrites add up to a constant factor of what it adds, amortised O(new
/// transactions)), or at the latest this many times the last rewrite's processor time
/// after it, so that steady load never leaves the pool file far behind.
const BUSY_SPACING: u32 = 100;

/// When the pool file is due for a rewrite. Wall time between rewrites, processor time
/// for their cost: on a machine shared by ten nodes most of a rewrite's wall time is a
/// wait for a processor, which would make rewrites far rarer than meant.
#[derive(Debug, Default, Clone, Copy)]
struct Pacing {
    last_end: Option<Instant>,
    last_cost: Duration,
}

impl Pacing {
    /// When the next rewrite may start by the clock; `None`: at once.
    fn next(&self, busy: bool) -> Option<Instant> {
        let spacing = if busy { BUSY_SPACING } else { IDLE_SPACING };
        self.last_end.map(|end| end + self.last_cost * spacing)
    }

    /// Whether a rewrite may start at `now` with `pending` transactions not in the pool
    /// file, which holds `filed`; `busy`: batches are queueing up behind the writer.
    fn due(&self, now: Instant, pending: usize, filed: usize, busy: bool) -> bool {
        let grown = busy && pending * 2 >= filed;
        grown || self.next(busy).is_none_or(|at| at <= now)
    }

    /// A rewrite that cost `cost` ended at `end`.
    fn rewrote(&mut self, end: Instant, cost: Duration) {
        self.last_end = Some(end);
        self.last_cost = cost;
    }
}

/// Rewrites the pool file with `pending` (the transactions it lacks) and notes it in
/// `pacing` and `written`.
fn rewrite(
    store: &mut PoolStore,
    pending: &[Transaction],
    pacing: &mut Pacing,
    written: &mut Written,
) -> Result<(), StoreError> {
    store.rewrite(pending)?;
    let cost = store.last_cost();
    pacing.rewrote(Instant::now(), cost);
    written.rewrites += 1;
    written.rewriting += cost;
    written.longest = written.longest.max(cost);
    Ok(())
}

/// The writer thread: for each batch (all that has arrived), rewrites the pool file if it
/// is due, then appends the batch to the journal with one fdatasync; rewrites a lagging
/// pool file when it falls due; at the stop, writes it durably and removes the journal.
fn write(mut store: PoolStore, inbox: Receiver<Command>) -> Result<Written, StoreError> {
    let started = Instant::now();
    let mut pacing = Pacing::default();
    let mut written = Written::default();
    // The transactions not yet in the pool file, in pool order.
    let mut pending: Vec<Transaction> = Vec::new();
    loop {
        let first = if !pending.is_empty() {
            // Nothing else queued by the time it falls due: idle.
            let due = pacing.next(false).unwrap_or_else(Instant::now);
            match inbox.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => {
                    rewrite(&mut store, &pending, &mut pacing, &mut written)?;
                    pending.clear();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            }
        } else {
            inbox.recv().ok()
        };
        let mut stop = first.is_none();
        let start = pending.len();
        let mut take = |command: Command, stop: &mut bool| match command {
            Command::Append(batch) => pending.extend(batch),
            Command::Stop => *stop = true,
        };
        if let Some(command) = first {
            take(command, &mut stop);
        }
        // Everything that arrived while the last write was under way rides along.
        let mut taken = 1;
        while !stop {
            match inbox.try_recv() {
                Ok(command) => take(command, &mut stop),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => stop = true,
            }
            taken += 1;
        }
        if stop {
            store.append(&pending[start..])?;
            store.close(&pending)?;
            written.running = started.elapsed();
            return Ok(written);
        }
        if pending.len() > start {
            let rewritten = pacing.due(Instant::now(), pending.len(), store.filed(), taken > 1);
            if rewritten {
                rewrite(&mut store, &pending, &mut pacing, &mut written)?;
            }
            store.append(&pending[start..])?;
            written.batches += 1;
            log::debug!(
                "stored {} new transactions{}",
                pending.len() - start,
                if rewritten {
                    " (pool file rewritten)"
                } else {
                    ""
                }
            );
            if rewritten {
                pending.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{read_journal, JOURNAL_FILE};
    use p2p_core::Transaction;
    use p2p_core::{parse_pool, render_pool};

    fn tx(n: u64) -> Transaction {
        Transaction::create(Some("key"), n % 100 + 1, 1_700_000_000_000 + n)
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_writer_that_never_rewrote_or_was_idle_long_enough_rewrites_at_once() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        assert!(pacing.due(now, 1, 50_000, false));
        assert!(pacing.due(now, 1, 50_000, true));
        pacing.rewrote(now, 5 * MS);
        assert!(pacing.due(now + 50 * MS, 1, 50_000, false));
    }

    #[test]
    fn idle_rewrites_come_no_sooner_than_ten_times_the_last_ones_cost() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        pacing.rewrote(now, 5 * MS);
        assert!(!pacing.due(now + 49 * MS, 1, 50_000, false));
        assert_eq!(pacing.next(false), Some(now + 50 * MS));
    }

    #[test]
    fn busy_rewrites_wait_for_the_pool_to_grow_by_half_or_a_hundred_times_their_cost() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        pacing.rewrote(now, 5 * MS);
        assert!(!pacing.due(now + 50 * MS, 24_999, 50_000, true));
        assert!(pacing.due(now + 50 * MS, 25_000, 50_000, true));
        assert!(!pacing.due(now + 499 * MS, 1, 50_000, true));
        assert!(pacing.due(now + 500 * MS, 1, 50_000, true));
    }

    #[test]
    fn batches_handed_over_are_in_the_pool_file_after_stop_and_the_journal_is_gone() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("transactions.json");
        let store = PoolStore::open(&path, &[], false).expect("open");
        let mut writer = PoolWriter::start(store, || {}).expect("thread");
        let all: Vec<_> = (0..500).map(tx).collect();
        for chunk in all.chunks(7) {
            writer.append(chunk.to_vec());
        }
        assert!(writer.stop().is_ok());
        assert_eq!(std::fs::read_to_string(&path).ok(), Some(render_pool(&all)));
        assert!(!dir.path().join(JOURNAL_FILE).exists());
    }

    /// The pool file's transactions, or `None` while it does not parse.
    fn filed(path: &std::path::Path) -> Option<Vec<Transaction>> {
        parse_pool(&std::fs::read_to_string(path).ok()?).ok()
    }

    #[test]
    fn a_batch_reaching_an_idle_writer_is_in_the_pool_file_before_the_journal() {
        // A writer that never rewrote is idle: its first batch goes into the pool file
        // first, without waiting for the journal's fdatasync.
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("transactions.json");
        let journal = dir.path().join(JOURNAL_FILE);
        let first: Vec<_> = (0..1000).map(tx).collect();
        let store = PoolStore::open(&path, &first, false).expect("open");
        let mut writer = PoolWriter::start(store, || {}).expect("thread");
        writer.append(vec![tx(5000)]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while read_journal(&journal).expect("journal").0.len() < 1001 {
            assert!(
                Instant::now() < deadline,
                "the batch never reached the journal"
            );
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(filed(&path).map(|p| p.len()), Some(1001));
        let written = writer.stop().expect("stop");
        assert_eq!((written.batches, written.rewrites), (1, 1));
    }

    #[test]
    fn a_busy_writer_coalesces_rewrites_and_readers_never_see_a_torn_pool_file() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("transactions.json");
        let first: Vec<_> = (0..5000).map(tx).collect();
        let store = PoolStore::open(&path, &first, false).expect("open");
        let mut writer = PoolWriter::start(store, || {}).expect("thread");
        let all: Vec<_> = (0..25_000).map(tx).collect();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, done, all) = (path.clone(), done.clone(), all.clone());
            thread::spawn(move || {
                let mut reads = 0;
                let mut last = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let pool = filed(&path).expect("a pool file that parses, every time");
                    assert_eq!(pool, all[..pool.len()], "a pool we wrote");
                    assert!(pool.len() >= last, "the pool file never goes back");
                    last = pool.len();
                    reads += 1;
                }
                reads
            })
        };
        for one in &all[5000..] {
            writer.append(vec![one.clone()]);
        }
        let written = writer.stop().expect("stop");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().expect("the reader") > 0);
        assert_eq!(filed(&path), Some(all));
        // Group commit: batches that came during a write went together, and rewrites
        // were paced: each came at least ten times its predecessor's cost after it.
        assert!(written.batches < 20_000, "{written:?}");
        assert!(written.rewrites <= written.batches, "{written:?}");
        assert!(
            written.rewriting * 10 <= written.running + written.longest * 10,
            "{written:?}"
        );
    }

    #[test]
    fn the_pool_file_catches_up_after_a_lull_without_a_stop() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("transactions.json");
        let first: Vec<_> = (0..1000).map(tx).collect();
        let store = PoolStore::open(&path, &first, false).expect("open");
        let mut writer = PoolWriter::start(store, || {}).expect("thread");
        writer.append(vec![tx(5000)]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = 0;
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            seen = parse_pool(&text).map(|p| p.len()).unwrap_or(0);
            if seen == 1001 {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen, 1001, "the pool file was not rewritten after the lull");
        assert!(writer.stop().is_ok());
    }
}
