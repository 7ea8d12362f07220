//! The pool on disk: `transactions.json`, as `JSON.stringify(pool, null, 2)` writes it,
//! up to date within milliseconds and never seen torn, and a journal beside it that keeps
//! every stored transaction through a power loss.
//!
//! Two files, two jobs:
//!
//! - `.transactions.journal` is what keeps the pool. At start it is written anew with
//!   the whole pool (one compact JSON object a line); each batch of new transactions is
//!   then appended with one write and one fdatasync, and only then counted stored. It is
//!   never rewritten while the node runs, so a power loss keeps all of it that was synced.
//! - `transactions.json` is what people and the curriculum's checks read. It is only ever
//!   replaced whole, by writing a temporary file and renaming it over the old one, so a
//!   reader, or a restart after `kill -9` at any moment, sees the old pool or the new one,
//!   never a mix. A rewrite renders only the transactions new since the last one, into
//!   the file the last rewrite replaced (kept beside under a temporary name, and taken
//!   only when no other process holds it open and no other name leads to it), which
//!   lacks just the last rewrite's transactions: it costs O(new transactions), no memory
//!   of the pool's size, and no fsync: the journal already holds what it adds. When to
//!   rewrite is the writer thread's business (`writer.rs`).
//!
//! A power loss keeps only what was synced, and a rename or a file creation is only
//! synced with its directory, so:
//!
//! - at start the new journal is written to a temporary file, fdatasynced, renamed over
//!   the old one and the directory fsynced, all before the pool file is touched: from then
//!   on the journal alone holds the whole pool durably;
//! - an append is reported stored only after its fdatasync;
//! - the rewrites while the node runs are not synced. ext4 (`auto_da_alloc`), xfs and
//!   btrfs write a file renamed over another before the rename itself, so a power loss
//!   leaves the old pool file or the new one; a file system that does not may leave it
//!   empty or torn, and the next start rebuilds it from the journal (`folder.rs` repairs a
//!   pool file that does not parse whenever a journal is left);
//! - a clean stop writes the pool file once more, fdatasyncs it, renames it, fsyncs the
//!   directory and only then removes the journal: from then on the pool file alone is the
//!   pool, and a person may edit it while the node is stopped. A journal found at start
//!   means the node did not stop cleanly.
//!
//! The tests below run these sequences on a disk that loses power after every single
//! operation and check what a restart recovers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use p2p_core::{render_appended, Transaction};

/// The journal's file name, beside `transactions.json`.
pub(crate) const JOURNAL_FILE: &str = ".transactions.journal";

/// The file operations the store needs, behind a trait so that tests can cut the
/// sequence at any point and throw away what was not synced.
pub(crate) trait Disk {
    /// An open file.
    type File;
    /// Creates `path` empty (emptying it if it exists), for writing.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens `path` for appending, creating it if missing.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// The whole of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The length of `file`.
    fn size(&self, file: &Self::File) -> io::Result<u64>;
    /// Writes all of `bytes` at the end of `file`.
    fn write(&self, file: &mut Self::File, bytes: &[u8]) -> io::Result<()>;
    /// Writes bytes `range` of `from` (just opened) at the end of `to`; says how many it
    /// copied.
    fn copy(
        &self,
        from: &mut Self::File,
        range: Range<u64>,
        to: &mut Self::File,
    ) -> io::Result<u64>;
    /// Opens the existing file `path` for writing, if no other process holds it open
    /// and it has no other name, and keeps it so (`None` if one does, or it has, or if
    /// that cannot be known here) until the file is closed.
    fn reuse(&self, path: &Path) -> io::Result<Option<Self::File>>;
    /// Cuts `file` to its first `len` bytes; what is written next goes after them.
    fn truncate(&self, file: &mut Self::File, len: u64) -> io::Result<()>;
    /// Swaps the names `from` and `to` in one step (`Unsupported` where that cannot be
    /// done).
    fn exchange(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes `file`'s data and length durable (fdatasync), not its directory entry.
    fn sync(&self, file: &Self::File) -> io::Result<()>;
    /// Renames `from` over `to` in one step.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of directory `dir` (creations, renames) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RealDisk;

impl Disk for RealDisk {
    type File = File;

    fn create(&self, path: &Path) -> io::Result<File> {
        File::create(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<File> {
        // Append mode: every write lands at the end.
        OpenOptions::new().create(true).append(true).open(path)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn size(&self, file: &File) -> io::Result<u64> {
        Ok(file.metadata()?.len())
    }

    fn write(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }

    fn copy(&self, from: &mut File, range: Range<u64>, to: &mut File) -> io::Result<u64> {
        from.seek(SeekFrom::Start(range.start))?;
        // A file-to-file copy: the kernel moves the bytes (copy_file_range).
        io::copy(&mut from.take(range.end.saturating_sub(range.start)), to)
    }

    fn reuse(&self, path: &Path) -> io::Result<Option<File>> {
        let file = OpenOptions::new().write(true).open(path)?;
        // A file with another name (someone linked the pool file to keep it) is theirs.
        Ok((lease::hold(&file) && single_name(&file)?).then_some(file))
    }

    fn truncate(&self, file: &mut File, len: u64) -> io::Result<()> {
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len)).map(drop)
    }

    fn exchange(&self, from: &Path, to: &Path) -> io::Result<()> {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
            renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_EXCHANGE)
                .map_err(io::Error::from)
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            let _ = (from, to);
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    fn sync(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        replace_file(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
}

/// The processor time of the calling thread, where the system tells it; else the time.
enum Clock {
    Thread(Duration),
    Wall(Instant),
}

impl Clock {
    fn thread_time() -> Option<Duration> {
        #[cfg(target_os = "linux")]
        {
            use nix::time::{clock_gettime, ClockId};
            clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
                .ok()
                .map(Duration::from)
        }
        #[cfg(not(target_os = "linux"))]
        None
    }

    fn start() -> Clock {
        Clock::thread_time().map_or_else(|| Clock::Wall(Instant::now()), Clock::Thread)
    }

    fn elapsed(&self) -> Duration {
        match self {
            Clock::Thread(start) => {
                Clock::thread_time().map_or(Duration::ZERO, |now| now.saturating_sub(*start))
            }
            Clock::Wall(start) => start.elapsed(),
        }
    }
}

/// Puts the file `from` in the place of `to` in one step, as `rename` does.
///
/// On Linux, by exchanging the two names (`renameat2` with `RENAME_EXCHANGE`) and then
/// removing the old file: a plain rename over an existing file makes ext4 start writing
/// the new file to the disk at once (`auto_da_alloc`), which for a 16 MB pool file
/// rewritten several times a second means a disk kept busy (22 ms a replace against
/// 5.6 ms measured here) and journal fsyncs queued behind it. An exchange does not, and a
/// reader still sees the old file or the new one. Where the exchange is not available
/// (another system, a file system without it, no old file), a plain rename.
fn replace_file(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        if renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_EXCHANGE).is_ok() {
            // `from` now names the old file.
            return fs::remove_file(from);
        }
    }
    fs::rename(from, to)
}

/// Whether `file` has one name only.
#[cfg(unix)]
fn single_name(file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.nlink() == 1)
}

#[cfg(not(unix))]
fn single_name(_file: &File) -> io::Result<bool> {
    Ok(false)
}

/// Whether another process holds a file open, asked of the kernel.
mod lease {
    use std::fs::File;

    /// Takes a write lease on `file` (`fcntl(F_SETLEASE, F_WRLCK)`), which the kernel
    /// grants only while no other open file holds the same file: says whether it did. Until
    /// `file` is closed, another process that opens the file waits (at most
    /// `/proc/sys/fs/lease-break-time`), so it never sees what is written meanwhile.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub(super) fn hold(file: &File) -> bool {
        use nix::sys::signal::{signal, SigHandler, Signal};
        use std::os::fd::AsRawFd;
        use std::sync::OnceLock;
        // The kernel tells a lease's holder that another process opens the file with
        // SIGIO, whose default ends the process: ignored, the other process just waits
        // for our close. Nothing of ours uses SIGIO.
        static SIGIO_IGNORED: OnceLock<bool> = OnceLock::new();
        // SAFETY: installs no handler, only the disposition "ignore".
        let ignored = SIGIO_IGNORED
            .get_or_init(|| unsafe { signal(Signal::SIGIO, SigHandler::SigIgn) }.is_ok());
        if !ignored {
            return false;
        }
        // SAFETY: `fcntl` with integer arguments only, on a descriptor that `file` owns
        // and keeps open across the call; no memory is shared with the kernel.
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) == 0 }
    }

    /// Elsewhere no lease is asked: the file is never known free.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn hold(_file: &File) -> bool {
        false
    }
}

