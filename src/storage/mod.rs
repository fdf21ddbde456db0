//! Storage: where do bytes and rows live?
//!
//! Owns the store file (its commit journal and the redb database after it): the table
//! definitions, the key and value encodings, the format version and the transaction wrappers
//! every higher layer works through. Nothing above this module
//! names a redb type, so the engine can change without touching the public API.

mod backend;
pub(crate) mod codec;
mod contain;
mod direct;
mod group;
mod idle;
mod journal;
mod open;
mod read_only;
mod tables;
#[cfg(any(test, feature = "testing"))]
mod testing;

pub use backend::Backend;
pub(crate) use backend::MemoryBackend;
pub(crate) use codec::{dec, dec_head, enc};
pub(crate) use contain::{Poison, catch_engine_panic};
pub(crate) use direct::{Direct, DirectRead};
pub use idle::IdleCheckpoints;
pub(crate) use open::Inner;
pub use open::{Durability, MultipartLimits, ReadVerification, SalvageReport, Store, StoreBuilder};
pub(crate) use open::{Found, naming};
pub(crate) use tables::{Hot, RTables, View, WTables, defs, each_row};
#[cfg(any(test, feature = "testing"))]
pub use testing::{FaultKind, FaultPlan, FaultyBackend, FileBackend, SimulatedDisk};

use crate::error::Result;
use crate::ids::Timestamp;

/// The on-disk format this build writes and reads (see docs/FORMAT.md, which says what each
/// version changed). A store of format 4 or 5 is upgraded when opened for writing; older ones
/// are refused with `Error::FormatTooOld`.
pub const FORMAT_VERSION: u32 = 6;

/// The oldest format this build opens (upgrading it to [`FORMAT_VERSION`]).
pub(crate) const OLDEST_FORMAT: u32 = 4;

/// The immutable settings of an open store, fixed by its builder.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub chunk_size: usize,
    pub md5: bool,
    pub durability: Durability,
    pub max_key_len: usize,
    pub staging_batch_bytes: usize,
    pub verify_reads: ReadVerification,
    /// Direct chunk reads past the engine's cache; set once the store is open.
    pub direct: Option<std::sync::Arc<Direct>>,
    /// The commit journal of a store on a file or backend (none in memory); set once open.
    pub journal: Option<std::sync::Arc<dyn journal::JournalControl>>,
    pub multipart: MultipartLimits,
    /// Not a setting: what the layers above keep per open store (compiled JSON Schemas, for
    /// one), shared by every handle on it.
    pub extensions: Extensions,
    /// Not a setting: set once the engine panicked on damaged data; every handle and reader
    /// of the store shares it.
    pub poison: std::sync::Arc<Poison>,
    /// Opened with `open_read_only` or `salvage`: write transactions are refused.
    pub read_only: bool,
    /// Durable commits record the allocator state (`StoreBuilder::quick_repair`).
    pub quick_repair: bool,
    /// The application's callbacks on changes.
    pub hooks: std::sync::Arc<crate::hooks::Hooks>,
    /// Not a setting: the content backends of locations outside the store file.
    pub remotes: std::sync::Arc<crate::content::Remotes>,
}

/// Values the layers above the engine keep with an open store, one per type, created on first
/// use and shared by every handle on the store. Storage knows nothing of what they are.
#[derive(Clone, Default)]
pub(crate) struct Extensions(
    std::sync::Arc<
        parking_lot::Mutex<
            std::collections::HashMap<
                std::any::TypeId,
                std::sync::Arc<dyn std::any::Any + Send + Sync>,
            >,
        >,
    >,
);

impl Extensions {
    /// The store's value of type `T`, made with `T::default()` the first time it is asked for.
    pub(crate) fn get<T: Default + Send + Sync + 'static>(&self) -> std::sync::Arc<T> {
        let mut map = self.0.lock();
        let value = map
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| std::sync::Arc::new(T::default()));
        std::sync::Arc::clone(value)
            .downcast::<T>()
            .expect("an extension is stored under its own type id")
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions")
            .field("count", &self.0.lock().len())
            .finish()
    }
}

