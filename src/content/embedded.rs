//! Content in the store file: the embedded place ([`Embedded`], a [`ContentPlace`]), and its
//! content read back ([`EmbeddedSpans`]).
//!
//! Putting content here stages it in chunks, in short transactions of their own
//! ([`super::staging`]), or writes it inside the caller's transaction ([`super::write`]); a
//! multipart upload's parts are already staged chunks, which completion only hashes end to
//! end and adopts.
//!
//! Chunks are checked against their hash as the store's [`ReadVerification`] says: with
//! `Always` every chunk a read loads is hashed first; with `Once` (the default) a chunk is
//! hashed the first time the open store loads it from the file, and later reads of it, by any
//! reader of that store, read the needed bytes straight from the same place in the file
//! (`storage::direct`); `Never` hashes nothing. Inline content (a file that fits in one chunk)
//! is always read through the engine and, unless `Never`, checked against the file's own
//! blake3 each time a reader loads it.

use super::place::{
    ContentPlace, Counting, InStoreParts, Spans, Staged, Stored, changed_on_the_way, chunk_at,
    copy_from, damaged,
};
use super::staging::{self, Parts};
use super::{ContentDigest, Digests, FileRow, Hash, StreamLimits, write_stream};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::{
    Config, Direct, DirectRead, ReadTx, ReadVerification, Store, WTables, WriteTx,
};
use redb::{OwnedAccessGuard, ReadOnlyTable, ReadTransaction};
use std::io::Read;
use std::sync::Arc;

/// The store file as a place of content: chunks (stored once, counted) or inline bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded;

impl ContentPlace for Embedded {
    #[inline]
    fn open(
        &self,
        txn: &ReadTransaction,
        cfg: &Config,
        file: &Stored,
        files: ReadOnlyTable<u128, &'static [u8]>,
    ) -> Result<Spans> {
        Ok(Spans::Embedded(EmbeddedSpans::open(txn, cfg, file, files)?))
    }

    #[inline]
    fn release(
        &self,
        t: &mut WTables<'_>,
        _file: FileId,
        _blake3: &Hash,
        hashes: &[Hash],
    ) -> Result<()> {
        for h in hashes {
            super::release_chunk(t, h)?;
        }
        Ok(())
    }

    /// Content up to the store's staging batch is only held in memory ([`Staged::Held`]),
    /// for the transaction that creates the version to write, as one transaction always has.
    #[inline]
    fn stage(
        &self,
        store: &Store,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
    ) -> Result<Staged> {
        let batch = store.inner.cfg.staging_batch_bytes as u64;
        let head = read_up_to(reader, batch + 1)?;
        if head.len() as u64 <= batch {
            return Ok(Staged::Held(head));
        }
        let mut chained = std::io::Cursor::new(head).chain(reader);
        let staged = staging::stage(store, &mut chained, limits, with_md5)?;
        // On a refusal the staged chunks are discarded when `staged` drops.
        check(&staged.digest)?;
        Ok(Staged::Embedded(staged))
    }

    /// The parts are staged chunks already: they are only hashed end to end where they are
    /// stored (each chunk checked, nothing copied); the adoption makes them the file's.
    fn stage_parts(
        &self,
        store: &Store,
        snap: &ReadTx,
        parts: &Parts,
        with_md5: bool,
    ) -> Result<Staged> {
        let mut digests = Digests::new(with_md5);
        parts.for_each_chunk(&snap.t, |bytes| digests.update(bytes))?;
        Ok(Staged::Parts(Box::new(InStoreParts {
            sources: parts.sources(),
            size: parts.size,
            digest: digests.finish(),
            chunk_size: store.inner.cfg.chunk_size as u32,
        })))
    }

    /// Staged in chunks whatever the size (a move never holds the content in memory).
    fn stage_copy(
        &self,
        store: &Store,
        (file, row): (FileId, &FileRow),
        source: &mut dyn Read,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Staged> {
        let limits = StreamLimits {
            declared: Some(row.size),
            cap: None,
        };
        let mut counted = Counting::new(source, row.size, progress);
        let staged = staging::stage(store, &mut counted, limits, row.md5.is_some())?;
        if staged.digest.0 != row.blake3 {
            return Err(changed_on_the_way(file));
        }
        Ok(Staged::Embedded(staged))
    }

    #[inline]
    fn write_in(
        &self,
        tx: &mut WriteTx<'_>,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
        class: &str,
    ) -> Result<(FileId, FileRow)> {
        write_stream(
            &mut tx.t,
            tx.cfg.chunk_size,
            with_md5,
            reader,
            limits,
            check,
            class,
            tx.now,
        )
    }
}

/// Reads at most `limit` bytes, growing the buffer only as data arrives (a small file costs a
/// small buffer).
fn read_up_to(reader: &mut dyn Read, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    super::write::Clamped(reader)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|source| Error::UploadStream { source })?;
    Ok(out)
}

/// A file's content in the store file, open for reading.
pub(crate) struct EmbeddedSpans {
    file: FileId,
    mode: ReadVerification,
    direct: Option<Arc<Direct>>,
    /// The file's blake3, which inline content is checked against.
    checksum: Hash,
    /// Whether the content is stored inline, after the file's row, rather than as chunks.
    inline: bool,
    files: ReadOnlyTable<u128, &'static [u8]>,
    file_chunks: ReadOnlyTable<(u128, u64), Hash>,
    chunk_index: ReadOnlyTable<Hash, (u128, u64)>,
    chunks: ReadOnlyTable<u128, &'static [u8]>,
    // The chunk last loaded through the engine: its offset in the file and its checked bytes,
    // held in place in the engine's page (no copy) for as long as reads stay inside it. For
    // inline content, the guard holds the file's row too, and the bytes start after it.
    current: Option<Current>,
}

/// Bytes loaded through the engine and kept for the reads that follow.
struct Current {
    /// Offset in the file of the first byte.
    start: u64,
    held: OwnedAccessGuard<&'static [u8]>,
    /// Bytes of the stored value before the content (the file row, for inline content).
    skip: usize,
}

impl Current {
    fn bytes(&self) -> &[u8] {
        &self.held.value()[self.skip..]
    }
}

impl EmbeddedSpans {
    /// Opens `file`'s content from the snapshot `txn`, whose `files` table is open already.
    #[inline]
    pub(crate) fn open(
        txn: &ReadTransaction,
        cfg: &Config,
        file: &Stored,
        files: ReadOnlyTable<u128, &'static [u8]>,
    ) -> Result<EmbeddedSpans> {
        Ok(EmbeddedSpans {
            file: file.file,
            mode: cfg.verify_reads,
            direct: cfg.direct.clone(),
            checksum: file.blake3,
            inline: file.inline,
            files,
            file_chunks: txn.open_table(crate::storage::defs::file_chunks)?,
            chunk_index: txn.open_table(crate::storage::defs::chunk_index)?,
            chunks: txn.open_table(crate::storage::defs::chunks)?,
            current: None,
        })
    }

    /// See [`super::place::Spans::read_at`].
    #[inline]
    pub(crate) fn read_at(&mut self, pos: u64, out: &mut [u8]) -> Result<usize> {
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
        let (start, hash) = chunk_at(&self.file_chunks, self.file, pos)?;
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
        Ok(copy_from(bytes, (pos - start) as usize, out))
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
            held: bytes,
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
            held: value,
            skip,
        });
        Ok(current.bytes())
    }

    fn damaged(&self, offset: u64, what: &str) -> Error {
        damaged(self.file, offset, what)
    }
}