/// The pool file before the last rewrite, kept under the temporary name (see
/// [`PoolStore::rewrite`]): what we wrote there.
#[derive(Debug, Clone, Copy)]
struct Spare {
    bytes: u64,
    count: usize,
}

/// The pool file and its journal, open.
pub(crate) struct PoolStore<D: Disk = RealDisk> {
    disk: D,
    path: PathBuf,
    journal_path: PathBuf,
    journal: D::File,
    /// Size of the pool file as last written.
    file_bytes: u64,
    /// Transactions in the pool file as last written (the first ones of the pool).
    file_count: usize,
    /// Transactions in the journal (the first ones of the pool).
    journal_count: usize,
    /// The processor time the last rewrite of the pool file took.
    last_cost: Duration,
    /// The pool file before the last rewrite, if it is kept for the next one.
    spare: Option<Spare>,
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

/// Transactions in a journal left by a node that did not stop cleanly (a crash, a kill,
/// a power loss), in order; a torn last line is skipped. Also says how many bytes of torn
/// tail were dropped. A missing journal holds nothing.
pub(crate) fn read_journal(path: &Path) -> Result<(Vec<Transaction>, usize), StoreError> {
    read_journal_on(&RealDisk, path)
}

/// Whether the node of folder `dir` left a journal: it did not stop cleanly (or runs),
/// and the journal holds its whole pool (see the module doc).
pub(crate) fn journal_left(dir: &Path) -> bool {
    dir.join(JOURNAL_FILE).exists()
}

fn read_journal_on<D: Disk>(
    disk: &D,
    path: &Path,
) -> Result<(Vec<Transaction>, usize), StoreError> {
    let text = match disk.read(path) {
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

/// The journal's lines for `transactions`.
fn journal_lines(transactions: &[Transaction]) -> String {
    let size = transactions.iter().map(|t| t.body().len() + 1).sum();
    let mut lines = String::with_capacity(size);
    for tx in transactions {
        lines.push_str(tx.body());
        lines.push('\n');
    }
    lines
}

/// Transactions rendered at a time, for the journal or the pool file: about 300 KB of
/// text, so a write never holds a copy of the pool's size, and what the writer thread's
/// heap keeps of its largest rendering stays small (4,096 at a time kept 1.2-1.5 MB of
/// it resident in every node).
const CHUNK: usize = 1024;

/// The journal's lines for `pool`, [`CHUNK`] transactions at a time (not one copy of
/// the whole pool).
fn journal_chunks(pool: &[Transaction]) -> impl Iterator<Item = String> + '_ {
    pool.chunks(CHUNK).map(journal_lines)
}

impl PoolStore {
    /// Opens the store of `dir`'s pool file, which now must hold `pool` (the file's
    /// transactions plus any recovered from the journal); `current`: its text is already
    /// exactly what `render_pool` makes of `pool` (see `is_rendered_pool`). Once this
    /// returns, all of `pool` is durable in the journal, and the pool file holds it, in
    /// canonical form.
    pub(crate) fn open(
        path: &Path,
        pool: &[Transaction],
        current: bool,
    ) -> Result<PoolStore, StoreError> {
        remove_stale_temporaries(path);
        PoolStore::open_on(RealDisk, path, pool, current)
    }
}

/// Removes the temporary files beside `path` (`.transactions.json.<process>.tmp`) that
/// nodes no longer running left: a node keeps one while it runs (the pool file it last
/// replaced, see [`PoolStore::rewrite`]) and removes it when it stops cleanly, not when
/// it is killed. Where it cannot be known whether a process runs, none is removed.
fn remove_stale_temporaries(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let dir = folder_of(path);
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let process = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = process {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                match fs::remove_file(entry.path()) {
                    Ok(()) => log::info!(
                        "removed {}, left by a node that was stopped",
                        entry.path().display()
                    ),
                    Err(e) => log::warn!("cannot remove {}: {e}", entry.path().display()),
                }
            }
        }
    }
}

impl<D: Disk> PoolStore<D> {
    /// [`PoolStore::open`] on `disk`.
    fn open_on(
        disk: D,
        path: &Path,
        pool: &[Transaction],
        current: bool,
    ) -> Result<PoolStore<D>, StoreError> {
        let journal_path = path.with_file_name(JOURNAL_FILE);
        // The journal anew, whole and durable, before the pool file is touched: a power
        // loss from here on finds every transaction of `pool` in it.
        replace_with(&disk, &journal_path, true, |out| {
            let mut written = 0;
            for chunk in journal_chunks(pool) {
                disk.write(out, chunk.as_bytes())?;
                written += chunk.len() as u64;
            }
            Ok(written)
        })?;
        let journal = disk.open_append(&journal_path).map_err(at(&journal_path))?;
        let file_bytes = if current {
            let file = disk.open(path).map_err(at(path))?;
            disk.size(&file).map_err(at(path))?
        } else {
            if disk.open(path).is_ok() {
                log::info!(
                    "writing {} in canonical form ({} transactions)",
                    path.display(),
                    pool.len()
                );
            }
            replace_with(&disk, path, false, |out| {
                write_rendered(&disk, out, 0, pool.chunks(CHUNK))
            })?
        };
        Ok(PoolStore {
            disk,
            path: path.to_owned(),
            journal_path,
            journal,
            file_bytes,
            file_count: pool.len(),
            journal_count: pool.len(),
            last_cost: Duration::ZERO,
            spare: None,
        })
    }

