//! Creating and opening a store, the builder and its defaults, and the transaction entry points.

use super::backend::{Adapter, Backend};
use super::direct::{Direct, Tap};
use super::idle::IdleCheckpoints;
use super::journal::{Journal, JournalControl, JournalError, deferring_sync};
use super::{Config, FORMAT_VERSION, ReadTx, WTables, WriteTx, dec};
use crate::error::{Error, Result};
use crate::ids::Timestamp;
use redb::ReadableDatabase;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How final commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is fsynced before it returns (the default).
    #[default]
    Immediate,
    /// Commits are visible at once but only made durable by a later `Immediate` commit or a
    /// clean close; a crash may lose them (never half of one). For bulk loads and tests.
    Eventual,
}

/// When a reader checks a chunk's bytes against the blake3 hash that addresses them.
///
/// Whatever the setting, fixity ([`Store::verify_file`], [`Store::verify_all`]) re-hashes
/// every chunk and every whole file, and a mismatch found on read is [`Error::Corruption`]
/// (`ErrorKind::InvalidData` through `std::io::Read`); damaged bytes are never returned by a
/// read that checked them. A reader keeps the chunk it last loaded through the engine in memory
/// (already checked) and serves reads inside it from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadVerification {
    /// Every chunk is hashed, whole, every time a reader loads it through the engine: a read
    /// never returns bytes that differ from what was stored, even if they were damaged while
    /// the store was open. Each load reads the chunk's whole page (about 1 MiB), so a small
    /// range read costs a chunk read and a chunk hash.
    Always,
    /// Each chunk is hashed, whole, the first time the open store loads it from the file; on a
    /// match, the store remembers where in the file the chunk's bytes lie, and later reads of
    /// that chunk, by any reader of the store (and its clones), read just the bytes asked for
    /// from there, unhashed. A chunk is hashed again on its next load once the store forgot it:
    /// after reopening, after the engine wrote over its place (when it moves or frees the
    /// chunk's page), after fixity found any damaged file (everything is forgotten), or when
    /// the set is full (it holds 16,384 chunks, about 1.6 MB; an arbitrary one makes room for
    /// each new one). A chunk the engine serves from its cache rather than the file (just
    /// written, say) is hashed on every load until it is loaded from the file.
    ///
    /// So damage that is in the file when an open store first reads a chunk is always caught;
    /// damage to bytes already checked, arising while the store stays open, is not caught by
    /// reads until one of the above happens, and is caught by fixity. The default.
    #[default]
    Once,
    /// Nothing is hashed on read; damage is found only by fixity (as in Invenio, whose fixity
    /// checks are the only defence). Chunk locations are remembered as with `Once`.
    Never,
}

/// Bounds of the multipart upload protocol (Invenio's `FILES_REST_MULTIPART_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Smallest part size; the total size must be strictly larger. Default 5 MiB.
    pub min_part_size: u64,
    /// Largest part size. Default 5 GiB.
    pub max_part_size: u64,
    /// Most parts one upload may have. Default 10,000.
    pub max_parts: u64,
    /// Age after which an uncompleted upload may be expired. Default 4 days.
    pub expires: std::time::Duration,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits {
            min_part_size: 5 * 1024 * 1024,
            max_part_size: 5 * 1024 * 1024 * 1024,
            max_parts: 10_000,
            expires: std::time::Duration::from_secs(4 * 24 * 3600),
        }
    }
}

/// Configures and opens a [`Store`].
///
/// Defaults: a 64 MiB engine cache (redb's own default of 1 GiB is too much for a desktop
/// app), chunks of 1 MiB − 64 bytes (1,048,512 B; a power of two would waste half of every
/// page because the chunk key shares the page), blake3 checksums only, durable commits, object
/// keys up to 1024 bytes, staged uploads in batches of 16 MiB, each chunk verified the first
/// time the open store reads it ([`ReadVerification::Once`]).
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    cache_size: usize,
    journal_bytes: u64,
    repair: Option<RepairHook>,
    /// [`StoreBuilder::idle_checkpoint`]: unset is on for a file, off on other backends.
    idle: Option<Option<Duration>>,
    /// The idle thread reads a clock the test moves (`testing`).
    idle_clock_by_hand: bool,
    cfg: Config,
    /// [`StoreBuilder::location_backend`]'s backends, by location name.
    backends: std::collections::HashMap<String, Arc<dyn crate::content::ContentBackend>>,
}

/// The caller's [`StoreBuilder::on_repair`] callback.
#[derive(Clone)]
struct RepairHook(Arc<dyn Fn(f64) + Send + Sync>);

