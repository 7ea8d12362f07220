//! The pool store on a thread of its own, so that its fsyncs never hold up the sockets.
//!
//! The node's loop hands each batch of new transactions to [`PoolWriter::append`] and
//! goes on at once. The writer thread takes everything that has arrived (group commit:
//! the first batch after a quiet spell is written at once, later ones ride along while a
//! write and its fsync are under way), appends it to the journal with one fsync, and
//! only then counts it as stored. A batch that finds `transactions.json` due for a
//! rewrite (ten times the last rewrite's cost after it, so rewrites take at most about a
//! tenth of its time) goes straight into it: after a quiet spell a transaction is in the
//! pool file as soon as one rewrite allows. Batches that come sooner go to the journal,
//! and the file is rewritten when it is due again, or when the journal reaches half of it.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use p2p_core::Transaction;

use crate::store::{PoolStore, StoreError};

/// How long the writer waits after the first batch of a quiet spell before it writes
/// and fsyncs: the relay of that batch to every peer (a burst of work for the machine)
/// is over by then, so the fsync does not compete with it; batches that come meanwhile
/// ride along (PostgreSQL's `commit_delay`).
const COMMIT_DELAY: Duration = Duration::from_millis(3);

enum Command {
    Append(Vec<Transaction>),
    /// Write everything, bring the pool file up to date, and stop.
    Stop,
}

/// The handle the node's loop holds on the writer thread.
pub(crate) struct PoolWriter {
    commands: Sender<Command>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl PoolWriter {
    /// Starts the writer thread over `store`, which holds `pool`; `failed` is called
    /// (once, on the writer thread) if the pool can no longer be written, so the node
    /// stops.
    pub(crate) fn start(
        store: PoolStore,
        pool: Vec<Transaction>,
        failed: impl FnOnce() + Send + 'static,
    ) -> io::Result<PoolWriter> {
        let (commands, inbox) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("pool-writer".into())
            .spawn(move || {
                let result = write(store, pool, inbox);
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

    /// Writes what is queued, brings the pool file up to date, and ends the thread.
    pub(crate) fn stop(&mut self) -> Result<(), StoreError> {
        let _ = self.commands.send(Command::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            // The thread panicked (a broken invariant of ours), or was stopped before:
            // what it had stored is in the journal or the pool file.
            Some(Err(_)) | None => Ok(()),
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

/// When the pool file may be rewritten next: ten times the last rewrite's cost after it
/// ended, so that rewrites take at most about a tenth of the writer's time however large
/// the pool grows. A batch that finds the file due goes straight into it (the rewrite is
/// fsynced as the journal would be); batches that come sooner go to the journal and
/// ride along with the next rewrite.
#[derive(Debug, Default, Clone, Copy)]
struct Pacing {
    last_end: Option<Instant>,
    last_cost: Duration,
}

impl Pacing {
    /// When the next rewrite may start; `None`: at once.
    fn next(&self) -> Option<Instant> {
        self.last_end.map(|end| end + self.last_cost * 10)
    }

    /// Whether a rewrite may start at `now`.
    fn due(&self, now: Instant) -> bool {
        self.next().is_none_or(|at| at <= now)
    }

    /// A rewrite that cost `cost` ended at `end`.
    fn rewrote(&mut self, end: Instant, cost: Duration) {
        self.last_end = Some(end);
        self.last_cost = cost;
    }
}

/// Rewrites the pool file and notes it in `pacing`.
fn rewrite(
    store: &mut PoolStore,
    pool: &[Transaction],
    pacing: &mut Pacing,
) -> Result<(), StoreError> {
    store.snapshot(pool)?;
    pacing.rewrote(Instant::now(), store.last_cost());
    Ok(())
}

/// The writer thread: writes each batch into the pool file when the file is due for a
/// rewrite, else into the journal (one fsync a batch), and rewrites the file when due.
fn write(
    mut store: PoolStore,
    mut pool: Vec<Transaction>,
    inbox: Receiver<Command>,
) -> Result<(), StoreError> {
    let mut pacing = Pacing::default();
    let mut snapshot_at: Option<Instant> = None;
    loop {
        let first = match snapshot_at {
            None => inbox.recv().ok(),
            Some(at) => match inbox.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => {
                    snapshot_at = None;
                    rewrite(&mut store, &pool, &mut pacing)?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            },
        };
        // Everything that arrived while the last write was under way, or arrives within
        // COMMIT_DELAY of the first, goes in one batch.
        let mut stop = first.is_none();
        let start = pool.len();
        let mut take = |command: Command, stop: &mut bool| match command {
            Command::Append(batch) => pool.extend(batch),
            Command::Stop => *stop = true,
        };
        if let Some(command) = first {
            take(command, &mut stop);
        }
        let until = Instant::now() + COMMIT_DELAY;
        while !stop {
            match inbox.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(command) => take(command, &mut stop),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
        }
        if pool.len() > start {
            let new = pool.len() - start;
            if pacing.due(Instant::now()) {
                rewrite(&mut store, &pool, &mut pacing)?;
                log::debug!("stored {new} new transactions (pool file rewritten)");
            } else {
                store.append(&pool[start..], &pool)?;
                if !store.lagging() {
                    // The journal reached half the pool file: `append` rewrote it.
                    pacing.rewrote(Instant::now(), store.last_cost());
                }
                log::debug!("stored {new} new transactions (journal fsynced)");
            }
            snapshot_at = store
                .lagging()
                .then(|| pacing.next().unwrap_or_else(Instant::now));
        }
        if stop {
            if store.lagging() {
                store.snapshot(&pool)?;
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{read_journal, JOURNAL_FILE};
    use p2p_core::{parse_pool, render_pool};

    fn tx(n: u64) -> Transaction {
        Transaction::create(Some("key"), n % 100 + 1, 1_700_000_000_000 + n)
    }

    #[test]
    fn a_writer_that_never_rewrote_or_was_quiet_long_enough_rewrites_at_once() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        assert!(pacing.due(now));
        pacing.rewrote(now, Duration::from_millis(5));
        assert!(pacing.due(now + Duration::from_millis(50)));
    }

    #[test]
    fn rewrites_come_no_sooner_than_ten_times_the_last_ones_cost() {
        let now = Instant::now();
        let mut pacing = Pacing::default();
        pacing.rewrote(now, Duration::from_millis(5));
        assert!(!pacing.due(now + Duration::from_millis(49)));
        assert_eq!(pacing.next(), Some(now + Duration::from_millis(50)));
    }

    #[test]
    fn batches_handed_over_are_in_the_journal_or_the_pool_file_and_stop_writes_the_pool_file() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("transactions.json");
        let store = PoolStore::open(&path, &[], None).expect("open");
        let mut writer = PoolWriter::start(store, Vec::new(), || {}).expect("thread");
        let all: Vec<_> = (0..500).map(tx).collect();
        for chunk in all.chunks(7) {
            writer.append(chunk.to_vec());
        }
        assert!(writer.stop().is_ok());
        assert_eq!(std::fs::read_to_string(&path).ok(), Some(render_pool(&all)));
        let (journal, _) = read_journal(&dir.path().join(JOURNAL_FILE)).expect("journal");
        assert!(
            journal.is_empty(),
            "the journal is emptied by the last rewrite"
        );
    }

    #[test]
    fn the_pool_file_catches_up_after_a_lull_without_a_stop() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("transactions.json");
        let first: Vec<_> = (0..1000).map(tx).collect();
        let store = PoolStore::open(&path, &first, None).expect("open");
        let mut writer = PoolWriter::start(store, first.clone(), || {}).expect("thread");
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
