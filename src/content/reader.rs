//! Reading a file back: `Read + Seek` and range reads over its chunks, checked against their
//! hashes as the store's `ReadVerification` says.

use super::Hash;
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::{Config, Direct, DirectRead, Poison, ReadVerification, catch_engine_panic};
use redb::{OwnedAccessGuard, ReadOnlyTable};
use std::sync::Arc;

use std::io::{self, Read, Seek, SeekFrom};

/// Reads one file's bytes from a consistent snapshot. Seeking is free; a read touches only the
/// chunks that hold the requested bytes.
///
/// What is checked before bytes are returned depends on the store's [`ReadVerification`]:
/// with `Always` every chunk a read loads is hashed first; with `Once` (the default) a chunk is
/// hashed the first time the open store loads it from the file, and later reads of it, by any
/// reader of that store, read the needed bytes straight from the same place in the file;
/// `Never` hashes nothing. Content stored inline (a file that fits in one chunk) is always
/// read through the engine and, unless `Never`, checked against the file's own blake3 each
/// time a reader loads it. A mismatch is [`Error::Corruption`] (`ErrorKind::InvalidData`
/// through `std::io::Read`).
pub struct FileReader {
    file: FileId,
    size: u64,
    mode: ReadVerification,
    direct: Option<Arc<Direct>>,
    /// The store's engine-panic flag: a damaged page read through this reader stops the store.
    poison: Arc<Poison>,
    /// The file's blake3, which inline content is checked against.
    checksum: Hash,
    /// Whether the content is stored inline, after the file's row, rather than as chunks.
    inline: bool,
    pos: u64,
    files: ReadOnlyTable<u128, &'static [u8]>,
    file_chunks: ReadOnlyTable<(u128, u64), Hash>,
    chunk_index: ReadOnlyTable<Hash, (u128, u64)>,
    chunks: ReadOnlyTable<u128, &'static [u8]>,
    /// Where the content lives when not in the store file: the location's backend.
    remote: Option<Remote>,
    // The chunk last loaded through the engine: its offset in the file and its checked bytes,
    // held in place in the engine's page (no copy) for as long as reads stay inside it. For
    // inline content, the guard holds the file's row too, and the bytes start after it.
    current: Option<Current>,
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
        let remote = match txn.open_table(crate::storage::defs::remote_files) {
            Ok(t) => t.get(file.raw())?.map(|g| g.value().to_string()),
            // A store of format 4 opened read-only: all of its content is in the file.
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let remote = match remote {
            Some(location) => {
                let locations = txn.open_table(crate::storage::defs::locations)?;
                let uri = match locations.get(location.as_str())? {
                    Some(g) => {
                        crate::storage::dec::<crate::files::rows::LocationRow>(
                            g.value(),
                            "locations",
                        )?
                        .uri
                    }
                    None => return Err(Error::LocationNotFound { name: location }),
                };
                match cfg.remotes.backend(&location, &uri)? {
                    Some(backend) => Some(Remote {
                        backend,
                        key: super::remote::content_key(&checksum),
                        location,
                        chunk_size: u64::from(chunk_size.max(1)),
                        next: 0,
                        ahead: None,
                    }),
                    None => {
                        return Err(Error::corrupt(format!(
                            "file {file} is recorded in location {location:?}, whose URI \
                             {uri:?} keeps content in the store file"
                        )));
                    }
                }
            }
            None => None,
        };
        Ok(FileReader {
            file,
            size,
            mode: cfg.verify_reads,
            direct: cfg.direct.clone(),
            poison: Arc::clone(&cfg.poison),
            checksum,
            inline,
            remote,
            pos: 0,
            files,
            file_chunks: txn.open_table(crate::storage::defs::file_chunks)?,
            chunk_index: txn.open_table(crate::storage::defs::chunk_index)?,
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
        catch_engine_panic(|| self.read_at_contained(pos, out))
            .unwrap_or_else(|what| Err(self.poison.stop(what)))
    }

    fn read_at_contained(&mut self, pos: u64, out: &mut [u8]) -> Result<usize> {
        if let Some(c) = &self.current {
            let (start, b) = (c.start, c.bytes());
            if start <= pos && pos < start + b.len() as u64 {
                return Ok(copy_from(b, (pos - start) as usize, out));
            }
        }
        if self.inline {
            let bytes = self.load_inline()?;
            if pos >= bytes.len() as u64 {
                return Err(self.damaged(pos, "inline content is shorter than the file"));
            }
            return Ok(copy_from(bytes, pos as usize, out));
        }
        let (start, hash) = self.chunk_at(pos)?;
        if self.remote.is_some() {
            let bytes = self.load_remote(start, hash, pos + out.len() as u64)?;
            if pos >= start + bytes.len() as u64 {
                return Err(self.damaged(pos, "gap between chunks"));
            }
            return Ok(copy_from(bytes, (pos - start) as usize, out));
        }
        if self.mode != ReadVerification::Always
            && let Some(direct) = &self.direct
        {
            match direct.read(&hash, pos - start, out)? {
                DirectRead::Done(n) => return Ok(n),
                DirectRead::Beyond => return Err(self.damaged(pos, "gap between chunks")),
                DirectRead::Unknown => {}
            }
        }
        let bytes = self.load(start, hash)?;
        if pos >= start + bytes.len() as u64 {
            return Err(self.damaged(pos, "gap between chunks"));
        }
        let n = copy_from(bytes, (pos - start) as usize, out);
        Ok(n)
    }

    /// The offset and hash of the chunk that holds byte `pos`.
    fn chunk_at(&mut self, pos: u64) -> Result<(u64, Hash)> {
        let id = self.file.raw();
        let found = match self.file_chunks.range((id, 0)..=(id, pos))?.next_back() {
            Some(e) => {
                let (k, v) = e?;
                (k.value().1, v.value())
            }
            None => return Err(self.damaged(pos, "no chunk covers this offset")),
        };
        Ok(found)
    }

    /// Loads chunk `hash` (at `start` in the file) through the engine, checks it as the store's
    /// [`ReadVerification`] says, makes it current and returns its bytes.
    fn load(&mut self, start: u64, hash: Hash) -> Result<&[u8]> {
        self.current = None;
        let learn = self.mode != ReadVerification::Always;
        let Some(id) = self.chunk_index.get(&hash)?.map(|g| g.value().0) else {
            return Err(self.damaged(start, "chunk is missing"));
        };
        let watch = self.direct.as_deref().filter(|_| learn).map(Direct::watch);
        let bytes = match self.chunks.get_owned(id)? {
            Some(g) => g,
            None => return Err(self.damaged(start, "chunk is missing")),
        };
        let located = watch.as_ref().and_then(|w| w.find(bytes.value()));
        if self.mode != ReadVerification::Never && blake3::hash(bytes.value()).as_bytes() != &hash {
            if let Some(d) = &self.direct {
                d.forget(&hash);
            }
            return Err(self.damaged(start, "chunk bytes do not match their hash"));
        }
        if let (Some(w), Some(loc), Some(d)) = (&watch, located, &self.direct)
            && d.confirms(loc, bytes.value())
        {
            w.learn(hash, loc);
        }
        drop(watch);
        let current = self.current.insert(Current {
            start,
            held: Held::Engine(bytes),
            skip: 0,
        });
        Ok(current.bytes())
    }

    /// Fetches, in one ranged request, the chunks from the one at `start` (with hash `hash`)
    /// to the one holding byte `want_end - 1` (at most [`REMOTE_SPAN`] bytes), checks each
    /// against its hash whatever the store's [`ReadVerification`] (the bytes come over the
    /// network, from a store others can write to), makes them current and returns them. A
    /// missing object, or bytes that do not match, are corruption of this file.
    fn load_remote(&mut self, start: u64, hash: Hash, want_end: u64) -> Result<&[u8]> {
        self.current = None;
        let prefetched = self
            .remote
            .as_mut()
            .and_then(|r| r.ahead.take())
            .filter(|a| a.start == start);
        let remote = self
            .remote
            .as_ref()
            .expect("called for remote content only");
        let piece = remote.chunk_size;
        // A read that starts where the last one ended is taken for a sequential reader: it gets
        // a whole span whatever its buffer, and the next span is requested meanwhile.
        let sequential = start > 0 && start == remote.next;
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
            None => remote.backend.get_range(&remote.key, start..end),
        };
        if sequential && end < self.size {
            let next_end = (end + span.div_ceil(piece) * piece).min(self.size);
            let (backend, key) = (std::sync::Arc::clone(&remote.backend), remote.key.clone());
            let ahead = std::thread::Builder::new()
                .name("recfiles-read-ahead".into())
                .spawn(move || backend.get_range(&key, end..next_end));
            if let Ok(bytes) = ahead {
                let remote = self
                    .remote
                    .as_mut()
                    .expect("called for remote content only");
                remote.ahead = Some(Ahead {
                    start: end,
                    end: next_end,
                    bytes,
                });
            }
        }
        let remote = self
            .remote
            .as_mut()
            .expect("called for remote content only");
        remote.next = end;
        let remote = self
            .remote
            .as_ref()
            .expect("called for remote content only");
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let what = format!(
                    "object {} is missing from location {:?}",
                    remote.key, remote.location
                );
                return Err(self.damaged(start, &what));
            }
            Err(e) => return Err(super::remote::backend_error(&remote.location, e)),
        };
        let mismatch = |at: u64| {
            format!(
                "object {} in location {:?} does not match the chunk hash at byte {at}",
                remote.key, remote.location
            )
        };
        if bytes.len() as u64 != end - start {
            let what = mismatch(start);
            return Err(self.damaged(start, &what));
        }
        for (i, (at, h)) in hashes.iter().enumerate() {
            let next = hashes.get(i + 1).map_or(end, |n| n.0);
            let (a, b) = ((at - start) as usize, (next - start) as usize);
            if next != (at + piece).min(self.size) || blake3::hash(&bytes[a..b]).as_bytes() != h {
                let what = mismatch(*at);
                return Err(self.damaged(*at, &what));
            }
        }
        let current = self.current.insert(Current {
            start,
            held: Held::Owned(bytes),
            skip: 0,
        });
        Ok(current.bytes())
    }

    /// Loads the file's inline content through the engine, checks it against the file's
    /// blake3 (unless `Never`), makes it current and returns it.
    fn load_inline(&mut self) -> Result<&[u8]> {
        self.current = None;
        let Some(value) = self.files.get_owned(self.file.raw())? else {
            return Err(self.damaged(0, "inline content is missing"));
        };
        let inline = super::split_file_value(value.value())?.1;
        if inline.is_empty() {
            return Err(self.damaged(0, "inline content is missing"));
        }
        if self.mode != ReadVerification::Never && blake3::hash(inline).as_bytes() != &self.checksum
        {
            return Err(self.damaged(0, "inline content does not match the file's hash"));
        }
        let skip = value.value().len() - inline.len();
        let current = self.current.insert(Current {
            start: 0,
            held: Held::Engine(value),
            skip,
        });
        Ok(current.bytes())
    }

    fn damaged(&self, offset: u64, what: &str) -> Error {
        Error::Corruption {
            file: Some(self.file),
            detail: format!("file {} at byte {offset}: {what}", self.file),
        }
    }
}

