//! Staged uploads: large content is written in batches, each its own short transaction, so a
//! multi-GiB upload never holds the single writer for its whole duration and never sits in
//! memory. Each batch records its chunks under a staging id (`staging`, `staged_chunks`) with
//! their references counted, so nothing is ever unaccounted for. The transaction that creates
//! the object version *adopts* the staged chunks as a file; a multipart part *claims* them. A
//! staging row that nobody adopted or claimed is discarded: by the upload itself on error or
//! panic (its drop guard), or by the next open after a crash.

use super::write::{ChunkSource, StreamLimits};
use super::{
    Digests, FileRow, Hash, find_duplicate, insert_file_row, release_chunk, retain_file,
    store_chunk,
};
use crate::error::Result;
use crate::ids::{FileId, Timestamp};
use crate::storage::{Durability, Store, View, WTables, WriteTx, dec, enc};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::ScopedJoinHandle;

/// Who owns staged chunks: nobody yet (an upload in progress) or a committed multipart part.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum StagingOwner {
    Upload,
    Part { upload: u128, part: u32 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StagingRow {
    pub started: Timestamp,
    pub owner: StagingOwner,
    pub size: u64,
}

/// Content that has been staged and awaits adoption. Dropping it without [`Self::committed`]
/// discards the staged chunks.
pub(crate) struct StagedContent {
    pub id: u128,
    pub size: u64,
    pub digest: (Hash, Option<[u8; 16]>),
    pub chunk_size: u32,
    store: Store,
    committed: bool,
}

impl StagedContent {
    /// Marks the staged chunks as owned by a committed transaction (adopted or claimed).
    pub(crate) fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for StagedContent {
    fn drop(&mut self) {
        if !self.committed {
            let id = self.id;
            // Best effort: if this fails too, the next open removes the rows.
            let _ = self.store.write_with(Durability::Eventual, |tx| {
                discard(&mut tx.t, id).map(|_| ())
            });
        }
    }
}

/// Streams `reader` into staged chunks, computing md5 too when `with_md5` (the store's setting,
/// or a caller who declared an md5 to verify).
pub(crate) fn stage(
    store: &Store,
    reader: &mut dyn Read,
    limits: StreamLimits,
    with_md5: bool,
) -> Result<StagedContent> {
    let cfg = &store.inner.cfg;
    let id = crate::ids::UploadId::new().raw();
    // The staging row goes in with the first batch (below), in the same transaction: staged
    // chunks never exist without it, and a stream that ends or fails before its first batch
    // leaves nothing behind. (It used to be a transaction of its own before the first batch.)
    let row = enc(&StagingRow {
        started: Timestamp::now(),
        owner: StagingOwner::Upload,
        size: 0,
    })?;
    let mut staged = StagedContent {
        id,
        size: 0,
        digest: ([0; 32], None),
        chunk_size: cfg.chunk_size as u32,
        store: store.clone(),
        committed: false,
    };
    let mut src = ChunkSource::new(reader, limits, cfg.chunk_size);
    let per_batch = (cfg.staging_batch_bytes / cfg.chunk_size).max(1);
    // Four threads share the work: this one reads a batch of chunks, then writes it in one
    // short transaction (the stream is never read while the writer is held: a slow client must
    // not block other writers); meanwhile an addresser hashes chunks for their addresses and a
    // digester computes the whole-file digest (blake3, and md5 when on). A chunk's address is
    // computed once, by whichever of the addresser and this thread gets to it first: this
    // thread never waits for the addresser to catch up, and the addresser skips what is done.
    // On two cores the hashing runs beside the writing for a new upload, and all of it in
    // parallel for content already stored (nothing to write). A fourth thread asks the kernel
    // to start writing each batch back. A chunk's buffer is reused once the hashers have let go
    // of it. The channels are bounded by a batch and only this thread sends, so nothing waits
    // in a cycle.
    //
    // A store without a journal (in memory) does all of it on this thread: it has nothing to
    // write back and no disk to wait for, so the helpers only added their start and the
    // hand-off of every chunk (15 % of the CPU of the content fuzzer, which stages bodies of a
    // few KiB in 4 KiB batches).
    struct Pending {
        bytes: Vec<u8>,
        address: OnceLock<Hash>,
    }
    impl Pending {
        fn address(&self) -> Hash {
            *self
                .address
                .get_or_init(|| *blake3::hash(&self.bytes).as_bytes())
        }
    }
    /// Where the chunks go besides the batch: to the helper threads, or hashed right here.
    enum Hashing<'s> {
        Helpers {
            to_addresser: SyncSender<Arc<Pending>>,
            to_digester: SyncSender<Arc<Pending>>,
            digester: ScopedJoinHandle<'s, (Hash, Option<[u8; 16]>)>,
            kick: SyncSender<()>,
        },
        Inline(Box<Digests>),
    }
    let digest = std::thread::scope(|s| -> Result<_> {
        let mut hashing = if store.inner.cfg.journal.is_some() {
            let (to_addresser, addresser_in) = sync_channel::<Arc<Pending>>(per_batch);
            let (to_digester, digester_in) = sync_channel::<Arc<Pending>>(per_batch);
            s.spawn(move || {
                for chunk in addresser_in {
                    chunk.address();
                }
            });
            let digester = s.spawn(move || {
                let mut digests = Digests::new(with_md5);
                for chunk in digester_in {
                    digests.update(&chunk.bytes);
                }
                digests.finish()
            });
            // Starting writeback can block while the disk queue is full; a thread of its own
            // keeps that off the thread that reads and writes. A kick that finds one pending is
            // dropped: the pending one covers everything written so far.
            let (kick, kicks) = sync_channel::<()>(1);
            s.spawn(move || {
                for () in kicks {
                    store.inner.start_writeback();
                }
            });
            Hashing::Helpers {
                to_addresser,
                to_digester,
                digester,
                kick,
            }
        } else {
            Hashing::Inline(Box::new(Digests::new(with_md5)))
        };
        let mut batch: Vec<Arc<Pending>> = Vec::with_capacity(per_batch);
        let mut held: Vec<Arc<Pending>> = Vec::new();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut more = true;
        let mut offset = 0u64;
        while more {
            while more && batch.len() < per_batch {
                let mut buf = spare
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(cfg.chunk_size));
                more = src.next_chunk(&mut buf)?;
                if buf.is_empty() {
                    spare.push(buf);
                } else {
                    let chunk = Arc::new(Pending {
                        bytes: buf,
                        address: OnceLock::new(),
                    });
                    match &mut hashing {
                        Hashing::Helpers {
                            to_addresser,
                            to_digester,
                            ..
                        } => {
                            // These fail only if a hasher panicked; the scope reports that.
                            let _ = to_addresser.send(Arc::clone(&chunk));
                            let _ = to_digester.send(Arc::clone(&chunk));
                        }
                        Hashing::Inline(digests) => digests.update(&chunk.bytes),
                    }
                    batch.push(chunk);
                }
            }
            if batch.is_empty() {
                break;
            }
            store.write_with(Durability::Eventual, |tx| {
                if offset == 0 {
                    tx.t.staging.write()?.insert(id, row.as_slice())?;
                }
                for chunk in &batch {
                    let address = chunk.address();
                    store_chunk(&mut tx.t, &address, &chunk.bytes)?;
                    tx.t.staged_chunks.write()?.insert((id, offset), &address)?;
                    offset += chunk.bytes.len() as u64;
                }
                Ok(())
            })?;
            if let Hashing::Helpers { kick, .. } = &hashing {
                let _ = kick.try_send(());
            }
            held.append(&mut batch);
            for chunk in std::mem::take(&mut held) {
                match Arc::try_unwrap(chunk) {
                    Ok(done) => spare.push(done.bytes),
                    Err(chunk) => held.push(chunk),
                }
            }
        }
        match hashing {
            Hashing::Helpers {
                to_addresser,
                to_digester,
                digester,
                kick,
            } => {
                drop((to_addresser, to_digester, kick));
                match digester.join() {
                    Ok(digest) => Ok(digest),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Hashing::Inline(digests) => Ok(digests.finish()),
        }
    })?;
    staged.size = src.total;
    staged.digest = digest;
    Ok(staged)
}

/// The chunks staged under `id`, in offset order.
pub(crate) fn staged_chunks<T: ReadableTable<(u128, u64), Hash>>(
    table: &T,
    id: u128,
) -> Result<Vec<(u64, Hash)>> {
    let mut out = Vec::new();
    for e in table.range((id, 0)..=(id, u64::MAX))? {
        let (k, v) = e?;
        out.push((k.value().1, v.value()));
    }
    Ok(out)
}

/// Releases the chunks staged under `id` and removes its rows. Returns whether it existed.
pub(crate) fn discard(t: &mut WTables<'_>, id: u128) -> Result<bool> {
    let existed = t.staging.write()?.remove(id)?.is_some();
    let chunks = staged_chunks(t.staged_chunks.read()?, id)?;
    t.staged_chunks
        .write()?
        .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
    for (_, h) in chunks {
        release_chunk(t, &h)?;
    }
    Ok(existed)
}

/// Turns staged content into a file inside the caller's transaction, or, if identical content
/// is already stored, drops the staged copy and returns the existing file. Either way the
/// caller's reference is taken, as [`super::register_file`] does; the file's row comes back as
/// stored.
pub(crate) fn adopt(
    tx: &mut WriteTx<'_>,
    staged: &StagedContent,
    class: &str,
) -> Result<(FileId, FileRow)> {
    let now = tx.now;
    let content = Assembled {
        sources: &[(staged.id, 0)],
        size: staged.size,
        digest: staged.digest,
        chunk_size: staged.chunk_size,
    };
    adopt_assembled(&mut tx.t, &content, class, now)
}

/// Staged content laid end to end: each staging id with the file offset its bytes start at
/// (one source for a staged put, one per part for a multipart upload).
pub(crate) struct Assembled<'a> {
    pub sources: &'a [(u128, u64)],
    pub size: u64,
    pub digest: (Hash, Option<[u8; 16]>),
    pub chunk_size: u32,
}

/// [`adopt`] for content assembled from several staging ids. The file's chunk rows take over
/// the references the staged rows held, so no chunk reference count changes.
pub(crate) fn adopt_assembled(
    t: &mut WTables<'_>,
    content: &Assembled<'_>,
    class: &str,
    now: Timestamp,
) -> Result<(FileId, FileRow)> {
    let (blake3, md5) = content.digest;
    if let Some(existing) = find_duplicate(t, &blake3, content.size, md5)? {
        for (id, _) in content.sources {
            discard(t, *id)?;
        }
        return Ok((existing, retain_file(t, existing, now)?));
    }
    let file = FileId::new();
    move_into_file(t, content.sources, file)?;
    let mut row = FileRow::new(content.size, content.digest, content.chunk_size, class, now);
    row.refcount = 1;
    insert_file_row(t, file, &row, &[])?;
    t.files_by_hash.write()?.insert(&blake3, file.raw())?;
    Ok((file, row))
}

/// Makes the chunks staged under `sources` (each staging id with the file offset its bytes
/// start at) the chunk rows of the existing `file`, removing the staging rows; the file's chunk
/// rows take over the staged rows' references. (A file whose content moves into the store file.)
pub(crate) fn move_into_file(
    t: &mut WTables<'_>,
    sources: &[(u128, u64)],
    file: FileId,
) -> Result<()> {
    for (id, base) in sources {
        for (off, h) in staged_chunks(t.staged_chunks.read()?, *id)? {
            t.file_chunks.write()?.insert((file.raw(), base + off), h)?;
        }
        t.staged_chunks
            .write()?
            .retain_in((*id, 0)..=(*id, u64::MAX), |_, _| false)?;
        t.staging.write()?.remove(*id)?;
    }
    Ok(())
}

/// The parts of a multipart upload, staged in the store file, in order: each part's number,
/// staging id and the offset of its first byte in the assembled content.
pub(crate) struct Parts {
    pub upload: crate::ids::UploadId,
    pub parts: Vec<(u32, u128, u64)>,
    pub size: u64,
}

impl Parts {
    /// Each part's staging id with the offset its bytes start at.
    pub(crate) fn sources(&self) -> Vec<(u128, u64)> {
        self.parts.iter().map(|&(_, id, base)| (id, base)).collect()
    }

    /// The assembled content, read from the snapshot `v`.
    pub(crate) fn reader<'v, V: View>(&self, v: &'v V) -> Result<PartsReader<'v, V>> {
        Ok(PartsReader {
            v,
            upload: self.upload,
            chunks: self.chunks(v)?.into_iter(),
            current: Vec::new(),
            at: 0,
            failed: None,
        })
    }

    /// Hands `f` the assembled content chunk by chunk, as the snapshot `v` stores it (no copy),
    /// each chunk checked against its hash first.
    pub(crate) fn for_each_chunk<V: View>(&self, v: &V, mut f: impl FnMut(&[u8])) -> Result<()> {
        for (n, h) in self.chunks(v)? {
            checked_part_chunk(v, self.upload, n, &h, &mut f)?;
        }
        Ok(())
    }

    /// Each part's number with the hashes of its staged chunks, in order.
    fn chunks<V: View>(&self, v: &V) -> Result<Vec<(u32, Hash)>> {
        let mut chunks = Vec::new();
        for &(n, id, _) in &self.parts {
            for (_, h) in staged_chunks(v.staged_chunks()?, id)? {
                chunks.push((n, h));
            }
        }
        Ok(chunks)
    }
}