impl std::fmt::Debug for RepairHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepairHook")
    }
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder {
            cache_size: 64 * 1024 * 1024,
            journal_bytes: super::journal::DEFAULT_REGION,
            repair: None,
            idle: None,
            idle_clock_by_hand: false,
            cfg: Config {
                chunk_size: 1024 * 1024 - 64,
                md5: false,
                durability: Durability::Immediate,
                max_key_len: 1024,
                staging_batch_bytes: 16 * 1024 * 1024,
                verify_reads: ReadVerification::Once,
                direct: None,
                journal: None,
                multipart: MultipartLimits::default(),
                extensions: Default::default(),
                poison: Default::default(),
                read_only: false,
                quick_repair: false,
                hooks: Default::default(),
                remotes: Arc::new(crate::content::Remotes::new(Default::default())),
            },
            backends: Default::default(),
        }
    }
}

impl StoreBuilder {
    /// A builder with the defaults above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of page cache the engine may keep in memory.
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Bytes reserved at the head of a new store file for the commit journal: a multiple of
    /// 4 KiB from 64 KiB to 1 GiB, default 8 MiB. Small durable commits append there, so its
    /// size sets how many fit between two checkpoints; the pages they wrote are held in memory
    /// until then (at most about twice this size). A store keeps the size it was created with;
    /// the option has no effect on an existing file or an in-memory store.
    pub fn journal_size(mut self, bytes: u64) -> Self {
        self.journal_bytes = bytes;
        self
    }

