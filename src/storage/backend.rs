//! Pluggable byte storage under the store file (journal and database): the [`Backend`]
//! contract, memory, and the adapter that presents a backend to redb. The test machinery (a
//! simulated disk, fault injection) is in `testing`.

use redb::StorageBackend;
use std::fmt::Debug;
use std::io;

/// Where the store file's bytes live. The contract is redb's: reads past the end fail, new
/// space from `set_len` reads as zeros, and `sync_data` makes every completed write durable.
// The method set is redb's storage contract; an `is_empty` would mean nothing to it.
#[allow(clippy::len_without_is_empty)]
pub trait Backend: Debug + Send + Sync + 'static {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the storage holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `out` from `offset`.
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()>;
    /// Grows (zero-filled) or shrinks the storage.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes completed writes durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Writes `data` at `offset`.
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

/// A store held in memory (tests, scratch work). It is lost when the store is dropped.
#[derive(Debug, Default)]
pub struct MemoryBackend(redb::backends::InMemoryBackend);

impl MemoryBackend {
    /// An empty memory backend.
    pub fn new() -> MemoryBackend {
        MemoryBackend(redb::backends::InMemoryBackend::new())
    }
}

impl Backend for MemoryBackend {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
}

/// Presents a [`Backend`] to redb.
#[derive(Debug)]
pub(crate) struct Adapter(pub(crate) Box<dyn Backend>);

impl StorageBackend for Adapter {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
}
