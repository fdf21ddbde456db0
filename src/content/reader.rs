//! Reading a file back: `Read + Seek` and range reads over the spans of its content, wherever
//! it lives (see the `place` module), checked before bytes are returned.

use super::Hash;
use super::place::{Place, Spans, Stored};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::{Config, Poison, catch_engine_panic};
use std::sync::Arc;

use std::io::{self, Read, Seek, SeekFrom};

/// Reads one file's bytes from a consistent snapshot. Seeking is free; a read touches only the
/// chunks that hold the requested bytes.
///
/// What is checked before bytes are returned depends on the store's
/// [`ReadVerification`](crate::ReadVerification): with `Always` every chunk a read loads is
/// hashed first; with `Once` (the default) a chunk is hashed the first time the open store
/// loads it from the file, and later reads of it, by any reader of that store, read the needed
/// bytes straight from the same place in the file; `Never` hashes nothing. Content stored
/// inline (a file that fits in one chunk) is always read through the engine and, unless
/// `Never`, checked against the file's own blake3 each time a reader loads it. Content in
/// another location (docs/S3.md) is checked chunk by chunk on every fetch, whatever the
/// setting. A mismatch is [`Error::Corruption`] (`ErrorKind::InvalidData` through
/// `std::io::Read`).
pub struct FileReader {
    file: FileId,
    size: u64,
    /// The store's engine-panic flag: a damaged page read through this reader stops the store.
    poison: Arc<Poison>,
    pos: u64,
    /// The content, where it lives.
    spans: Spans,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("file", &self.file)
            .field("size", &self.size)
            .field("pos", &self.pos)
            .finish()
    }
}

impl FileReader {
    pub(crate) fn new(
        txn: &redb::ReadTransaction,
        file: FileId,
        size: u64,
        checksum: Hash,
        cfg: &Config,
    ) -> Result<FileReader> {
        let files = txn.open_table(crate::storage::defs::files)?;
        let (inline, chunk_size) = match files.get(file.raw())? {
            Some(g) => {
                let (row, inline) = super::split_file_value(g.value())?;
                (!inline.is_empty(), row.chunk_size)
            }
            None => (false, 0),
        };
        let stored = Stored {
            file,
            size,
            blake3: checksum,
            chunk_size,
            inline,
        };
        let spans = Place::of_file(txn, file)?.open(txn, cfg, &stored, files)?;
        Ok(FileReader {
            file,
            size,
            poison: Arc::clone(&cfg.poison),
            pos: 0,
            spans,
        })
    }

    /// The file being read.
    pub fn file_id(&self) -> FileId {
        self.file
    }

    /// Total size of the file in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Reads `len` bytes starting at `offset` (fewer if the file ends first), with typed errors.
    pub fn read_range(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = offset.saturating_add(len as u64).min(self.size);
        let mut out = vec![0; end.saturating_sub(offset) as usize];
        let n = self.read_range_into(offset, &mut out)?;
        debug_assert_eq!(n, out.len());
        Ok(out)
    }

    /// Fills `buf` with the bytes from `offset` on and returns how many it holds: `buf.len()`,
    /// or fewer if the file ends first. Like [`FileReader::read_range`] without allocating;
    /// the reader's position (for `Read`/`Seek`) is left alone.
    pub fn read_range_into(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let want = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < want {
            done += self.read_at(offset + done as u64, &mut buf[done..want])?;
        }
        Ok(want)
    }

    /// Reads from byte `pos` (< size) of the file into `out` (not empty), as many bytes as
    /// `out` holds or the chunk holding `pos` has left. Returns how many (at least one).
    fn read_at(&mut self, pos: u64, out: &mut [u8]) -> Result<usize> {
        self.poison.check()?;
        catch_engine_panic(|| self.spans.read_at(pos, out))
            .unwrap_or_else(|what| Err(self.poison.stop(what)))
    }
}

fn to_io(e: Error) -> io::Error {
    match e {
        Error::Corruption { .. } => io::Error::new(io::ErrorKind::InvalidData, e),
        other => io::Error::other(other),
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let want = (self.size - self.pos).min(buf.len() as u64) as usize;
        let n = self.read_at(self.pos, &mut buf[..want]).map_err(to_io)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )),
        }
    }
}
