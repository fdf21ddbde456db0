//! Opening a store as the layers above the engine need it. `storage` opens the file, replays
//! its journal, starts the engine and checks the format; this module then makes the store
//! ready: a new store gets its `meta` rows and its default location, a store of an older
//! format is upgraded, and every store opened
//! for writing loses what a dead process left half-uploaded, all in one transaction, before
//! anyone can see the store. It sits above `storage`, `files` and `content`, so `storage`
//! needs neither.

use crate::error::Result;
use crate::storage::{Backend, Found, SalvageReport, Store, StoreBuilder, naming};
use std::path::Path;

impl StoreBuilder {
    /// Opens the store file at `path`, creating it if it does not exist.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        let (store, found) = self.open_file(path)?;
        ready(store, found).map_err(naming(path))
    }

    /// Opens the store file at `path` for reading only; the file is never written. A store
    /// that was not closed cleanly opens too: the journal's replay and the engine's repair
    /// happen in memory. Every write is refused with [`Error::ReadOnly`](crate::Error::ReadOnly).
    /// The file is locked shared, so the open fails while a process has it open for writing
    /// (and a writer's open fails while it is open read-only). Staged uploads a crashed writer
    /// left are not cleared, so [`Store::check`] may report them.
    pub fn open_read_only(self, path: impl AsRef<Path>) -> Result<Store> {
        self.open_without_writing(path.as_ref(), false)
            .map(|(store, _)| store)
    }

    /// Opens, for reading only like [`StoreBuilder::open_read_only`], a store whose journal is
    /// damaged so that [`StoreBuilder::open`] refuses it: the journal is replayed up to the
    /// damage and the commits after it are left out; with both copies of the journal's header
    /// damaged, the database is found by its magic number and opened as its last checkpoint
    /// left it. The report says what was left out. Copy out what is needed (or export it)
    /// and keep the damaged file: nothing in it is changed.
    pub fn salvage(self, path: impl AsRef<Path>) -> Result<(Store, SalvageReport)> {
        self.open_without_writing(path.as_ref(), true)
    }

    /// Opens a store kept in memory only (no journal: nothing is ever synced).
    pub fn in_memory(self) -> Result<Store> {
        let (store, found) = self.open_memory()?;
        ready(store, found)
    }

    /// Opens (or initialises) a store on a backend of your own (the `testing` feature has a
    /// simulated disk and a fault-injecting one).
    /// The backend holds the whole store file, journal included.
    pub fn open_backend(self, backend: impl Backend) -> Result<Store> {
        let (store, found) = self.open_on_backend(backend)?;
        ready(store, found)
    }
}

impl Store {
    /// Opens (creating if needed) the store file at `path` with the default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        StoreBuilder::new().open(path)
    }

    /// A store kept in memory, with the default settings.
    pub fn in_memory() -> Result<Store> {
        StoreBuilder::new().in_memory()
    }
}

/// Makes an engine-level open store ready for use (see the module's documentation), then
/// tells the journal that its creation, if it was one, is over.
fn ready(store: Store, found: Found) -> Result<Store> {
    if store.is_read_only() {
        return Ok(store);
    }
    store.write(|tx| {
        tx.t.create_all()?;
        match found {
            Found::Nothing => {
                tx.write_meta()?;
                crate::files::create_default_location(tx)?;
            }
            // One transaction: a crash leaves the old format or the new one, never a mix.
            Found::Older(from) => {
                crate::content::upgrade_format(&mut tx.t, from)?;
                tx.write_format_version()?;
            }
            Found::Store => {}
        }
        crate::content::clear_abandoned_staging(tx).map(|_| ())
    })?;
    store.finish_creation()?;
    Ok(store)
}

#[cfg(any(test, feature = "testing"))]
impl crate::storage::WriteTx<'_> {
    /// Removes everything the store holds (records and their revisions, PIDs, schemas, buckets,
    /// versions, tags, files, content, multipart uploads, staged content, locations) and puts
    /// back the default location, leaving the store as it was just after creation. The store's
    /// own settings (format version, chunk size, creation time) stay. Like any change it
    /// commits with the transaction, and then frees the pages in the usual way.
    ///
    /// Meant for tests and fuzzers that run many short cases on one store: clearing costs one
    /// transaction, opening a new store several and closing it more. Uploads in progress on
    /// other threads lose their staged content and fail when they finish. Test machinery: only
    /// with the `testing` feature.
    pub fn clear(&mut self) -> Result<()> {
        self.t.clear_all_but_meta()?;
        crate::files::create_default_location(self)
    }
}