    /// Records `new` (just added to the end of the pool) in the journal.
    ///
    /// When this returns `Ok`, `new` is stored: durable, a power loss keeps it. That
    /// costs one fdatasync for the whole batch, so callers batch. The lines are written
    /// [`CHUNK`] at a time: a batch can be a whole burst that queued behind a
    /// rewrite (50,000 transactions, 15 MB rendered at once, measured as a receiving
    /// node's peak memory).
    pub(crate) fn append(&mut self, new: &[Transaction]) -> Result<(), StoreError> {
        if new.is_empty() {
            return Ok(());
        }
        for lines in journal_chunks(new) {
            self.disk
                .write(&mut self.journal, lines.as_bytes())
                .map_err(at(&self.journal_path))?;
        }
        self.disk
            .sync(&self.journal)
            .map_err(at(&self.journal_path))?;
        self.journal_count += new.len();
        Ok(())
    }

    /// Transactions in the pool file as last written (the first ones of the pool).
    pub(crate) fn filed(&self) -> usize {
        self.file_count
    }

    /// The processor time the last rewrite of the pool file took (to space rewrites
    /// out): the writer thread's own time, in the kernel's copy too, not the time it
    /// waited for a processor, which on a machine shared by many nodes is most of it.
    pub(crate) fn last_cost(&self) -> Duration {
        self.last_cost
    }

    /// Replaces the pool file with one that also holds `new`, the transactions of the
    /// pool after those it holds. Not synced: the journal holds all of the pool that was
    /// reported stored.
    ///
    /// The new file is written beside the old one under a temporary name and the two names
    /// are exchanged, so a reader sees the old file or the new one. The old file then
    /// stays under the temporary name, and the next rewrite writes into it instead of a
    /// new file, when no other process holds it open (a reader that opened it as the pool
    /// file) and it has no other name (see [`Disk::reuse`]): it already holds all but the
    /// last rewrite's transactions, so only those and `new` are written, not the whole
    /// pool (16 MB at 50,000 pooled), and no file is made and removed per rewrite.
    pub(crate) fn rewrite(&mut self, new: &[Transaction]) -> Result<(), StoreError> {
        let started = Clock::start();
        let temporary = temporary_beside(&self.path);
        let spare = self.spare.take();
        let reused = match spare {
            Some(spare) => self
                .disk
                .reuse(&temporary)
                .ok()
                .flatten()
                .map(|f| (f, spare)),
            None => None,
        };
        let filled = match reused {
            Some((mut out, spare)) => {
                // It holds what it held when it was the pool file, the start of this one
                // (unless someone changed it).
                let ours = self.disk.size(&out).is_ok_and(|size| size == spare.bytes);
                let kept = if spare.count == 0 || !ours {
                    0
                } else {
                    spare.bytes - 2
                };
                self.disk
                    .truncate(&mut out, kept)
                    .and_then(|()| self.write_pool(&mut out, kept, new))
            }
            None => {
                if spare.is_some() {
                    let _ = self.disk.remove(&temporary);
                }
                self.disk
                    .create(&temporary)
                    .and_then(|mut out| self.write_pool(&mut out, 0, new))
            }
        };
        let (written, extended) = match filled {
            Ok(filled) => filled,
            Err(source) => {
                let _ = self.disk.remove(&temporary);
                return Err(at(&temporary)(source));
            }
        };
        let old = Spare {
            bytes: self.file_bytes,
            count: self.file_count,
        };
        if self.disk.exchange(&temporary, &self.path).is_ok() {
            if extended {
                self.spare = Some(old);
            } else {
                // The old file was not ours: nothing in it to build on.
                let _ = self.disk.remove(&temporary);
            }
        } else {
            self.disk
                .rename(&temporary, &self.path)
                .map_err(at(&self.path))?;
        }
        self.file_bytes = written;
        self.file_count += new.len();
        self.last_cost = started.elapsed();
        Ok(())
    }

    /// The clean stop: makes the pool file hold the whole pool (`new`: the transactions
    /// after those it holds) durably, then removes the journal, so that the pool file
    /// alone is the pool until the next start.
    pub(crate) fn close(&mut self, new: &[Transaction]) -> Result<(), StoreError> {
        if self.spare.take().is_some() {
            // A reader may hold it: a new file is written instead.
            let temporary = temporary_beside(&self.path);
            self.disk.remove(&temporary).map_err(at(&temporary))?;
        }
        let written = replace_with(&self.disk, &self.path, true, |out| {
            self.write_pool(out, 0, new).map(|(bytes, _)| bytes)
        })?;
        // Only now, with the pool file durable, is the journal redundant. Were it removed
        // before, a power loss could keep the old pool file without the journal. Its
        // removal need not be durable: a journal that comes back holds only transactions
        // the pool file has, and says no more than that the node did not stop cleanly.
        self.disk
            .remove(&self.journal_path)
            .map_err(at(&self.journal_path))?;
        self.file_bytes = written;
        self.file_count += new.len();
        Ok(())
    }

    /// Writes to `out`, which holds the first `kept` bytes of the pool file as we last
    /// wrote it, the pool file's transactions and `new`; says how many bytes `out` holds
    /// then, and whether the pool file was the one we last wrote.
    fn write_pool(
        &self,
        out: &mut D::File,
        kept: u64,
        new: &[Transaction],
    ) -> io::Result<(u64, bool)> {
        if let Some(bytes) = self.extend_into(out, kept, new)? {
            return Ok((bytes, true));
        }
        // Not what we last wrote (someone changed it): render it whole, from the journal
        // (the pool up to `journal_count`) and what it lacks of `new`.
        debug_assert!(self.journal_count >= self.file_count);
        self.disk.truncate(out, 0)?;
        let (journaled, _) =
            read_journal_on(&self.disk, &self.journal_path).map_err(|e| e.source)?;
        let missing = new
            .get(self.journal_count.saturating_sub(self.file_count)..)
            .unwrap_or_default();
        write_rendered(
            &self.disk,
            out,
            0,
            journaled.chunks(CHUNK).chain(missing.chunks(CHUNK)),
        )
        .map(|bytes| (bytes, false))
    }

