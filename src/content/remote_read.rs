//! Content in another location, read back: the remote place's [`super::place::Spans`].
//!
//! A read fetches, in one ranged request, the whole chunks it touches (each `chunk_size`
//! bytes of the object, whose blake3 the store file keeps in `file_chunks`) and checks every
//! one against its hash before a byte is returned, whatever the store's `ReadVerification`:
//! the bytes come over the network, from a store others can write to. A missing object, or
//! bytes that do not match, are corruption of the file; an unreachable service is
//! `Error::ContentBackend`. A reader that reads on from where its last request ended gets
//! spans of [`REMOTE_SPAN`] bytes, the next one requested while it consumes the current one.

use super::place::{Stored, chunk_at, copy_from, damaged};
use super::{ContentBackend, Hash};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::Config;
use redb::{ReadOnlyTable, ReadTransaction};
use std::io;
use std::sync::Arc;

/// The most bytes of content in another location one request fetches for a read (a
/// sequential reader's large buffer is served in requests this big).
const REMOTE_SPAN: u64 = 8 * 1024 * 1024;

/// A file's content in another location, open for reading.
pub(crate) struct RemoteSpans {
    file: FileId,
    size: u64,
    file_chunks: ReadOnlyTable<(u128, u64), Hash>,
    backend: Arc<dyn ContentBackend>,
    /// The object's key there.
    key: String,
    location: String,
    /// Bytes per chunk hash (the last chunk may be shorter).
    chunk_size: u64,
    /// Where the last fetch ended (a read starting there is sequential).
    next: u64,
    /// The span after it, being fetched for a sequential reader.
    ahead: Option<Ahead>,
    /// The checked bytes of the last fetch and the offset of the first.
    current: Option<(u64, Vec<u8>)>,
}

/// A span of the object requested ahead of the reader: its bytes are checked like any other
/// when (and if) the reader gets to them.
struct Ahead {
    start: u64,
    end: u64,
    bytes: std::thread::JoinHandle<io::Result<Vec<u8>>>,
}

impl RemoteSpans {
    /// Opens `file`'s content, an object of `location`, from the snapshot `txn`.
    pub(crate) fn open(
        txn: &ReadTransaction,
        cfg: &Config,
        file: &Stored,
        location: String,
    ) -> Result<RemoteSpans> {
        let locations = txn.open_table(crate::storage::defs::locations)?;
        let uri = match locations.get(location.as_str())? {
            Some(g) => {
                crate::storage::dec::<crate::files::rows::LocationRow>(g.value(), "locations")?.uri
            }
            None => return Err(Error::LocationNotFound { name: location }),
        };
        let Some(backend) = cfg.remotes.backend(&location, &uri)? else {
            return Err(Error::corrupt(format!(
                "file {} is recorded in location {location:?}, whose URI {uri:?} keeps \
                 content in the store file",
                file.file
            )));
        };
        Ok(RemoteSpans {
            file: file.file,
            size: file.size,
            file_chunks: txn.open_table(crate::storage::defs::file_chunks)?,
            backend,
            key: super::remote::content_key(&file.blake3),
            location,
            chunk_size: u64::from(file.chunk_size.max(1)),
            next: 0,
            ahead: None,
            current: None,
        })
    }

    /// See [`super::place::Spans::read_at`].
    pub(crate) fn read_at(&mut self, pos: u64, out: &mut [u8]) -> Result<usize> {
        if let Some((start, b)) = &self.current
            && *start <= pos
            && pos < start + b.len() as u64
        {
            return Ok(copy_from(b, (pos - start) as usize, out));
        }
        let (start, hash) = chunk_at(&self.file_chunks, self.file, pos)?;
        let bytes = self.load(start, hash, pos + out.len() as u64)?;
        if pos >= start + bytes.len() as u64 {
            return Err(self.damaged(pos, "gap between chunks"));
        }
        Ok(copy_from(bytes, (pos - start) as usize, out))
    }

    /// Fetches, in one ranged request, the chunks from the one at `start` (with hash `hash`)
    /// to the one holding byte `want_end - 1` (at most [`REMOTE_SPAN`] bytes), checks each
    /// against its hash, makes them current and returns them.
    fn load(&mut self, start: u64, hash: Hash, want_end: u64) -> Result<&[u8]> {
        self.current = None;
        let prefetched = self.ahead.take().filter(|a| a.start == start);
        let piece = self.chunk_size;
        // A read that starts where the last one ended is taken for a sequential reader: it gets
        // a whole span whatever its buffer, and the next span is requested meanwhile.
        let sequential = start > 0 && start == self.next;
        let span = REMOTE_SPAN.max(piece);
        let span_end = match sequential {
            true => start + span,
            false => want_end.min(start + span),
        };
        let span_end = span_end.max(start + 1).min(self.size);
        // Whole chunks only: each is checked against its own hash.
        let end = match &prefetched {
            Some(a) => a.end,
            None => (start + (span_end - start).div_ceil(piece) * piece).min(self.size),
        };
        let id = self.file.raw();
        let mut hashes = vec![(start, hash)];
        if end > start + piece {
            for e in self.file_chunks.range((id, start + 1)..(id, end))? {
                let (k, v) = e?;
                hashes.push((k.value().1, v.value()));
            }
        }
        let fetched = match prefetched {
            Some(a) => a
                .bytes
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the read-ahead thread panicked"))),
            None => self.backend.get_range(&self.key, start..end),
        };
        if sequential && end < self.size {
            let next_end = (end + span.div_ceil(piece) * piece).min(self.size);
            let (backend, key) = (Arc::clone(&self.backend), self.key.clone());
            let ahead = std::thread::Builder::new()
                .name("recfiles-read-ahead".into())
                .spawn(move || backend.get_range(&key, end..next_end));
            if let Ok(bytes) = ahead {
                self.ahead = Some(Ahead {
                    start: end,
                    end: next_end,
                    bytes,
                });
            }
        }
        self.next = end;
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let what = format!(
                    "object {} is missing from location {:?}",
                    self.key, self.location
                );
                return Err(self.damaged(start, &what));
            }
            Err(e) => return Err(super::remote::backend_error(&self.location, e)),
        };
        let mismatch = |at: u64| {
            format!(
                "object {} in location {:?} does not match the chunk hash at byte {at}",
                self.key, self.location
            )
        };
        if bytes.len() as u64 != end - start {
            return Err(self.damaged(start, &mismatch(start)));
        }
        for (i, (at, h)) in hashes.iter().enumerate() {
            let next = hashes.get(i + 1).map_or(end, |n| n.0);
            let (a, b) = ((at - start) as usize, (next - start) as usize);
            if next != (at + piece).min(self.size) || blake3::hash(&bytes[a..b]).as_bytes() != h {
                return Err(self.damaged(*at, &mismatch(*at)));
            }
        }
        let (_, bytes) = self.current.insert((start, bytes));
        Ok(bytes)
    }

    fn damaged(&self, offset: u64, what: &str) -> Error {
        damaged(self.file, offset, what)
    }
}
