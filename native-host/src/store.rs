//! The pool on disk: `transactions.json`, as `JSON.stringify(pool, null, 2)` writes it,
//! never seen torn, and a journal beside it that makes writing cheap.
//!
//! New transactions are appended to `.transactions.journal` (one compact JSON object a
//! line, one write per batch): that costs the size of the new transactions. The pool
//! file itself is only ever replaced whole, by writing a temporary file and renaming it
//! over the old one, so a reader, or a restart after `kill -9` at any moment, sees the
//! old pool file or the new one, never a mix. It is replaced when the journal has grown
//! to half the pool file (so over a burst the rewrites add up to a constant factor of
//! what was appended: amortised O(new transactions)) and after a short lull, so that it
//! never lags far behind the node. A rewrite copies the old file in the kernel (all but
//! its closing `\n]`) and renders only the transactions new since, so it costs little
//! CPU and no memory of the pool's size. At start the journal is replayed: a torn last
//! line (the node was killed mid-write) is dropped, as that transaction was never
//! complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use p2p_core::{render_appended, render_pool, Transaction};

/// The journal's file name, beside `transactions.json`.
pub(crate) const JOURNAL_FILE: &str = ".transactions.journal";

/// The pool file and its journal, open.
pub(crate) struct PoolStore {
    path: PathBuf,
    journal_path: PathBuf,
    journal: File,
    journal_bytes: u64,
    /// Size of the pool file as last written.
    snapshot_bytes: u64,
    /// Transactions in the pool file as last written (the first ones of the pool).
    snapshot_count: usize,
    /// How long the last rewrite took.
    last_cost: Duration,
}

/// Why the pool could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub(crate) struct StoreError {
    path: PathBuf,
    source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError {
        path: path.to_owned(),
        source,
    }
}

/// Transactions recovered from a journal left by a node that stopped without writing
/// its pool file, in order; a torn last line is skipped. Also says how many bytes of
/// torn tail were dropped.
pub(crate) fn read_journal(path: &Path) -> Result<(Vec<Transaction>, usize), StoreError> {
    let text = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(source) => return Err(at(path)(source)),
    };
    let mut recovered = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let complete = line.ends_with(b"\n");
        let parsed = std::str::from_utf8(line)
            .ok()
            .and_then(|l| Transaction::from_json(l.trim_end()).ok());
        match parsed {
            Some(tx) if complete => recovered.push(tx),
            _ => break,
        }
        offset += line.len();
    }
    Ok((recovered, text.len() - offset))
}

impl PoolStore {
    /// Opens the store of `dir`'s pool file, which now must hold `pool` (the file's
    /// transactions plus any recovered from the journal). The pool file is rewritten
    /// (atomically) if its text `text` is not exactly that; the journal is emptied.
    pub(crate) fn open(
        path: &Path,
        pool: &[Transaction],
        text: Option<&str>,
    ) -> Result<PoolStore, StoreError> {
        let journal_path = path.with_file_name(JOURNAL_FILE);
        let canonical = render_pool(pool);
        if text != Some(canonical.as_str()) {
            if text.is_some() {
                log::info!(
                    "writing {} in canonical form ({} transactions)",
                    path.display(),
                    pool.len()
                );
            }
            write_atomically(path, canonical.as_bytes())?;
        }
        // Append mode: every write lands at the end, also after the journal is emptied.
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .map_err(at(&journal_path))?;
        journal.set_len(0).map_err(at(&journal_path))?;
        Ok(PoolStore {
            path: path.to_owned(),
            journal_path,
            journal,
            journal_bytes: 0,
            snapshot_bytes: canonical.len() as u64,
            snapshot_count: pool.len(),
            last_cost: Duration::ZERO,
        })
    }