    /// Writes to `out` (which holds its first `kept` bytes) the rest of the current pool
    /// file less its closing `\n]`, then `new` and a new closing; `None` if the pool file
    /// is not the one we last wrote.
    fn extend_into(
        &self,
        out: &mut D::File,
        kept: u64,
        new: &[Transaction],
    ) -> io::Result<Option<u64>> {
        let mut old = match self.disk.open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let length = self.disk.size(&old)?;
        if length != self.file_bytes || length < 2 {
            return Ok(None);
        }
        // Our own `[]` has nothing to copy.
        let opened = if self.file_count == 0 {
            0
        } else {
            let copied = self.disk.copy(&mut old, kept..length - 2, out)?;
            if kept + copied != length - 2 {
                // Cut short while we copied: not ours either.
                return Ok(None);
            }
            length - 2
        };
        write_rendered(&self.disk, out, opened, new.chunks(CHUNK)).map(Some)
    }
}

/// Writes to `out` the pool file of the transactions in `chunks`, rendered a chunk at
/// a time (never a copy of the pool's size), after the `opened` bytes already written: a
/// pool file of at least one transaction less its closing `\n]` (0: nothing yet). Says
/// how many bytes `out` holds then.
fn write_rendered<'a, D: Disk>(
    disk: &D,
    out: &mut D::File,
    opened: u64,
    chunks: impl Iterator<Item = &'a [Transaction]>,
) -> io::Result<u64> {
    let mut written = opened;
    for chunk in chunks.filter(|c| !c.is_empty()) {
        // `,\n  tx,\n  tx\n]`: the first chunk opens the array instead of the comma.
        let text = render_appended(chunk);
        let text = &text[..text.len() - 2];
        let text = if written == 0 {
            disk.write(out, b"[")?;
            written += 1;
            &text[1..]
        } else {
            text
        };
        disk.write(out, text.as_bytes())?;
        written += text.len() as u64;
    }
    let closing: &[u8] = if written == 0 { b"[]" } else { b"\n]" };
    disk.write(out, closing)?;
    Ok(written + closing.len() as u64)
}

/// A temporary file's name beside `path`, for a write that ends in a rename.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// The folder `path` stands in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes the directory entry of `path` durable.
fn sync_dir_of<D: Disk>(disk: &D, path: &Path) -> Result<(), StoreError> {
    let dir = folder_of(path);
    disk.sync_dir(dir).map_err(at(dir))
}

/// Puts the file that `fill` writes in the place of `path` in one step: written to a
/// temporary file beside it (removed if anything fails), then renamed over it, so a
/// reader sees the old file or the new one, never a mix. With `durable`, so does a
/// restart after a power loss: the data is synced before the rename, and the rename
/// before returning. Says how many bytes `fill` wrote.
fn replace_with<D: Disk>(
    disk: &D,
    path: &Path,
    durable: bool,
    fill: impl FnOnce(&mut D::File) -> io::Result<u64>,
) -> Result<u64, StoreError> {
    let temporary = temporary_beside(path);
    let written = disk.create(&temporary).and_then(|mut out| {
        let written = fill(&mut out)?;
        if durable {
            disk.sync(&out)?;
        }
        Ok(written)
    });
    let written = match written {
        Ok(bytes) => bytes,
        Err(source) => {
            let _ = disk.remove(&temporary);
            return Err(at(&temporary)(source));
        }
    };
    disk.rename(&temporary, path).map_err(at(path))?;
    if durable {
        sync_dir_of(disk, path)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_core::{is_rendered_pool, parse_pool, render_pool};

    fn tx(n: u64) -> Transaction {
        Transaction::create(Some("key"), n % 100 + 1, 1_700_000_000_000 + n)
    }

    #[test]
    fn the_journal_holds_the_whole_pool_and_the_pool_file_a_whole_prefix_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let all: Vec<_> = (0..200).map(tx).collect();
        let mut store = PoolStore::open(&path, &all[..3], false).unwrap();
        let mut filed = 3;
        for end in 4..=all.len() {
            store.append(&all[end - 1..end]).unwrap();
            if end % 7 == 0 {
                store.rewrite(&all[filed..end]).unwrap();
                filed = end;
            }
            let (journal, torn) = read_journal(&dir.path().join(JOURNAL_FILE)).unwrap();
            assert_eq!((journal.as_slice(), torn), (&all[..end], 0));
            let text = fs::read_to_string(&path).unwrap();
            let filed = parse_pool(&text).unwrap();
            assert_eq!(text, render_pool(&filed), "the pool file in canonical form");
            assert_eq!(filed, all[..(end / 7 * 7).max(3)]);
        }
        store.close(&all[filed..]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), render_pool(&all));
        assert!(!dir.path().join(JOURNAL_FILE).exists());
    }

    #[test]
    fn a_pool_file_changed_behind_the_nodes_back_is_rewritten_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let all: Vec<_> = (0..5).map(tx).collect();
        let mut store = PoolStore::open(&path, &all[..1], false).unwrap();
        fs::write(&path, "[ ]  ").unwrap();
        // The new transactions, the first journaled already, the second not yet: the
        // pool is rebuilt from the journal and them.
        store.append(&all[1..2]).unwrap();
        store.rewrite(&all[1..3]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), render_pool(&all[..3]));
        store.append(&all[2..3]).unwrap();
        fs::remove_file(&path).unwrap();
        store.append(&all[3..5]).unwrap();
        store.rewrite(&all[3..5]).unwrap();
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
        PoolStore::open(&path, &pool, is_rendered_pool(&spaced, &pool)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), render_pool(&[first]));
    }

    #[test]
    fn a_file_replaced_holds_the_new_bytes_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known-peers.json");
        fs::write(&path, "old").unwrap();
        replace_with(&RealDisk, &path, true, |out| {
            RealDisk.write(out, b"new").map(|()| 3)
        })
        .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Appends to the journal and rewrites into the pool file at `path` what `pool` has
    /// beyond what the file holds, and checks the file then holds `pool`.
    fn grow_to(store: &mut PoolStore, pool: &[Transaction], path: &Path) {
        let new = &pool[store.filed()..];
        store.append(new).unwrap();
        store.rewrite(new).unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), render_pool(pool));
    }

    fn assert_only_the_pool_file_left(dir: &Path) {
        let names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["transactions.json"]);
    }

    /// The inode of the file at `path`.
    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).unwrap().ino()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn each_rewrite_writes_into_the_pool_file_the_last_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let all: Vec<_> = (0..60).map(tx).collect();
        let mut store = PoolStore::open(&path, &all[..1], false).unwrap();
        let mut inodes = Vec::new();
        for end in (2..=all.len()).step_by(3) {
            grow_to(&mut store, &all[..end], &path);
            inodes.push(inode(&path));
        }
        // Two files in turn: the pool file and the one it replaced, kept beside it.
        assert_ne!(inodes[0], inodes[1]);
        for pair in inodes.windows(3) {
            assert_eq!(pair[0], pair[2], "{inodes:?}");
        }
        assert!(temporary_beside(&path).exists());
        store.close(&[]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), render_pool(&all[..59]));
        assert_only_the_pool_file_left(dir.path());
    }

    #[test]
    fn a_reader_holding_an_old_pool_file_reads_it_whole_while_rewrites_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let all: Vec<_> = (0..10).map(tx).collect();
        let mut store = PoolStore::open(&path, &all[..2], false).unwrap();
        // A reader opens the pool file and reads slowly, while the node rewrites it
        // (into a new file, then into that one's predecessor) twice.
        let mut reader = File::open(&path).unwrap();
        let seen = render_pool(&all[..2]);
        for end in [4, 6, 8] {
            grow_to(&mut store, &all[..end], &path);
        }
        let mut read = String::new();
        reader.read_to_string(&mut read).unwrap();
        assert_eq!(read, seen);
        store.close(&[]).unwrap();
        assert_only_the_pool_file_left(dir.path());
    }

    #[test]
    fn a_pool_file_linked_under_another_name_is_never_written_into() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        let kept = dir.path().join("kept.json");
        let all: Vec<_> = (0..10).map(tx).collect();
        let mut store = PoolStore::open(&path, &all[..2], false).unwrap();
        fs::hard_link(&path, &kept).unwrap();
        for end in [4, 6, 8] {
            grow_to(&mut store, &all[..end], &path);
        }
        assert_eq!(fs::read_to_string(&kept).unwrap(), render_pool(&all[..2]));
    }

    #[test]
    fn temporary_files_of_nodes_no_longer_running_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        // No process has a number this large (Linux counts to 2^22 at most).
        let stale = dir.path().join(".transactions.json.999999999.tmp");
        let other = dir.path().join(".transactions.json.notes.tmp");
        for file in [&stale, &other] {
            fs::write(file, "[]").unwrap();
        }
        let store = PoolStore::open(&path, &[], false).unwrap();
        assert!(!stale.exists());
        assert!(other.exists());
        drop(store);
    }

    #[test]
    fn a_missing_pool_file_is_created_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.json");
        PoolStore::open(&path, &[], false).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "[]");
    }
}