/// Finds the chunk of hash `h` (of part `n` of `upload`) in the snapshot `v`, checks its
/// bytes against the hash and hands them to `f`: a lost or altered chunk is corruption.
fn checked_part_chunk<V: View>(
    v: &V,
    upload: crate::ids::UploadId,
    n: u32,
    h: &Hash,
    f: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let stored = match super::chunk_id(v, h)? {
        Some(id) => v.chunks()?.get(id)?,
        None => None,
    };
    let bytes = stored.ok_or_else(|| {
        crate::error::Error::corrupt(format!("part {n} of upload {upload} lost a chunk"))
    })?;
    let bytes = bytes.value();
    if blake3::hash(bytes).as_bytes() != h {
        return Err(crate::error::Error::corrupt(format!(
            "part {n} of upload {upload}: chunk bytes do not match their hash"
        )));
    }
    f(bytes);
    Ok(())
}

/// The bytes of a multipart upload's parts end to end, each chunk checked against its hash
/// before it is handed out. A lost or altered chunk fails the read; [`PartsReader::failure`]
/// then gives the typed error.
pub(crate) struct PartsReader<'v, V: View> {
    v: &'v V,
    upload: crate::ids::UploadId,
    chunks: std::vec::IntoIter<(u32, Hash)>,
    current: Vec<u8>,
    at: usize,
    failed: Option<crate::error::Error>,
}