/// The most bytes of content in another location one request fetches for a read (a
/// sequential reader's large buffer is served in requests this big).
const REMOTE_SPAN: u64 = 8 * 1024 * 1024;

/// Bytes loaded and kept for the reads that follow.
struct Current {
    /// Offset in the file of the first byte.
    start: u64,
    held: Held,
    /// Bytes of the stored value before the content (the file row, for inline content).
    skip: usize,
}

/// Where loaded bytes are held: in the engine's page, or (fetched from another location) in
/// memory of the reader's own.
enum Held {
    Engine(OwnedAccessGuard<&'static [u8]>),
    Owned(Vec<u8>),
}

/// A file's content in another location.
struct Remote {
    backend: std::sync::Arc<dyn super::ContentBackend>,
    /// The object's key there.
    key: String,
    location: String,
    /// Bytes per chunk hash (the last chunk may be shorter).
    chunk_size: u64,
    /// Where the last fetch ended (a read starting there is sequential).
    next: u64,
    /// The span after it, being fetched for a sequential reader.
    ahead: Option<Ahead>,
}

/// A span of the object requested ahead of the reader: its bytes are checked like any other
/// when (and if) the reader gets to them.
struct Ahead {
    start: u64,
    end: u64,
    bytes: std::thread::JoinHandle<io::Result<Vec<u8>>>,
}

impl Current {
    fn bytes(&self) -> &[u8] {
        let all = match &self.held {
            Held::Engine(g) => g.value(),
            Held::Owned(v) => v.as_slice(),
        };
        &all[self.skip..]
    }
}

/// Copies `bytes[from..]` into `out`, as much as fits; returns how much.
fn copy_from(bytes: &[u8], from: usize, out: &mut [u8]) -> usize {
    let n = (bytes.len() - from).min(out.len());
    out[..n].copy_from_slice(&bytes[from..from + n]);
    n
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
