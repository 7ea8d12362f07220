//! The pool store on a thread of its own, so that its fsyncs never hold up the sockets.
//!
//! The node's loop hands each batch of new transactions to [`PoolWriter::append`] and
//! goes on at once. The writer thread takes everything that has arrived (group commit:
//! the first batch after a quiet spell is written at once, later ones ride along while a
//! write and its fsync are under way), appends it to the journal with one fsync, and
//! only then counts it as stored. It rewrites `transactions.json` after a lull (20 ms,
//! or ten times the last rewrite, so rewrites take at most a tenth of its time), or when
//! the journal reaches half the pool file.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use p2p_core::Transaction;

use crate::store::{PoolStore, StoreError};

/// After new transactions, the pool file is rewritten once this long passes without more
/// (or ten times as long as the last rewrite took).
const SNAPSHOT_LULL: Duration = Duration::from_millis(20);

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
    ) -> PoolWriter {
        let (commands, inbox) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("pool-writer".into())
            .spawn(move || {
                let result = write(store, pool, inbox);
                if result.is_err() {
                    failed();
                }
                result
            })
            .ok();
        PoolWriter { commands, thread }
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
            // The thread panicked (a broken invariant of ours) or never started: what it
            // had was in the journal or the pool file; say nothing more than the store would.
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

/// The writer thread: appends batches with one fsync each, and rewrites the pool file
/// after a lull.
fn write(
    mut store: PoolStore,
    mut pool: Vec<Transaction>,
    inbox: Receiver<Command>,
) -> Result<(), StoreError> {
    let mut snapshot_at: Option<Instant> = None;
    loop {
        let first = match snapshot_at {
            None => inbox.recv().ok(),
            Some(at) => match inbox.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => {
                    snapshot_at = None;
                    store.snapshot(&pool)?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            },
        };
        // Everything that arrived while the last write was under way goes in one batch.
        let mut stop = first.is_none();
        let start = pool.len();
        for command in first.into_iter().chain(inbox.try_iter()) {
            match command {
                Command::Append(batch) => pool.extend(batch),
                Command::Stop => stop = true,
            }
        }
        if pool.len() > start {
            store.append(&pool[start..], &pool)?;
            log::debug!(
                "stored {} new transactions (journal fsynced); pool holds {}",
                pool.len() - start,
                pool.len()
            );
            let lull = SNAPSHOT_LULL.max(store.last_cost() * 10);
            snapshot_at = store.lagging().then(|| Instant::now() + lull);
        }
        if stop {
            if store.lagging() {
                store.snapshot(&pool)?;
            }
            return Ok(());
        }
    }
}