    /// Payload bytes per content chunk (1 KiB to 64 MiB). Keep it a little under a power of
    /// two; see DESIGN.md.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.cfg.chunk_size = bytes;
        self
    }

    /// Also compute an `md5:<hex>` checksum for every file (Invenio's format, HTTP ETags).
    pub fn md5(mut self, on: bool) -> Self {
        self.cfg.md5 = on;
        self
    }

    /// Durability of final commits.
    pub fn durability(mut self, d: Durability) -> Self {
        self.cfg.durability = d;
        self
    }

    /// Longest accepted object key, in bytes.
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.cfg.max_key_len = bytes;
        self
    }

    /// Content bytes written per staging transaction of a large upload.
    pub fn staging_batch(mut self, bytes: usize) -> Self {
        self.cfg.staging_batch_bytes = bytes;
        self
    }

    /// When readers check a chunk's bytes against its blake3 hash (default
    /// [`ReadVerification::Once`]); see [`ReadVerification`].
    pub fn read_verification(mut self, when: ReadVerification) -> Self {
        self.cfg.verify_reads = when;
        self
    }

    /// The older switch: `true` is [`ReadVerification::Always`] (the default before `Once`),
    /// `false` is [`ReadVerification::Never`].
    pub fn verify_reads(mut self, on: bool) -> Self {
        self.cfg.verify_reads = if on {
            ReadVerification::Always
        } else {
            ReadVerification::Never
        };
        self
    }

    /// Whether durable commits record the engine's allocator state (redb's quick repair;
    /// default off), so that reopening after a crash costs time in proportion to the journal,
    /// not to the store: the engine then reads that state instead of checking every page of
    /// the file. Measured here (`cargo bench --bench reopen`, a quiet machine): a 1 GiB store
    /// killed after its commits reopened in 3.7 ms warm and 14.5 ms cold with it, 477 ms and
    /// 2.6 s without; but durable one-record commits ran at 1,944/s with it against 3,922/s
    /// without (the allocator state written with every commit: 91 KB per one-record commit at
    /// 1 GiB against 9.7 KB without, 611 KB at 4 GiB, where every commit then goes in place).
    /// Turn it on where reopening after crashes matters more than commit rate; an application
    /// writing in bursts gets the same reopen after a crash between bursts by calling
    /// [`Store::checkpoint`] when a burst ends. Its two-phase commit's extra sync is
    /// folded into the journal's batch. Off: reopening after a crash checks every page, as
    /// [`StoreBuilder::on_repair`] reports.
    pub fn quick_repair(mut self, on: bool) -> Self {
        self.cfg.quick_repair = on;
        self
    }

    /// Checkpoints the store (as [`Store::checkpoint`] does) once it has been idle for `delay`
    /// after a commit; `None` never does. Default: on, 1 second, for a store opened on a file
    /// ([`StoreBuilder::open`]); off in memory and on a [`Backend`] given to
    /// [`StoreBuilder::open_backend`] unless set here; never on a store opened read-only or
    /// salvaged.
    ///
    /// Why: a store killed after a checkpoint, before its next commit, reopens without the
    /// engine's check of every page (milliseconds instead of seconds per few GiB; see
    /// docs/RELIABILITY.md), so an idle app or server that loses its power or its process
    /// reopens fast. A steady stream of commits never triggers it: only `delay` with no commit
    /// does, and then once until the next commit. One second leaves a crash mid-burst to the
    /// full check, but is long past the gaps inside a burst of work (so a burst gets one
    /// checkpoint, not several) and short next to how long an idle app stays idle; each
    /// checkpoint writes the allocator state (about 64 KiB per GiB of store) and syncs once.
    /// A failed background checkpoint is counted in [`Store::idle_checkpoints`]; the next
    /// commit reports a real I/O problem as usual. One thread per open store waits for this;
    /// closing or dropping the store stops it.
    pub fn idle_checkpoint(mut self, delay: Option<Duration>) -> Self {
        self.idle = Some(delay);
        self
    }

    /// Test machinery: the idle checkpoint's clock moves only by
    /// [`Store::advance_idle_clock`].
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn idle_clock_by_hand(mut self) -> Self {
        self.idle_clock_by_hand = true;
        self
    }

    /// The object store that holds the content of location `name` (whatever its URI), for an
    /// application that builds its own backend rather than letting an `s3://` URI configure
    /// one from the environment. Credentials stay in the backend: the store file only holds
    /// the location's name and URI.
    pub fn location_backend(
        mut self,
        name: &str,
        backend: Arc<dyn crate::content::ContentBackend>,
    ) -> Self {
        self.backends.insert(name.to_string(), backend);
        self.cfg.remotes = Arc::new(crate::content::Remotes::new(self.backends.clone()));
        self
    }

    /// The application's callbacks on record and file changes (see [`crate::hooks`]).
    /// Replaces any given before.
    pub fn hooks(mut self, hooks: crate::hooks::Hooks) -> Self {
        self.cfg.hooks = Arc::new(hooks);
        self
    }

    /// Bounds of multipart uploads.
    pub fn multipart_limits(mut self, limits: MultipartLimits) -> Self {
        self.cfg.multipart = limits;
        self
    }

    fn validate(&self) -> Result<()> {
        let c = &self.cfg;
        if !(1024..=64 * 1024 * 1024).contains(&c.chunk_size) {
            return Err(Error::InvalidConfig {
                option: "chunk_size",
                value: c.chunk_size.to_string(),
                reason: "must be between 1 KiB and 64 MiB",
            });
        }
        if c.staging_batch_bytes < c.chunk_size {
            return Err(Error::InvalidConfig {
                option: "staging_batch",
                value: c.staging_batch_bytes.to_string(),
                reason: "must hold at least one chunk",
            });
        }
        let j = self.journal_bytes;
        if !(super::journal::MIN_REGION..=MAX_JOURNAL).contains(&j) || !j.is_multiple_of(4096) {
            return Err(Error::InvalidConfig {
                option: "journal_size",
                value: j.to_string(),
                reason: "must be a multiple of 4 KiB between 64 KiB and 1 GiB",
            });
        }
        if c.max_key_len == 0 {
            return Err(Error::InvalidConfig {
                option: "max_key_len",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        let m = &c.multipart;
        if m.min_part_size == 0 || m.min_part_size > m.max_part_size || m.max_parts == 0 {
            return Err(Error::InvalidConfig {
                option: "multipart_limits",
                value: format!("{m:?}"),
                reason: "need 0 < min_part_size <= max_part_size and max_parts > 0",
            });
        }
        Ok(())
    }

    /// Calls `progress` (with a fraction from 0.0 to 1.0, any number of times) while an open
    /// checks a store that was not closed cleanly. After a crash the engine verifies every page
    /// of the file before the store opens, content included: measured here, 0.7 s for a 4 GiB
    /// store in the page cache and 7.3 s from a cold disk. An app can show this instead of
    /// seeming to hang. A cleanly closed store opens without the check, and the callback is not
    /// called.
    pub fn on_repair(mut self, progress: impl Fn(f64) + Send + Sync + 'static) -> Self {
        self.repair = Some(RepairHook(Arc::new(progress)));
        self
    }

    fn redb_builder(&self) -> redb::Builder {
        let mut b = redb::Database::builder();
        b.set_cache_size(self.cache_size);
        if let Some(RepairHook(hook)) = &self.repair {
            let hook = Arc::clone(hook);
            b.set_repair_callback(move |session| hook(session.progress()));
        }
        b
    }

    /// The engine-level part of [`StoreBuilder::open`]: the file opened (created if missing),
    /// its journal replayed, the engine started and the format checked. The caller readies
    /// the store (`crate::bootstrap`).
    pub(crate) fn open_file(self, path: &Path) -> Result<(Store, Found)> {
        self.validate()?;
        if starts_like_redb(path) {
            return Err(plain_redb(path));
        }
        let new_file = !path.exists();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if new_file {
            // The file's directory entry must be durable before anything in the file is
            // reported committed: POSIX promises nothing for a new file's data without it.
            sync_parent_dir(path)?;
        }
        // A second handle, for allocating ahead and writeback hints; without it the store works
        // the same.
        let hints = file.try_clone().ok();
        let named = naming(path);
        let backend = redb::backends::FileBackend::new(file)
            .map_err(open_error)
            .map_err(&named)?;
        let journal = Arc::new(
            Journal::new(backend, self.journal_bytes)
                .with_file(hints)
                .with_database_magic(&REDB_MAGIC),
        );
        let idle = self.idle.unwrap_or(Some(DEFAULT_IDLE_CHECKPOINT));
        self.start(Direct::new(journal.clone()), Some(journal), idle)
            .map_err(named)
    }

    /// The file at `path` opened for reading only ([`StoreBuilder::open_read_only`], and with
    /// `salvage` [`StoreBuilder::salvage`]): nothing more is needed to use it.
    pub(crate) fn open_without_writing(
        mut self,
        path: &Path,
        salvage: bool,
    ) -> Result<(Store, SalvageReport)> {
        self.validate()?;
        if starts_like_redb(path) {
            return Err(plain_redb(path));
        }
        let file = super::read_only::ReadOnlyFile::open(path)?;
        let mut journal = Journal::new(Adapter(Box::new(file)), self.journal_bytes)
            .with_database_magic(&REDB_MAGIC);
        if salvage {
            journal = journal.salvaging();
        }
        let journal = Arc::new(journal);
        self.cfg.read_only = true;
        let (store, _) = self
            .start(Direct::new(journal.clone()), Some(journal.clone()), None)
            .map_err(naming(path))?;
        Ok((
            store,
            SalvageReport {
                lost: journal.lost(),
            },
        ))
    }

    /// The engine-level part of [`StoreBuilder::in_memory`].
    pub(crate) fn open_memory(self) -> Result<(Store, Found)> {
        self.validate()?;
        let backend = Adapter(Box::new(super::MemoryBackend::new()));
        self.start(Direct::new(Arc::new(backend)), None, None)
    }

    /// The engine-level part of [`StoreBuilder::open_backend`].
    pub(crate) fn open_on_backend(self, backend: impl Backend) -> Result<(Store, Found)> {
        self.validate()?;
        let journal = Arc::new(
            Journal::new(Adapter(Box::new(backend)), self.journal_bytes)
                .with_database_magic(&REDB_MAGIC),
        );
        let idle = self.idle.flatten();
        self.start(Direct::new(journal.clone()), Some(journal), idle)
    }

    fn start(
        mut self,
        (direct, tap): (Arc<Direct>, Tap),
        journal: Option<Arc<dyn JournalControl>>,
        idle: Option<Duration>,
    ) -> Result<(Store, Found)> {
        // Nothing to checkpoint in memory, nothing to write read-only.
        let idle = idle.filter(|_| journal.is_some() && !self.cfg.read_only);
        let clock = match self.idle_clock_by_hand {
            true => super::idle::Clock::Manual(Duration::ZERO),
            false => super::idle::Clock::Real(std::time::Instant::now()),
        };
        // A damaged file can make the engine panic while it opens, or while the store reads
        // its format: that is a corrupt store, not a crash of the caller.
        let poison = Arc::clone(&self.cfg.poison);
        poison.contain(|| {
            let db = self
                .redb_builder()
                .create_with_backend(tap)
                .map_err(open_error)?;
            self.cfg.direct = Some(direct);
            self.cfg.journal = journal;
            let store = Store::from_engine(db, self.cfg, idle.map(|d| (d, clock)))?;
            let found = store.check_format()?;
            Ok((store, found))
        })
    }
}

/// What the format check of an opening store found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A store of this build's format.
    Store,
    /// An empty file (or one whose creation never finished): the store is to be created.
    Nothing,
    /// A store of an older format this build upgrades, opened for writing: the upgrade and
    /// the new version are to be written in one transaction.
    Older(u32),
}

/// Makes the directory entry of a newly created `path` durable (Unix: fsync of its parent
/// directory; elsewhere the file system's own metadata journal is relied on).
fn sync_parent_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Commits `txn` durably through the journal: the batch is written and the disk started on it
/// while redb finishes the commit (freeing pages of earlier ones); the wait for the disk comes
/// last.
///
/// With `quick_repair`, redb also records its allocator state in the commit, so an open after a
/// crash reads that instead of walking every page of the file; redb then commits in two phases,
/// whose two syncs the journal folds into one batch and one sync.
fn commit_durably(
    journal: &dyn JournalControl,
    mut txn: redb::WriteTransaction,
    quick_repair: bool,
) -> Result<()> {
    txn.set_quick_repair(quick_repair);
    deferring_sync(quick_repair, || txn.commit())?;
    journal
        .settle()
        .map_err(|source| Error::CommitUnknown { source })
}

/// What [`StoreBuilder::salvage`] had to leave out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// What was left out and why (the damaged journal batch and how many intact ones followed
    /// it, or a lost header); `None` when the store opened whole.
    pub lost: Option<String>,
}