#[cfg(test)]
mod fake {
    //! A disk in memory that loses power on cue, and keeps of each file and of the
    //! directory only what a real one may keep.

    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::io;
    use std::ops::Range;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;

    use super::Disk;

    /// One file's bytes: as processes see them and as synced to the disk.
    #[derive(Debug, Clone, Default)]
    struct Inode {
        data: Vec<u8>,
        durable: Vec<u8>,
        syncs: usize,
    }

    /// Names to inodes: one directory is all the store uses.
    type Names = BTreeMap<PathBuf, usize>;

    #[derive(Debug, Clone, Default)]
    struct Model {
        inodes: Vec<Inode>,
        /// The directory as processes see it.
        names: Names,
        /// The directory as of its last sync.
        durable_names: Names,
        /// The directory after each change since its last sync: a file system may keep
        /// any prefix of them (ext4 and xfs log metadata in order).
        unsynced_names: Vec<Names>,
        /// Operations that changed something, so far.
        steps: usize,
        /// The power goes after this many steps.
        cut: Option<usize>,
        dir_syncs: usize,
        /// A disk that lies: syncs of files do nothing (to show the tests would notice).
        ignore_syncs: bool,
        /// A disk that lies about directory syncs.
        ignore_dir_syncs: bool,
    }

    /// What the disk may hold of one file after a power loss.
    fn outcomes(inode: &Inode) -> Vec<Vec<u8>> {
        let (data, durable) = (&inode.data, &inode.durable);
        let mut all = vec![durable.clone(), data.clone()];
        // Unsynced appends: a prefix of them reached the disk (a torn write), or the
        // new length did but not the bytes (xfs shows zeros).
        let base = if data.starts_with(durable) {
            durable.len()
        } else {
            0
        };
        let extra = &data[base..];
        all.push(data[..base + extra.len() / 2].to_vec());
        if let Some(line) = extra.iter().position(|&b| b == b'\n') {
            all.push(data[..base + line + 1].to_vec());
        }
        let mut zeroed = data[..base].to_vec();
        zeroed.resize(data.len(), 0);
        all.push(zeroed);
        all.sort();
        all.dedup();
        all
    }

    /// The disk; clones share it.
    #[derive(Debug, Clone, Default)]
    pub(super) struct FakeDisk(Rc<RefCell<Model>>);

    fn power_off() -> io::Error {
        io::Error::other("the power is off")
    }