impl<V: View> PartsReader<'_, V> {
    /// The error behind a failed read, if the parts (not the reader's caller) were at fault.
    pub(crate) fn failure(&mut self) -> Option<crate::error::Error> {
        self.failed.take()
    }
}

impl<V: View> Read for PartsReader<'_, V> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some((n, h)) = self.chunks.next() else {
                return Ok(0);
            };
            let current = &mut self.current;
            current.clear();
            self.at = 0;
            let loaded = checked_part_chunk(self.v, self.upload, n, &h, &mut |bytes| {
                current.extend_from_slice(bytes)
            });
            if let Err(e) = loaded {
                let text = e.to_string();
                self.failed = Some(e);
                return Err(std::io::Error::other(text));
            }
        }
        let n = super::place::copy_from(&self.current, self.at, buf);
        self.at += n;
        Ok(n)
    }
}

/// Gives staged content to a multipart part.
pub(crate) fn claim_for_part(
    t: &mut WTables<'_>,
    staged: &StagedContent,
    upload: u128,
    part: u32,
) -> Result<()> {
    let row = StagingRow {
        started: Timestamp::now(),
        owner: StagingOwner::Part { upload, part },
        size: staged.size,
    };
    t.staging
        .write()?
        .insert(staged.id, enc(&row)?.as_slice())?;
    Ok(())
}