    /// Records `new` (just added to the end of `pool`) in the journal, and rewrites the
    /// pool file when the journal has grown to half its size.
    pub(crate) fn append(
        &mut self,
        new: &[Transaction],
        pool: &[Transaction],
    ) -> Result<(), StoreError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut lines = String::with_capacity(new.iter().map(|t| t.body().len() + 1).sum());
        for tx in new {
            lines.push_str(tx.body());
            lines.push('\n');
        }
        self.journal
            .write_all(lines.as_bytes())
            .map_err(at(&self.journal_path))?;
        self.journal_bytes += lines.len() as u64;
        if self.journal_bytes * 2 >= self.snapshot_bytes {
            self.snapshot(pool)?;
        }
        Ok(())
    }

    /// Whether the pool file lags behind the journal.
    pub(crate) fn lagging(&self) -> bool {
        self.journal_bytes > 0
    }

    /// How long the last rewrite of the pool file took (to space rewrites out).
    pub(crate) fn last_cost(&self) -> Duration {
        self.last_cost
    }

    /// Rewrites the pool file to hold `pool` (whose first transactions it holds already)
    /// and empties the journal.
    pub(crate) fn snapshot(&mut self, pool: &[Transaction]) -> Result<(), StoreError> {
        let started = Instant::now();
        let new = pool.get(self.snapshot_count..).unwrap_or_default();
        let temporary = temporary_beside(&self.path);
        let written = match self.extend_into(&temporary, new) {
            Ok(Some(bytes)) => bytes,
            // Not what we last wrote (someone changed it): render it whole.
            Ok(None) => {
                let text = render_pool(pool);
                fs::write(&temporary, &text).map_err(at(&temporary))?;
                text.len() as u64
            }
            Err(e) => {
                let _ = fs::remove_file(&temporary);
                return Err(e);
            }
        };
        fs::rename(&temporary, &self.path).map_err(at(&self.path))?;
        // Only now is the journal redundant; a crash before this line replays it, and
        // the replayed transactions are already in the pool file: duplicates are dropped.
        self.journal.set_len(0).map_err(at(&self.journal_path))?;
        self.journal_bytes = 0;
        self.snapshot_bytes = written;
        self.snapshot_count = pool.len();
        self.last_cost = started.elapsed();
        Ok(())
    }

    /// Writes to `temporary` the current pool file less its closing `\n]`, then `new`
    /// and a new closing; `None` if the pool file is not the one we last wrote.
    fn extend_into(
        &self,
        temporary: &Path,
        new: &[Transaction],
    ) -> Result<Option<u64>, StoreError> {
        let mut old = File::open(&self.path).map_err(at(&self.path))?;
        let length = old.metadata().map_err(at(&self.path))?.len();
        if self.snapshot_count == 0 || length != self.snapshot_bytes || length < 2 {
            return Ok(None);
        }
        let mut out = File::create(temporary).map_err(at(temporary))?;
        // A file-to-file copy: the kernel moves the bytes (copy_file_range).
        let copied = io::copy(&mut (&mut old).take(length - 2), &mut out).map_err(at(temporary))?;
        let tail = render_appended(new);
        out.write_all(tail.as_bytes()).map_err(at(temporary))?;
        Ok(Some(copied + tail.len() as u64))
    }
}

/// A temporary file's name beside `path`, for a write that ends in a rename.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a
/// reader sees the old file or the new one, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temporary = temporary_beside(path);
    let mut file = File::create(&temporary).map_err(at(&temporary))?;
    file.write_all(bytes).map_err(at(&temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(at(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_core::parse_pool;

    fn tx(n: u64) -> Transaction {
        Transaction::create(Some("key"), n % 100 + 1, 1_700_000_000_000 + n)
    }

    #[test]
    fn the_pool_file_and_journal_together_always_hold_the_whole_pool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let mut store = PoolStore::open(&path, &[], None).unwrap();
        let all: Vec<_> = (0..200).map(tx).collect();
        for end in 1..=all.len() {
            store.append(&all[end - 1..end], &all[..end]).unwrap();
            let mut seen = parse_pool(&fs::read_to_string(&path).unwrap()).unwrap();
            let (journal, torn) = read_journal(&dir.path().join(JOURNAL_FILE)).unwrap();
            assert_eq!(torn, 0);
            for t in journal {
                if !seen.contains(&t) {
                    seen.push(t);
                }
            }
            assert_eq!(seen, all[..end]);
        }
    }

    #[test]
    fn rewrites_of_the_pool_file_are_amortised_over_a_burst() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let mut store = PoolStore::open(&path, &[], None).unwrap();
        let all: Vec<_> = (0..5000).map(tx).collect();
        let mut rewrites = 0;
        for end in 1..=all.len() {
            let before = store.snapshot_bytes;
            store.append(&all[end - 1..end], &all[..end]).unwrap();
            rewrites += usize::from(store.snapshot_bytes != before);
        }
        // Each rewrite at least grows the file by half: logarithmically many.
        assert!(rewrites < 40, "{rewrites} rewrites for 5000 transactions");
    }

    #[test]
    fn a_pool_file_changed_behind_the_nodes_back_is_rewritten_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let all: Vec<_> = (0..3).map(tx).collect();
        let mut store = PoolStore::open(&path, &all[..1], None).unwrap();
        fs::write(&path, "[ ]  ").unwrap();
        store.append(&all[1..], &all).unwrap();
        store.snapshot(&all).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), render_pool(&all));
    }

    #[test]
    fn a_torn_journal_line_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join(JOURNAL_FILE);
        let (a, b) = (tx(1), tx(2));
        let torn = b.body()[..20].to_owned();
        fs::write(&journal, format!("{}\n{}\n{torn}", a.body(), b.body())).unwrap();
        assert_eq!(read_journal(&journal).unwrap(), (vec![a, b], torn.len()));
    }

    #[test]
    fn a_pool_file_in_another_spacing_is_rewritten_keeping_every_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let first = tx(1);
        let spaced = format!("[ {} ]\n", first.body());
        fs::write(&path, &spaced).unwrap();
        let pool = parse_pool(&spaced).unwrap();
        PoolStore::open(&path, &pool, Some(&spaced)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), render_pool(&[first]));
    }

    #[test]
    fn a_missing_pool_file_is_created_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        PoolStore::open(&path, &[], None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "[]");
    }
}
