//! Reading a file back: `Read + Seek` over its chunks, verifying each chunk against its hash.

use super::Hash;
use crate::error::{Error, Result};
use crate::ids::FileId;
use redb::{OwnedAccessGuard, ReadOnlyTable};

use std::io::{self, Read, Seek, SeekFrom};

/// Reads one file's bytes from a consistent snapshot. Seeking is free; a read touches only the
/// chunks that hold the requested bytes, and each chunk is checked against its blake3 hash
/// before any of its bytes are returned (unless the store was opened with
/// `StoreBuilder::verify_reads(false)`).
pub struct FileReader {
    file: FileId,
    size: u64,
    verify: bool,
    pos: u64,
    file_chunks: ReadOnlyTable<(u128, u64), Hash>,
    chunks: ReadOnlyTable<Hash, &'static [u8]>,
    // The chunk last read: its offset in the file and its verified bytes, held in place in the
    // engine's page (no copy) for as long as reads stay inside it.
    current: Option<(u64, OwnedAccessGuard<&'static [u8]>)>,
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
        verify: crate::storage::ReadVerification,
    ) -> Result<FileReader> {
        Ok(FileReader {
            file,
            size,
            verify: verify != crate::storage::ReadVerification::Never,
            pos: 0,
            file_chunks: txn.open_table(crate::storage::defs::file_chunks)?,
            chunks: txn.open_table(crate::storage::defs::chunks)?,
            current: None,
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
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let (start, bytes) = self.load_chunk(pos)?;
            let from = (pos - start) as usize;
            let to = ((end - start) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..to]);
            pos = start + to as u64;
        }
        Ok(out)
    }

    /// Makes the chunk that holds byte `pos` current and returns (its offset, its bytes).
    fn load_chunk(&mut self, pos: u64) -> Result<(u64, &[u8])> {
        let hit = matches!(&self.current,
            Some((start, b)) if *start <= pos && pos < *start + b.value().len() as u64);
        if !hit {
            let id = self.file.raw();
            let (start, hash) = match self.file_chunks.range((id, 0)..=(id, pos))?.next_back() {
                Some(e) => {
                    let (k, v) = e?;
                    (k.value().1, v.value())
                }
                None => return Err(self.damaged(pos, "no chunk covers this offset")),
            };
            let bytes = match self.chunks.get_owned(&hash)? {
                Some(g) => g,
                None => return Err(self.damaged(pos, "chunk is missing")),
            };
            if self.verify && blake3::hash(bytes.value()).as_bytes() != &hash {
                return Err(self.damaged(start, "chunk bytes do not match their hash"));
            }
            if pos >= start + bytes.value().len() as u64 {
                return Err(self.damaged(pos, "gap between chunks"));
            }
            self.current = Some((start, bytes));
        }
        match &self.current {
            Some((start, b)) => Ok((*start, b.value())),
            None => Err(self.damaged(pos, "no chunk loaded")),
        }
    }

    fn damaged(&self, offset: u64, what: &str) -> Error {
        Error::Corruption {
            file: Some(self.file),
            detail: format!("file {} at byte {offset}: {what}", self.file),
        }
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
        let pos = self.pos;
        let (start, bytes) = self.load_chunk(pos).map_err(to_io)?;
        let from = (pos - start) as usize;
        let n = (bytes.len() - from).min(buf.len());
        buf[..n].copy_from_slice(&bytes[from..from + n]);
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