/// Removes every staging row no committed part owns: uploads that a crash or an abandoned
/// process left behind. Runs at every open. Returns how many were removed.
pub fn clear_abandoned_staging(tx: &mut WriteTx<'_>) -> Result<usize> {
    let mut abandoned = Vec::new();
    for e in tx.t.staging.read()?.iter()? {
        let (k, v) = e?;
        let row: StagingRow = dec(v.value(), "staging")?;
        let keep = match row.owner {
            StagingOwner::Upload => false,
            StagingOwner::Part { upload, part } => {
                tx.t.parts.read()?.get((upload, part))?.is_some()
            }
        };
        if !keep {
            abandoned.push(k.value());
        }
    }
    // Staged chunks without a staging row are orphans too: stores written before the row went
    // in with the first batch could commit a batch whose row never committed.
    let mut orphan_ids = Vec::new();
    for e in tx.t.staged_chunks.read()?.iter()? {
        let id = e?.0.value().0;
        if orphan_ids.last() != Some(&id) && tx.t.staging.read()?.get(id)?.is_none() {
            orphan_ids.push(id);
        }
    }
    abandoned.extend(orphan_ids);
    abandoned.sort_unstable();
    abandoned.dedup();
    for id in &abandoned {
        discard(&mut tx.t, *id)?;
    }
    Ok(abandoned.len())
}