/// [`StoreBuilder::idle_checkpoint`]'s default for a store on a file.
const DEFAULT_IDLE_CHECKPOINT: Duration = Duration::from_secs(1);

/// The largest journal region a builder accepts.
const MAX_JOURNAL: u64 = super::journal::MAX_REGION;

/// The first bytes of a redb database, which redb writes last when it creates one (redb 4's
/// file format; docs/RELIABILITY.md lists what the journal assumes of redb).
const REDB_MAGIC: [u8; 9] = *b"redb\x1A\x0A\xA9\x0D\x0A";

/// Whether the file at `path` starts like a redb database (a store file starts with its
/// journal's header instead).
fn starts_like_redb(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == *b"redb")
}

/// What a plain redb file at `path` is: a store of a format before the journal (read from its
/// `meta` table without changing the file), or some other database.
fn plain_redb(path: &Path) -> Error {
    use redb::ReadableDatabase;
    let found = (|| -> Option<u32> {
        let db = redb::ReadOnlyDatabase::open(path).ok()?;
        let read = db.begin_read().ok()?;
        let meta = read.open_table(super::defs::meta).ok()?;
        let v = meta.get("format_version").ok()??;
        let found = dec::<u32>(v.value(), "meta.format_version").ok()?;
        Some(found)
    })();
    match found {
        Some(found) => Error::FormatTooOld {
            found,
            oldest: super::OLDEST_FORMAT,
        },
        None => Error::NotAStore {
            detail: "a redb database that is not a recfiles store".into(),
        },
    }
}