    fn not_found(path: &Path) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
    }

    impl FakeDisk {
        /// A disk holding `files`, all durable.
        pub(super) fn holding(files: &[(&Path, &[u8])]) -> FakeDisk {
            let disk = FakeDisk::default();
            {
                let mut m = disk.0.borrow_mut();
                for (path, bytes) in files {
                    m.inodes.push(Inode {
                        data: bytes.to_vec(),
                        durable: bytes.to_vec(),
                        syncs: 0,
                    });
                    let id = m.inodes.len() - 1;
                    m.names.insert(path.to_path_buf(), id);
                }
                m.durable_names = m.names.clone();
            }
            disk
        }

        /// A disk whose file syncs, or directory syncs, do nothing.
        pub(super) fn lying(files: &[(&Path, &[u8])], syncs: bool, dir_syncs: bool) -> Self {
            let disk = FakeDisk::holding(files);
            disk.0.borrow_mut().ignore_syncs = syncs;
            disk.0.borrow_mut().ignore_dir_syncs = dir_syncs;
            disk
        }

        /// Cuts the power after `steps` more operations that change something.
        pub(super) fn cut_after(&self, steps: usize) {
            let mut m = self.0.borrow_mut();
            m.cut = Some(m.steps + steps);
        }

        /// The power back on: operations work again (as after `kill -9`, nothing is lost).
        pub(super) fn restore(&self) {
            self.0.borrow_mut().cut = None;
        }

        /// Operations so far that changed something.
        pub(super) fn steps(&self) -> usize {
            self.0.borrow().steps
        }

        /// Syncs of the file named `path`, and of the directory.
        pub(super) fn syncs(&self, path: &Path) -> (usize, usize) {
            let m = self.0.borrow();
            let file = m.names.get(path).map_or(0, |&id| m.inodes[id].syncs);
            (file, m.dir_syncs)
        }

        /// Syncs of any file.
        pub(super) fn file_syncs(&self) -> usize {
            self.0.borrow().inodes.iter().map(|i| i.syncs).sum()
        }

        /// An independent copy of the disk as it is now.
        pub(super) fn duplicate(&self) -> FakeDisk {
            FakeDisk(Rc::new(RefCell::new(self.0.borrow().clone())))
        }

        /// Every disk a power loss now may leave, from keeping only what was synced to
        /// keeping everything: any prefix of the directory's unsynced changes, and for
        /// each file of `watched` (the others keep what was synced) any of its
        /// `outcomes`.
        pub(super) fn after_power_loss(&self, watched: &[&Path]) -> Vec<FakeDisk> {
            let m = self.0.borrow();
            let mut disks = Vec::new();
            let directories = std::iter::once(&m.durable_names).chain(&m.unsynced_names);
            for names in directories {
                // Every combination of what each named file kept.
                let mut kept: Vec<Vec<(PathBuf, Vec<u8>)>> = vec![Vec::new()];
                for (path, &id) in names {
                    let inode = &m.inodes[id];
                    let options = if watched.contains(&path.as_path()) {
                        outcomes(inode)
                    } else {
                        vec![inode.durable.clone()]
                    };
                    kept = kept
                        .into_iter()
                        .flat_map(|files| {
                            options.iter().map(move |bytes| {
                                let mut files = files.clone();
                                files.push((path.clone(), bytes.clone()));
                                files
                            })
                        })
                        .collect();
                }
                for files in kept {
                    let files: Vec<(&Path, &[u8])> = files
                        .iter()
                        .map(|(p, b)| (p.as_path(), b.as_slice()))
                        .collect();
                    disks.push(FakeDisk::holding(&files));
                }
            }
            disks
        }

        /// The disk after a power loss that kept exactly what was synced.
        pub(super) fn after_strict_power_loss(&self) -> FakeDisk {
            let m = self.0.borrow();
            let files: Vec<(&Path, &[u8])> = m
                .durable_names
                .iter()
                .map(|(p, &id)| (p.as_path(), m.inodes[id].durable.as_slice()))
                .collect();
            FakeDisk::holding(&files)
        }

        /// Counts a step that changes something, unless the power is off.
        fn step(&self) -> io::Result<std::cell::RefMut<'_, Model>> {
            let mut m = self.0.borrow_mut();
            if m.cut.is_some_and(|cut| m.steps >= cut) {
                return Err(power_off());
            }
            m.steps += 1;
            Ok(m)
        }

        /// The model, for a read: reads change nothing, so the power cut spares them.
        fn look(&self) -> std::cell::Ref<'_, Model> {
            self.0.borrow()
        }
    }

    impl Model {
        fn name(&mut self, path: &Path) -> usize {
            if let Some(&id) = self.names.get(path) {
                return id;
            }
            self.inodes.push(Inode::default());
            let id = self.inodes.len() - 1;
            self.names.insert(path.to_owned(), id);
            self.changed_names();
            id
        }

        fn changed_names(&mut self) {
            let names = self.names.clone();
            self.unsynced_names.push(names);
        }
    }

    impl Disk for FakeDisk {
        /// The inode.
        type File = usize;

        fn create(&self, path: &Path) -> io::Result<usize> {
            let mut m = self.step()?;
            let id = m.name(path);
            m.inodes[id].data.clear();
            Ok(id)
        }

        fn open_append(&self, path: &Path) -> io::Result<usize> {
            Ok(self.step()?.name(path))
        }

        fn open(&self, path: &Path) -> io::Result<usize> {
            let m = self.look();
            m.names.get(path).copied().ok_or_else(|| not_found(path))
        }

        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            let m = self.look();
            let id = m.names.get(path).ok_or_else(|| not_found(path))?;
            Ok(m.inodes[*id].data.clone())
        }

        fn size(&self, file: &usize) -> io::Result<u64> {
            Ok(self.look().inodes[*file].data.len() as u64)
        }

        fn write(&self, file: &mut usize, bytes: &[u8]) -> io::Result<()> {
            self.step()?.inodes[*file].data.extend_from_slice(bytes);
            Ok(())
        }

        fn copy(&self, from: &mut usize, range: Range<u64>, to: &mut usize) -> io::Result<u64> {
            let mut m = self.step()?;
            let source = &m.inodes[*from].data;
            let end = source.len().min(range.end as usize);
            let bytes = source[(range.start as usize).min(end)..end].to_vec();
            m.inodes[*to].data.extend_from_slice(&bytes);
            Ok(bytes.len() as u64)
        }

        /// No other process here: always free (the real disk's refusal is tested on it).
        fn reuse(&self, path: &Path) -> io::Result<Option<usize>> {
            let m = self.step()?;
            m.names
                .get(path)
                .map(|&id| Some(id))
                .ok_or_else(|| not_found(path))
        }

        fn truncate(&self, file: &mut usize, len: u64) -> io::Result<()> {
            self.step()?.inodes[*file].data.truncate(len as usize);
            Ok(())
        }

        fn exchange(&self, from: &Path, to: &Path) -> io::Result<()> {
            let mut m = self.step()?;
            let a = m.names.get(from).copied().ok_or_else(|| not_found(from))?;
            let b = m.names.get(to).copied().ok_or_else(|| not_found(to))?;
            m.names.insert(from.to_owned(), b);
            m.names.insert(to.to_owned(), a);
            m.changed_names();
            Ok(())
        }

        fn sync(&self, file: &usize) -> io::Result<()> {
            let mut m = self.step()?;
            if !m.ignore_syncs {
                let inode = &mut m.inodes[*file];
                inode.durable = inode.data.clone();
            }
            m.inodes[*file].syncs += 1;
            Ok(())
        }

        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            let mut m = self.step()?;
            let id = m.names.remove(from).ok_or_else(|| not_found(from))?;
            m.names.insert(to.to_owned(), id);
            m.changed_names();
            Ok(())
        }

        fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
            let mut m = self.step()?;
            if !m.ignore_dir_syncs {
                m.durable_names = m.names.clone();
                m.unsynced_names.clear();
            }
            m.dir_syncs += 1;
            Ok(())
        }

        fn remove(&self, path: &Path) -> io::Result<()> {
            let mut m = self.step()?;
            m.names.remove(path).ok_or_else(|| not_found(path))?;
            m.changed_names();
            Ok(())
        }
    }
}

#[cfg(test)]
mod power_loss {
    //! The store's promises, checked after a power loss at every point of a node's life:
    //! every transaction `append` reported stored is in the journal or the pool file;
    //! `transactions.json` is a whole pool we wrote (the old or the new) or, only while a
    //! journal is left to rebuild it from, what a file system that writes a renamed file
    //! after its rename may leave; and a node restarted on what is left works on.

    use std::path::{Path, PathBuf};

    use p2p_core::{is_rendered_pool, parse_pool, render_pool, Transaction};

    use super::fake::FakeDisk;
    use super::{read_journal_on, Disk, PoolStore, JOURNAL_FILE};
    use crate::folder::salvage_pool;

    fn tx(n: u64) -> Transaction {
        Transaction::create(Some("key"), n % 100 + 1, 1_700_000_000_000 + n)
    }

