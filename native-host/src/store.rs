//! The pool file, `transactions.json`, kept as `JSON.stringify(pool, null, 2)` writes it.
//!
//! New transactions are appended in place: the closing `\n]` is overwritten by the new
//! entries and a new `\n]`, in one positioned write per batch. A batch costs the size of
//! its transactions, never the size of the pool.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use p2p_core::{render_appended, render_pool, Transaction};

/// The open pool file.
pub(crate) struct PoolStore {
    path: PathBuf,
    file: File,
    /// Where the closing `\n]` starts, or `None` while the file is `[]`.
    tail: Option<u64>,
}

/// Why the pool file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub(crate) struct StoreError {
    path: PathBuf,
    source: io::Error,
}

impl PoolStore {
    /// Opens the pool file holding `pool`, whose text was `text` (`None`: no file yet).
    /// A file not in canonical form (other spacing, duplicates) is rewritten once,
    /// atomically, so that appends can follow; its transactions are all kept.
    pub(crate) fn open(
        path: &Path,
        pool: &[Transaction],
        text: Option<&str>,
    ) -> Result<PoolStore, StoreError> {
        let canonical = render_pool(pool);
        if text != Some(canonical.as_str()) {
            if text.is_some() {
                log::info!(
                    "rewriting {} in canonical form ({} transactions kept)",
                    path.display(),
                    pool.len()
                );
            }
            write_atomically(path, &canonical)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| StoreError {
                path: path.to_owned(),
                source,
            })?;
        let tail = (!pool.is_empty()).then(|| canonical.len() as u64 - 2);
        Ok(PoolStore {
            path: path.to_owned(),
            file,
            tail,
        })
    }

    /// Appends `new` (transactions not yet in the file) in one write.
    pub(crate) fn append(&mut self, new: &[Transaction]) -> Result<(), StoreError> {
        if new.is_empty() {
            return Ok(());
        }
        let error = |source| StoreError {
            path: self.path.clone(),
            source,
        };
        match self.tail {
            Some(tail) => {
                let text = render_appended(new);
                self.file
                    .write_all_at(text.as_bytes(), tail)
                    .map_err(error)?;
                self.tail = Some(tail + text.len() as u64 - 2);
            }
            None => {
                // The first transactions replace `[]` as a whole file, atomically.
                let text = render_pool(new);
                write_atomically(&self.path, &text)?;
                self.file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path)
                    .map_err(error)?;
                self.tail = Some(text.len() as u64 - 2);
            }
        }
        Ok(())
    }
}

/// Writes `text` to a temporary file beside `path` and renames it over `path`, so a
/// reader sees the old file or the new one, never a mix.
fn write_atomically(path: &Path, text: &str) -> Result<(), StoreError> {
    let error = |source| StoreError {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    fs::write(&temporary, text).map_err(error)?;
    fs::rename(&temporary, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_core::parse_pool;

    fn tx(n: u64) -> Transaction {
        Transaction::create(Some("key"), n % 100 + 1, 1_700_000_000_000 + n)
    }

    #[test]
    fn appended_batches_read_back_as_the_whole_pool_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        fs::write(&path, "[]").unwrap();
        let mut store = PoolStore::open(&path, &[], Some("[]")).unwrap();
        let all: Vec<_> = (0..10).map(tx).collect();
        store.append(&all[..1]).unwrap();
        store.append(&all[1..4]).unwrap();
        store.append(&all[4..]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, render_pool(&all));
        assert_eq!(parse_pool(&text).unwrap(), all);
    }

    #[test]
    fn a_pool_file_in_another_spacing_is_rewritten_once_keeping_every_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let first = tx(1);
        let spaced = format!("[ {} ]\n", first.body());
        fs::write(&path, &spaced).unwrap();
        let pool = parse_pool(&spaced).unwrap();
        let mut store = PoolStore::open(&path, &pool, Some(&spaced)).unwrap();
        store.append(&[tx(2)]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, render_pool(&[first, tx(2)]));
    }

    #[test]
    fn a_missing_pool_file_is_created_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        PoolStore::open(&path, &[], None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "[]");
    }
}