/// A write transaction: every change made through it commits together or not at all.
///
/// Obtained from [`Store::write`]; the closure's `Ok` commits, its `Err` (or a panic) rolls
/// everything back.
pub struct WriteTx<'t> {
    pub(crate) t: WTables<'t>,
    pub(crate) cfg: &'t Config,
    pub(crate) now: Timestamp,
    /// Changes made so far, for the after hooks once the transaction commits.
    pub(crate) events: Vec<crate::hooks::Event>,
}

/// A consistent read snapshot: it sees the store as of the moment it began, whatever commits
/// happen afterwards.
pub struct ReadTx {
    /// The snapshot's tables (they own the snapshot).
    pub(crate) t: RTables,
    pub(crate) cfg: Config,
}

impl ReadTx {
    pub(crate) fn txn(&self) -> &redb::ReadTransaction {
        self.t.txn()
    }

    pub(crate) fn begin(inner: &Inner) -> Result<ReadTx> {
        Ok(ReadTx {
            t: RTables::open(inner.begin_read()?),
            cfg: inner.cfg.clone(),
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadTx {}
    impl Sealed for super::WriteTx<'_> {}
}

/// Which table set a snapshot holds (private plumbing of [`Snapshot`]). A write transaction's
/// tables are named through [`Snapshot::Tables`] rather than here, because their lifetime (that
/// of the transaction) cannot be shortened to the borrow's.
pub(crate) enum ViewRef<'a, W> {
    Read(&'a RTables),
    Write(&'a W),
}

/// Read access shared by [`ReadTx`] and [`WriteTx`]: every query of the higher layers is written
/// once against this trait, so it works both on a snapshot and inside a write transaction (where
/// it sees that transaction's own uncommitted changes). Sealed: only recfiles implements it.
pub trait Snapshot: sealed::Sealed {
    #[doc(hidden)]
    #[allow(private_bounds)]
    type Tables: View;
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn view(&self) -> ViewRef<'_, Self::Tables>;
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn config(&self) -> &Config;
}

impl Snapshot for ReadTx {
    #[allow(private_interfaces)]
    type Tables = RTables;
    #[allow(private_interfaces)]
    fn view(&self) -> ViewRef<'_, RTables> {
        ViewRef::Read(&self.t)
    }
    #[allow(private_interfaces)]
    fn config(&self) -> &Config {
        &self.cfg
    }
}

impl WriteTx<'_> {
    /// Writes the `meta` rows of a new store: this build's format version, its chunk size and
    /// the creation time.
    pub(crate) fn write_meta(&mut self) -> Result<()> {
        let chunk_size = self.cfg.chunk_size as u64;
        let now = self.now;
        let meta = self.t.meta.write()?;
        meta.insert("format_version", enc(&FORMAT_VERSION)?.as_slice())?;
        meta.insert("chunk_size", enc(&chunk_size)?.as_slice())?;
        meta.insert("created", enc(&now)?.as_slice())?;
        Ok(())
    }
}

impl WriteTx<'_> {
    /// Records this build's format version (the last step of an upgrade, in its transaction).
    pub(crate) fn write_format_version(&mut self) -> Result<()> {
        self.t
            .meta
            .write()?
            .insert("format_version", enc(&FORMAT_VERSION)?.as_slice())?;
        Ok(())
    }
}

impl<'t> Snapshot for WriteTx<'t> {
    #[allow(private_interfaces)]
    type Tables = WTables<'t>;
    #[allow(private_interfaces)]
    fn view(&self) -> ViewRef<'_, WTables<'t>> {
        ViewRef::Write(&self.t)
    }
    #[allow(private_interfaces)]
    fn config(&self) -> &Config {
        self.cfg
    }
}

/// Runs `$body` with `$v` bound to whichever concrete table set a [`Snapshot`] holds, so query
/// code is written once, generically over [`View`], and monomorphised for both.
macro_rules! with_view {
    ($snap:expr, |$v:ident| $body:expr) => {{
        match $crate::storage::Snapshot::view($snap) {
            $crate::storage::ViewRef::Read($v) => $body,
            $crate::storage::ViewRef::Write($v) => $body,
        }
    }};
}
pub(crate) use with_view;