    fn pool_path() -> PathBuf {
        PathBuf::from("/node/transactions.json")
    }

    fn journal_path() -> PathBuf {
        PathBuf::from("/node").join(JOURNAL_FILE)
    }

    /// What a node's life does after it has opened its store.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Makes the next `n` transactions and appends them as one batch.
        Append(usize),
        /// Brings the pool file up to date (not synced), as the writer does when due.
        Rewrite,
        /// Makes the next `n` transactions, puts them in the pool file, then appends
        /// them to the journal: what the writer does with a batch that finds the file due.
        RewriteThenAppend(usize),
        /// The clean stop: the pool file up to date and durable, the journal removed.
        Close,
    }

    /// A life with small and large batches, rewrites after one batch and after several,
    /// and a clean stop.
    const LIFE: &[Step] = &[
        Step::Append(1),
        Step::Rewrite,
        Step::RewriteThenAppend(2),
        Step::Append(3),
        Step::Append(10),
        Step::Append(1),
        Step::Rewrite,
        Step::Append(5),
        Step::Append(2),
        Step::Rewrite,
        Step::Append(40),
        Step::Append(1),
        Step::Close,
    ];

    /// A shorter life, for a node restarted after another was killed.
    const AFTER_RESTART: &[Step] = &[Step::RewriteThenAppend(2), Step::Append(1), Step::Close];

    /// Where a scenario starts from, and what it may find.
    struct Scenario {
        /// Every transaction, in the order made: those on the disk at the start first.
        all: Vec<Transaction>,
        /// The files at the start, all durable.
        files: Vec<(PathBuf, Vec<u8>)>,
    }

    impl Scenario {
        fn disk(&self) -> FakeDisk {
            FakeDisk::holding(&self.borrowed())
        }

        fn borrowed(&self) -> Vec<(&Path, &[u8])> {
            self.files
                .iter()
                .map(|(p, b)| (p.as_path(), b.as_slice()))
                .collect()
        }

        /// The pool file's text at the start, which may be in any spacing.
        fn first_text(&self) -> Option<&[u8]> {
            self.files
                .iter()
                .find(|(p, _)| *p == pool_path())
                .map(|(_, b)| b.as_slice())
        }
    }

    /// A node folder never used.
    fn fresh() -> Scenario {
        Scenario {
            all: (0..100).map(tx).collect(),
            files: Vec::new(),
        }
    }

    /// A node folder with a pool file in `spacing`, and a journal holding `duplicates`
    /// transactions of the pool file, then `fresh` new ones and a torn line.
    fn used(spaced: bool, duplicates: usize, fresh: usize) -> Scenario {
        let all: Vec<_> = (0..150).map(tx).collect();
        let filed = &all[..20];
        let text = if spaced {
            format!(
                "[{}]\n",
                filed
                    .iter()
                    .map(|t| t.body())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            render_pool(filed)
        };
        let mut journal = String::new();
        for t in all[20 - duplicates..20 + fresh].iter() {
            journal.push_str(t.body());
            journal.push('\n');
        }
        journal.push_str(&all[20 + fresh].body()[..30]);
        Scenario {
            all,
            files: vec![
                (pool_path(), text.into_bytes()),
                (journal_path(), journal.into_bytes()),
            ],
        }
    }

    /// A node folder cloned from one with a pool file: no journal yet.
    fn cloned() -> Scenario {
        let mut scenario = used(false, 0, 0);
        scenario.files.retain(|(path, _)| *path == pool_path());
        scenario
    }

    /// What a restart finds.
    struct Found {
        /// The pool file's transactions, then the journal's new ones.
        pool: Vec<Transaction>,
        /// The pool file's text.
        text: Option<String>,
    }

    /// Reads `disk` as the host does at start (the pool file parsed, or repaired if it
    /// does not parse and a journal is left; the journal replayed, duplicates dropped as
    /// `Node::new` drops them), and checks the promises: the first `stored` of `all` were
    /// reported stored.
    fn recover(disk: &FakeDisk, scenario: &Scenario, stored: usize) -> Result<Found, String> {
        let all = &scenario.all;
        let (journal, _torn) = read_journal_on(disk, &journal_path()).map_err(|e| e.to_string())?;
        let journal_left = disk.read(&journal_path()).is_ok();
        let (mut pool, text) = match disk.read(&pool_path()) {
            Err(_) => (Vec::new(), None),
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                match parse_pool(&text) {
                    Ok(pool) => {
                        let whole = text == render_pool(&pool)
                            || Some(bytes.as_slice()) == scenario.first_text();
                        if !whole || all.get(..pool.len()) != Some(&pool[..]) {
                            return Err(format!("pool file is no pool we wrote: {text:?}"));
                        }
                        (pool, Some(text))
                    }
                    // A rename kept without its data: the journal holds the pool.
                    Err(_) if journal_left => (salvage_pool(&text), None),
                    Err(e) => return Err(format!("pool file torn ({e}): {text:?}")),
                }
            }
        };
        for t in journal {
            if !pool.contains(&t) {
                pool.push(t);
            }
        }
        if all.get(..pool.len()) != Some(&pool[..]) {
            return Err(format!(
                "recovered a pool with holes: {} transactions",
                pool.len()
            ));
        }
        if pool.len() < stored {
            return Err(format!(
                "lost transactions reported stored: {} recovered of {stored}",
                pool.len()
            ));
        }
        Ok(Found { pool, text })
    }

    /// A node's life on `disk` from its start (recovery, open) through `steps`, until they
    /// end or an operation fails; says how many transactions (the first of `all`) it has
    /// had reported stored by then.
    fn live(
        disk: &FakeDisk,
        scenario: &Scenario,
        steps: &[Step],
        stored: usize,
    ) -> Result<usize, String> {
        let Found { mut pool, text } = recover(disk, scenario, stored)?;
        let Ok(mut store) = PoolStore::open_on(
            disk.clone(),
            &pool_path(),
            &pool,
            text.as_deref().is_some_and(|t| is_rendered_pool(t, &pool)),
        ) else {
            return Ok(stored);
        };
        let mut stored = pool.len();
        let mut filed = pool.len();
        for step in steps {
            let ok = match *step {
                Step::Append(n) => {
                    let start = pool.len();
                    pool.extend_from_slice(&scenario.all[start..start + n]);
                    store.append(&pool[start..]).is_ok()
                }
                Step::Rewrite => store.rewrite(&pool[filed..]).is_ok(),
                Step::RewriteThenAppend(n) => {
                    let start = pool.len();
                    pool.extend_from_slice(&scenario.all[start..start + n]);
                    store.rewrite(&pool[filed..]).is_ok() && {
                        filed = pool.len();
                        store.append(&pool[start..]).is_ok()
                    }
                }
                Step::Close => store.close(&pool[filed..]).is_ok(),
            };
            if !ok {
                break;
            }
            if !matches!(step, Step::Append(_)) {
                filed = pool.len();
            }
            if let Step::Append(_) | Step::RewriteThenAppend(_) = step {
                stored = pool.len();
            }
        }
        Ok(stored)
    }

    /// How many steps the whole of `steps` takes on `disk` (left as it was).
    fn steps_of(disk: &FakeDisk, scenario: &Scenario, steps: &[Step], stored: usize) -> usize {
        let disk = disk.duplicate();
        let before = disk.steps();
        live(&disk, scenario, steps, stored).unwrap();
        disk.steps() - before
    }

    fn watched() -> [PathBuf; 2] {
        [pool_path(), journal_path()]
    }

    /// Checks every disk a power loss may leave of `disk`, and that a node restarted on
    /// each works on; says how many disks it checked.
    fn check_power_losses(
        disk: &FakeDisk,
        scenario: &Scenario,
        stored: usize,
    ) -> Result<usize, String> {
        let watched = watched();
        let watched = [watched[0].as_path(), watched[1].as_path()];
        let after = disk.after_power_loss(&watched);
        for lost in &after {
            let stored = live(lost, scenario, &[Step::Append(1)], stored)?;
            recover(&lost.after_strict_power_loss(), scenario, stored)
                .map_err(|e| format!("after a restart: {e}"))?;
        }
        Ok(after.len())
    }

    /// Cuts the power after each step of a node's `LIFE` from `disk`, in turn, and
    /// checks every disk a power loss may leave; says how many points, how many disks.
    fn cut_everywhere(scenario: &Scenario, disk: &FakeDisk) -> Result<(usize, usize), String> {
        let stored = recover(disk, scenario, 0)?.pool.len();
        let total = steps_of(disk, scenario, LIFE, stored);
        let mut disks = 0;
        for cut in 0..=total {
            let disk = disk.duplicate();
            disk.cut_after(cut);
            let stored = live(&disk, scenario, LIFE, stored)?;
            disks += check_power_losses(&disk, scenario, stored)
                .map_err(|e| format!("power lost after step {cut} of {total}: {e}"))?;
        }
        Ok((total + 1, disks))
    }

    fn scenarios() -> Vec<(&'static str, Scenario)> {
        vec![
            ("a fresh folder", fresh()),
            ("a pool file, no journal", cloned()),
            (
                "a canonical pool file, a journal of duplicates",
                used(false, 3, 0),
            ),
            (
                "a canonical pool file, a journal of new ones",
                used(false, 2, 4),
            ),
            (
                "a spaced pool file, a journal of new ones",
                used(true, 0, 3),
            ),
        ]
    }

    #[test]
    fn a_power_loss_at_any_step_keeps_a_whole_pool_file_and_every_stored_transaction() {
        for (name, scenario) in scenarios() {
            let (points, disks) = cut_everywhere(&scenario, &scenario.disk())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            println!("{name}: {points} crash points, {disks} disks after them");
        }
    }

    #[test]
    fn a_power_loss_after_a_kill_at_any_step_keeps_every_stored_transaction() {
        for (name, scenario) in scenarios() {
            let start = scenario.disk();
            let stored = recover(&start, &scenario, 0).unwrap().pool.len();
            let total = steps_of(&start, &scenario, LIFE, stored);
            let mut points = 0;
            for kill in 0..=total {
                // `kill -9`: the steps so far stay in the page cache, nothing is lost.
                let killed = start.duplicate();
                killed.cut_after(kill);
                let stored = live(&killed, &scenario, LIFE, stored).unwrap();
                killed.restore();
                let again = steps_of(&killed, &scenario, AFTER_RESTART, stored);
                for cut in 0..=again {
                    let disk = killed.duplicate();
                    disk.cut_after(cut);
                    let stored = live(&disk, &scenario, AFTER_RESTART, stored).unwrap();
                    for lost in disk.after_power_loss(&[&pool_path(), &journal_path()]) {
                        recover(&lost, &scenario, stored).unwrap_or_else(|e| {
                            panic!("{name}: killed after step {kill}, power lost after {cut}: {e}")
                        });
                    }
                    points += 1;
                }
            }
            println!("{name}: {points} crash points");
        }
    }

    #[test]
    fn a_disk_that_ignores_file_syncs_fails_the_power_loss_check() {
        let scenario = fresh();
        let disk = FakeDisk::lying(&scenario.borrowed(), true, false);
        assert!(cut_everywhere(&scenario, &disk).is_err());
    }

    #[test]
    fn a_disk_that_ignores_directory_syncs_fails_the_power_loss_check() {
        let scenario = used(false, 0, 0);
        let disk = FakeDisk::lying(&scenario.borrowed(), false, true);
        let error = cut_everywhere(&scenario, &disk).unwrap_err();
        assert!(error.contains("lost transactions"), "{error}");
    }

    #[test]
    fn an_append_costs_one_journal_sync_whatever_the_batch_size() {
        let all: Vec<_> = (0..1200).map(tx).collect();
        let disk = FakeDisk::default();
        let mut pool = all[..1000].to_vec();
        let mut store = PoolStore::open_on(disk.clone(), &pool_path(), &pool, false).unwrap();
        let (journal, directory) = disk.syncs(&journal_path());
        let files = disk.file_syncs();
        for n in [1, 10, 100] {
            let start = pool.len();
            pool.extend_from_slice(&all[start..start + n]);
            store.append(&pool[start..]).unwrap();
        }
        assert_eq!(disk.syncs(&journal_path()), (journal + 3, directory));
        assert_eq!(disk.file_syncs(), files + 3);
    }

    #[test]
    fn rewrites_while_the_node_runs_cost_no_sync_and_the_clean_stop_two() {
        let all: Vec<_> = (0..2000).map(tx).collect();
        let disk = FakeDisk::default();
        let mut store = PoolStore::open_on(disk.clone(), &pool_path(), &[], false).unwrap();
        let (journal, directory) = disk.syncs(&journal_path());
        let files = disk.file_syncs();
        let (mut batches, mut filed) = (0, 0);
        for (index, batch) in all.chunks(7).enumerate() {
            let end = index * 7 + batch.len();
            store.append(batch).unwrap();
            batches += 1;
            if index % 10 == 0 {
                store.rewrite(&all[filed..end]).unwrap();
                filed = end;
            }
        }
        assert_eq!(disk.syncs(&journal_path()).0, journal + batches);
        assert_eq!(disk.file_syncs(), files + batches);
        assert_eq!(disk.syncs(&journal_path()).1, directory);
        store.close(&all[filed..]).unwrap();
        // The pool file's data, then the directory after its rename.
        assert_eq!(disk.file_syncs(), files + batches + 1);
        assert_eq!(disk.syncs(&journal_path()).1, directory + 1);
    }
}