/// Names `path` in an [`Error::AlreadyOpen`] (the engine's error does not know it).
pub(crate) fn naming(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::AlreadyOpen { .. } => Error::AlreadyOpen {
            path: Some(path.to_path_buf()),
        },
        other => other,
    }
}

fn open_error(e: redb::DatabaseError) -> Error {
    if let redb::DatabaseError::Storage(redb::StorageError::Io(io)) = &e
        && let Some(j) = JournalError::of(io)
    {
        return match j {
            JournalError::PlainRedb | JournalError::Foreign(_) => Error::NotAStore {
                detail: j.to_string(),
            },
            JournalError::Damaged(detail) => Error::corrupt(detail.clone()),
            JournalError::Failed => Error::Io(std::io::Error::other(j.to_string())),
        };
    }
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen { path: None },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            Error::NotAStore { detail }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            Error::NotAStore {
                detail: io.to_string(),
            }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => Error::Io(io),
        other => Error::from(other),
    }
}

pub(crate) struct Inner {
    // The lock is only ever held briefly to begin a transaction (shared) or for maintenance
    // that needs the database to itself (exclusive, never waited for but by `Store::close`).
    // `None` once the store is closed.
    db: parking_lot::RwLock<Option<redb::Database>>,
    pub(crate) cfg: Config,
    /// Concurrent durable writers sharing syncs (see `storage::group`).
    group: super::group::GroupCommit,
    /// Told of each commit, when idle checkpoints are on (see `storage::idle`).
    idle: Option<super::idle::Idle>,
}

impl Inner {
    /// Asks the kernel to start writing the store file's dirty pages to disk, without waiting
    /// (Linux `sync_file_range`; nothing elsewhere). Staged uploads call it after each batch,
    /// so the disk works while the next batch is hashed instead of all at the final fsync.
    /// Only a hint: durability still comes from the commit's fsync alone.
    pub(crate) fn start_writeback(&self) {
        if let Some(journal) = &self.cfg.journal {
            journal.start_writeback();
        }
    }

    /// Tells the idle checkpoint (when on) that a commit happened: its delay starts again.
    pub(crate) fn committed(&self) {
        if let Some(idle) = &self.idle {
            idle.committed();
        }
    }

    pub(crate) fn begin_write(&self) -> Result<redb::WriteTransaction> {
        self.cfg.poison.check()?;
        if self.cfg.read_only {
            return Err(Error::ReadOnly);
        }
        Ok(self
            .db
            .read()
            .as_ref()
            .ok_or(Error::Closed)?
            .begin_write()?)
    }

    /// The engine's statistics, which it gives only to a write transaction: one is begun,
    /// asked and aborted (writing nothing), on a read-only store too.
    pub(crate) fn engine_stats(&self) -> Result<redb::DatabaseStats> {
        self.cfg.poison.check()?;
        self.contain(|| {
            let db = self.db.read();
            let txn = db.as_ref().ok_or(Error::Closed)?.begin_write()?;
            let stats = txn.stats()?;
            txn.abort()?;
            Ok(stats)
        })
    }

    pub(crate) fn begin_read(&self) -> Result<redb::ReadTransaction> {
        self.cfg.poison.check()?;
        Ok(self.db.read().as_ref().ok_or(Error::Closed)?.begin_read()?)
    }

    /// Runs `f`, which calls into the engine, with an engine panic turned into
    /// `Error::Corruption` (see `storage::contain`).
    pub(crate) fn contain<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.cfg.poison.contain(f)
    }

    /// [`Store::checkpoint`].
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let Some(journal) = &self.cfg.journal else {
            return match self.db.read().as_ref() {
                Some(_) => Ok(()),
                None => Err(Error::Closed),
            };
        };
        if !self.cfg.read_only {
            // An empty commit with quick repair: redb writes its allocator state, in two phases
            // whose syncs the journal folds into one batch (as for any quick-repair commit).
            self.contain(|| {
                let mut txn = self.begin_write()?;
                txn.set_durability(redb::Durability::Immediate)?;
                commit_durably(journal.as_ref(), txn, true)
            })?;
        }
        // Held through the checkpoint: a close waits for it, and none runs on a closed file.
        let open = self.db.read();
        if open.is_none() {
            return Err(Error::Closed);
        }
        journal.checkpoint().map_err(Error::Io)
    }

    /// The database to itself, if no other thread is starting a transaction right now (and
    /// the store is open).
    pub(crate) fn db_exclusive(
        &self,
    ) -> Option<parking_lot::MappedRwLockWriteGuard<'_, redb::Database>> {
        parking_lot::RwLockWriteGuard::try_map(self.db.try_write()?, Option::as_mut).ok()
    }
}

/// An open recfiles store: one file holding records, buckets, object versions and file
/// content. Cheap to clone; clones share the same open file and may be used from many threads.
#[derive(Clone)]
pub struct Store {
    /// The idle checkpoint's thread, stopped when the last handle drops (before `inner`, which
    /// the thread only holds weakly).
    idle_thread: Option<Arc<super::idle::IdleThread>>,
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.inner.cfg)
            .finish()
    }
}

impl Store {
    /// A builder to choose cache size, chunk size, checksums and durability.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::new()
    }

    fn from_engine(
        db: redb::Database,
        cfg: Config,
        idle: Option<(Duration, super::idle::Clock)>,
    ) -> Result<Store> {
        let idle = idle.map(|(delay, clock)| super::idle::Idle::new(delay, clock));
        let inner = Arc::new(Inner {
            db: parking_lot::RwLock::new(Some(db)),
            cfg,
            group: Default::default(),
            idle: idle.clone(),
        });
        let idle_thread = match idle {
            Some(idle) => Some(Arc::new(super::idle::Idle::start(
                Arc::downgrade(&inner),
                idle,
            )?)),
            None => None,
        };
        Ok(Store { idle_thread, inner })
    }

    /// Whether the store was opened for reading only.
    pub(crate) fn is_read_only(&self) -> bool {
        self.inner.cfg.read_only
    }

    /// Tells the journal that the store's first tables are committed: from now on a crash
    /// leaves a store, never a half-created file to start over.
    pub(crate) fn finish_creation(&self) -> Result<()> {
        if let Some(journal) = &self.inner.cfg.journal {
            journal.finish_creation().map_err(Error::Io)?;
        }
        Ok(())
    }

    fn check_format(&self) -> Result<Found> {
        let read = self.inner.begin_read()?;
        let has_tables = read.list_tables()?.next().is_some();
        let stored = match read.open_table(super::defs::meta) {
            Ok(meta) => match meta.get("format_version")? {
                Some(v) => Some(dec::<u32>(v.value(), "meta.format_version")?),
                None => None,
            },
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        drop(read);
        match stored {
            Some(found) if found > FORMAT_VERSION => Err(Error::FormatTooNew {
                found,
                supported: FORMAT_VERSION,
            }),
            // Formats 4 and 5 are upgraded by the layers above, in the transaction that
            // readies the store (see `Found::Older`). Read-only, they are read as they are:
            // format 4 lacks only the tables of content in other locations (it has no such
            // content), format 5 has dedup entries this build no longer makes.
            Some(found) if (super::OLDEST_FORMAT..FORMAT_VERSION).contains(&found) => {
                match self.inner.cfg.read_only {
                    true => Ok(Found::Store),
                    false => Ok(Found::Older(found)),
                }
            }
            // Older formats are laid out differently (docs/FORMAT.md); this build cannot read them.
            Some(found) if found < FORMAT_VERSION => Err(Error::FormatTooOld {
                found,
                oldest: super::OLDEST_FORMAT,
            }),
            Some(_) => Ok(Found::Store),
            None if has_tables => Err(Error::NotAStore {
                detail: "redb file without a recfiles meta table".into(),
            }),
            None if self.inner.cfg.read_only => Err(Error::NotAStore {
                detail: "an empty file, or a store whose creation never finished".into(),
            }),
            None => Ok(Found::Nothing),
        }
    }

    /// Runs `f` inside one write transaction. Everything it changes commits together when it
    /// returns `Ok`; an `Err` or a panic rolls all of it back. Only one write transaction runs at
    /// a time; others wait.
    pub fn write<T>(&self, f: impl FnOnce(&mut WriteTx<'_>) -> Result<T>) -> Result<T> {
        self.write_with(self.inner.cfg.durability, f)
    }

    pub(crate) fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        let (out, events, after) = self.inner.contain(|| self.write_contained(durability, f))?;
        if !after.is_empty() {
            self.inner.cfg.remotes.after_commit(self, after);
        }
        // Durable (or as durable as asked): the application may hear of it now, outside the
        // transaction and the engine's boundary, so a hook can neither undo the commit nor
        // hold the writer.
        if !events.is_empty() {
            self.inner.cfg.hooks.fire_after(self, events);
        }
        Ok(out)
    }

    /// [`Self::write_with`] up to the durable commit; also returns the transaction's events.
    fn write_contained<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T>,
    ) -> Result<(T, Vec<crate::hooks::Event>, crate::content::AfterCommit)> {
        let grouped = durability == Durability::Immediate && self.inner.cfg.journal.is_some();
        let mut writer = grouped.then(|| self.inner.group.enter());
        let mut txn = self.inner.begin_write()?;
        txn.set_durability(match durability {
            Durability::Immediate => redb::Durability::Immediate,
            Durability::Eventual => redb::Durability::None,
        })?;
        let (outcome, (events, after)) = {
            let mut tx = WriteTx {
                t: WTables::open(&txn),
                cfg: &self.inner.cfg,
                now: Timestamp::now(),
                events: Vec::new(),
            };
            // redb skips the abort of a transaction dropped while unwinding and marks the file
            // for repair (its pages leak until the next open). A panic in `f` (a caller's reader,
            // say) is therefore caught here, the transaction aborted cleanly, and the panic
            // resumed.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let out = f(&mut tx)?;
                tx.t.write_deferred()?;
                Ok(out)
            }));
            let after = std::mem::take(&mut tx.t.after_commit);
            (outcome, (std::mem::take(&mut tx.events), after))
        };
        match outcome {
            Ok(Ok(out)) => {
                let crowded = writer.as_mut().filter(|w| w.crowded());
                match (&self.inner.cfg.journal, crowded) {
                    // The journal starts the disk on the commit's batch and returns; redb then
                    // finishes its commit (freeing pages of earlier ones) while the disk works,
                    // and the wait for durability comes last.
                    (Some(journal), Some(writer)) => {
                        // Others are writing: commit now, share a sync with them.
                        txn.set_durability(redb::Durability::None)?;
                        txn.commit()?;
                        writer.wait_durable(|| {
                            let mut empty = self.inner.begin_write()?;
                            empty.set_durability(redb::Durability::Immediate)?;
                            commit_durably(journal.as_ref(), empty, self.inner.cfg.quick_repair)
                        })?;
                    }
                    (Some(journal), None) if durability == Durability::Immediate => {
                        commit_durably(journal.as_ref(), txn, self.inner.cfg.quick_repair)?;
                    }
                    _ => txn.commit()?,
                }
                self.inner.committed();
                Ok((out, events, after))
            }
            Ok(Err(e)) => Err(e),
            Err(panic) => {
                // The panic is what the caller must see; a failing abort has nothing to add.
                let _ = txn.abort();
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Runs `f` on a consistent snapshot of the store.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx) -> Result<T>) -> Result<T> {
        self.inner.contain(|| f(&ReadTx::begin(&self.inner)?))
    }

    /// A read snapshot that the caller keeps (for example to hold a file reader open).
    pub fn snapshot(&self) -> Result<ReadTx> {
        self.inner.contain(|| ReadTx::begin(&self.inner))
    }

    /// Closes the store and reports what closing hit: the final checkpoint (the journal's
    /// pages written to their places and synced, so the next open has nothing to replay) and
    /// the release of the file. Dropping the last handle does the same but can only ignore a
    /// failure; an app that wants to know whether its last writes reached their places calls
    /// this. An `Err` loses nothing committed: the next open replays the journal.
    ///
    /// It closes the store for every clone of this handle: a write in progress on another
    /// thread is waited for, and from then on every call through any clone, and reads of
    /// snapshots and readers still held, fail ([`Error::Closed`], or an engine error for a
    /// snapshot). Closing a store some clone already closed is [`Error::Closed`]. A write on
    /// another thread that had committed and was waiting to share a sync with others (group
    /// commit) may return [`Error::CommitUnknown`]: a close that succeeds has made its commit
    /// durable with everything else, but that thread cannot know; a reopen shows it.
    pub fn close(self) -> Result<()> {
        // No idle checkpoint after the close: one under way finishes first.
        if let Some(idle) = &self.idle_thread {
            idle.stop();
        }
        let Some(db) = self.inner.db.write().take() else {
            return Err(Error::Closed);
        };
        // A write transaction still open on another thread would have the engine close the
        // file only when it ends, and ignore what that hit: wait for it instead. (Beginning
        // fails only on a store that already failed; the close below reports that.)
        self.inner.contain(|| {
            if !self.inner.cfg.read_only
                && let Ok(txn) = db.begin_write()
            {
                let _ = txn.abort();
            }
            // That writer may not have settled its commit's sync yet: settle it here, so its
            // own settle finds nothing to do on a closed file (and a failure is reported).
            let settled = match &self.inner.cfg.journal {
                Some(journal) => journal.settle().map_err(Error::Io),
                None => Ok(()),
            };
            let closed = db.close().map_err(|e| match e {
                redb::DatabaseError::Storage(redb::StorageError::Io(io)) => Error::Io(io),
                other => Error::from(other),
            });
            settled.and(closed)
        })
    }

    /// Records the engine's allocator state in a durable commit of its own, then writes every
    /// page the commit journal holds to its place in the store file and empties the journal
    /// (see docs/FORMAT.md). Durability never needs it: the store checkpoints its journal by
    /// itself when the journal fills and when it closes.
    ///
    /// What it is for: a crash after it (before the next commit) reopens in time proportional
    /// to the journal, not to the store, as after a clean close: the engine reads the recorded
    /// allocator state instead of checking every page of the file (seconds per few GiB). A
    /// commit after it (without [`StoreBuilder::quick_repair`]) brings the full check back.
    /// So an application that writes in bursts calls it when a burst ends. The recorded state
    /// grows with the store (about a quarter of a byte per 4 KiB page: 256 KiB for 4 GiB), and
    /// is written with each call. It also bounds what a reopen after a crash replays, and puts
    /// committed bytes where tools that read the database region find them.
    ///
    /// Safe at any time, also while other threads commit; like [`Store::write`], it waits for
    /// the writer, so not from inside a write closure on the same thread. An in-memory store
    /// has no journal and nothing to do; a read-only one only has its journal checkpointed.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint()
    }

    /// What the idle checkpoints ([`StoreBuilder::idle_checkpoint`]) have done since the
    /// store opened: how many succeeded and failed, and the last failure.
    pub fn idle_checkpoints(&self) -> IdleCheckpoints {
        self.inner
            .idle
            .as_ref()
            .map(super::idle::Idle::stats)
            .unwrap_or_default()
    }

    /// Test machinery: moves the idle checkpoint's clock (made with
    /// [`StoreBuilder::idle_clock_by_hand`]) forward by `by`.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn advance_idle_clock(&self, by: Duration) {
        if let Some(idle) = &self.inner.idle {
            idle.advance(by);
        }
    }

    /// Test machinery: waits until the idle checkpoints attempted (done or failed) reach
    /// `attempts`, for at most `timeout`; whether they did.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn wait_idle_checkpoints(&self, attempts: u64, timeout: Duration) -> bool {
        match &self.inner.idle {
            Some(idle) => idle.wait_attempts(attempts, timeout),
            None => attempts == 0,
        }
    }
}
