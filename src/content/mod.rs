//! Content: how are a file's bytes stored, deduplicated, read back and verified?
//!
//! A file is a list of chunks, each known by its blake3 hash and stored once however many
//! files contain it (under a time-ordered id, found through `chunk_index`); a file that fits
//! in one chunk is stored inline instead, right after its row in `files` (no chunk, count or
//! chunk list, and no row of its own). Files are deduplicated whole by the
//! blake3 of their content, except inline files of at most 16 KiB (see `UNINDEXED_MAX`).
//! Small content
//! is written inside the caller's transaction; large content is *staged* in short transactions
//! of its own and adopted by the transaction that creates the object version (see
//! the `staging` module). Readers check chunks against their hash as the store's
//! `ReadVerification` says (by default the first time the open store reads each), so damaged
//! bytes surface as a typed corruption error rather than as data.
//!
//! A location whose URI is `s3://…` (or that the builder gave a [`ContentBackend`]) keeps its
//! files' content in an object store instead, one object per content named by its blake3,
//! with only the rows (and the chunk hashes reads are checked against) in the store file: see
//! the `remote` module and docs/S3.md.
//!
//! Where one file's content lives is a `place::Place`: the store file (`embedded`) or a
//! location's backend (`remote`, `remote_read`), each an implementation of the crate's
//! content trait, `place::ContentPlace`, to which `Place` hands every call with a `match` so
//! the store file's path stays monomorphic. Reading (`Place::open`, giving the spans a
//! [`FileReader`] reads), releasing (`Place::release`) and putting content go through it: a
//! put outside a transaction, a multipart completion and a move stage the bytes at their
//! place (`Place::stage`, `Place::stage_parts`, `Place::stage_copy`, giving a
//! `place::Staged`) and the committing transaction adopts them (`Staged::adopt`, or
//! `Staged::adopt_as` for the file that moves); a put inside the caller's transaction writes
//! them there (`Place::write_in`).

mod embedded;
mod migrate;
mod place;
mod reader;
pub(crate) mod remote;
mod remote_read;
#[cfg(feature = "s3")]
mod s3;
pub(crate) mod staging;
mod verify;
pub(crate) mod write;

pub use migrate::GcReport;
pub(crate) use place::{Place, Staged};
pub use reader::FileReader;
pub(crate) use remote::{AfterCommit, Remotes};
pub use remote::{ContentBackend, ContentUpload};
#[cfg(feature = "s3")]
pub use s3::{ObjectStoreBackend, S3Settings};
pub(crate) use staging::clear_abandoned_staging;
pub use verify::{FixityProgress, FixityReport, FixitySchedule};
pub(crate) use write::{StreamLimits, write_stream};

use crate::error::{Error, Result};
use crate::ids::{FileId, Timestamp};
use crate::storage::{Snapshot, View, WTables, dec_head, enc, with_view};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

pub(crate) type Hash = [u8; 32];

/// The digests of a content: its blake3, and its md5 when computed.
pub(crate) type ContentDigest = (Hash, Option<[u8; 16]>);

/// The stored row of a file instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct FileRow {
    pub size: u64,
    pub blake3: Hash,
    pub md5: Option<[u8; 16]>,
    pub readable: bool,
    pub writable: bool,
    pub last_check: Option<bool>,
    pub last_check_at: Option<Timestamp>,
    pub chunk_size: u32,
    /// Object versions and multipart uploads that point at this file.
    pub refcount: u64,
    pub storage_class: String,
    pub created: Timestamp,
    pub updated: Timestamp,
}

impl FileRow {
    /// A complete, readable file with no reference yet (the caller takes the first).
    pub(crate) fn new(
        size: u64,
        (blake3, md5): (Hash, Option<[u8; 16]>),
        chunk_size: u32,
        storage_class: &str,
        now: Timestamp,
    ) -> FileRow {
        FileRow {
            size,
            blake3,
            md5,
            readable: true,
            writable: false,
            last_check: None,
            last_check_at: None,
            chunk_size,
            refcount: 0,
            storage_class: storage_class.to_string(),
            created: now,
            updated: now,
        }
    }
}

/// A file instance: the stored bytes that one or more object versions point to (Invenio's
/// `FileInstance`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileInstance {
    /// The file's id.
    pub id: FileId,
    /// Size in bytes.
    pub size: u64,
    /// `blake3:<64 hex digits>`, always present.
    pub checksum: String,
    /// `md5:<32 hex digits>`, present when the store computes md5.
    pub md5: Option<String>,
    /// Whether the bytes can be read (false while a multipart upload is open).
    pub readable: bool,
    /// Whether the bytes may still change (false once content is complete).
    pub writable: bool,
    /// Result of the last fixity check; `None` when never checked or inconclusive.
    pub last_check: Option<bool>,
    /// When the last fixity check ran.
    pub last_check_at: Option<Timestamp>,
    /// Storage class, inherited from the bucket the content was first uploaded to.
    pub storage_class: String,
    /// Payload bytes per chunk this file was written with.
    pub chunk_size: u32,
    /// How many object versions and multipart uploads share this file.
    pub references: u64,
    /// When the file was stored.
    pub created: Timestamp,
    /// When the row last changed.
    pub updated: Timestamp,
}

impl FileInstance {
    pub(crate) fn from_row(id: FileId, r: &FileRow) -> FileInstance {
        FileInstance {
            id,
            size: r.size,
            checksum: blake3_text(&r.blake3),
            md5: r.md5.map(|m| format!("md5:{}", hex(&m))),
            readable: r.readable,
            writable: r.writable,
            last_check: r.last_check,
            last_check_at: r.last_check_at,
            storage_class: r.storage_class.clone(),
            chunk_size: r.chunk_size,
            references: r.refcount,
            created: r.created,
            updated: r.updated,
        }
    }
}

/// `blake3:<hex>` of a digest. Listings make one per file, so it is written into one buffer
/// and copied into a string of the right size.
pub(crate) fn blake3_text(h: &Hash) -> String {
    const PREFIX: &[u8] = b"blake3:";
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; PREFIX.len() + 64];
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    for (pair, b) in buf[PREFIX.len()..].chunks_exact_mut(2).zip(h) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    std::str::from_utf8(&buf)
        .expect("the prefix and hex digits are ASCII")
        .to_owned()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// The largest inline content kept out of the dedup index (since format 6). An entry of
/// `files_by_hash` sits at a random place in its tree, so each new one costs a leaf (and, in a
/// small durable commit, the whole path from the root) written; a duplicate of at most 16 KiB
/// saves no more than that. Larger inline files, chunked files and files in other locations
/// stay deduplicated.
pub(crate) const UNINDEXED_MAX: u64 = 16 * 1024;

/// Whether a file of `size` bytes with this inline content is kept out of `files_by_hash`
/// (inline, and at most [`UNINDEXED_MAX`] bytes).
pub(crate) fn unindexed(size: u64, inline: &[u8]) -> bool {
    !inline.is_empty() && size <= UNINDEXED_MAX
}

/// Brings the content tables of a store of format `from` to this build's format, inside the
/// transaction that records the new version (so a crash leaves either format, never a mix).
/// Format 5 kept every file in `files_by_hash`; format 6 keeps small inline files out.
pub(crate) fn upgrade_format(t: &mut WTables<'_>, from: u32) -> Result<()> {
    if from > 5 {
        return Ok(());
    }
    let mut gone = Vec::new();
    {
        let files = t.files.read()?;
        for e in t.files_by_hash.read()?.iter()? {
            let (k, v) = e?;
            if let Some(g) = files.get(v.value())? {
                let (row, inline) = split_file_value(g.value())?;
                if unindexed(row.size, inline) {
                    gone.push(k.value());
                }
            }
        }
    }
    let index = t.files_by_hash.write()?;
    for k in &gone {
        index.remove(k)?;
    }
    Ok(())
}

/// A `files` value: the file's row, then its inline content (none for chunked content).
pub(crate) fn split_file_value(value: &[u8]) -> Result<(FileRow, &[u8])> {
    let (row, used) = dec_head::<FileRow>(value, "files")?;
    Ok((row, &value[used..]))
}

pub(crate) fn get_file_row<V: View>(v: &V, id: FileId) -> Result<Option<FileRow>> {
    match v.files()?.get(id.raw())? {
        Some(g) => Ok(Some(split_file_value(g.value())?.0)),
        None => Ok(None),
    }
}

/// Stores a file's row followed by its inline content.
pub(crate) fn insert_file_row(
    t: &mut WTables<'_>,
    id: FileId,
    row: &FileRow,
    inline: &[u8],
) -> Result<()> {
    let mut value = enc(row)?;
    value.extend_from_slice(inline);
    t.files.write()?.insert(id.raw(), value.as_slice())?;
    Ok(())
}

/// A file's row and a copy of its inline content (empty for chunked content).
fn read_file_value(t: &WTables<'_>, id: FileId) -> Result<(FileRow, Vec<u8>)> {
    let files = t.files.read()?;
    let g = files
        .get(id.raw())?
        .ok_or(Error::FileNotFound { file: id })?;
    let (row, inline) = split_file_value(g.value())?;
    Ok((row, inline.to_vec()))
}

/// Rewrites a file's row with `change` applied, keeping its inline content; returns the new
/// row.
pub(crate) fn update_file_row(
    t: &mut WTables<'_>,
    id: FileId,
    change: impl FnOnce(&mut FileRow),
) -> Result<FileRow> {
    let (mut row, inline) = read_file_value(t, id)?;
    change(&mut row);
    insert_file_row(t, id, &row, &inline)?;
    Ok(row)
}

/// Adds one reference (a version or an upload now points at the file).
pub(crate) fn retain_file(t: &mut WTables<'_>, id: FileId, now: Timestamp) -> Result<FileRow> {
    update_file_row(t, id, |row| {
        row.refcount += 1;
        row.updated = now;
    })
}

/// Drops one reference; the last one frees the file row (with its inline content), its chunk
/// list and what it held at its place (see [`place::Place::release`]), in the same
/// transaction.
pub(crate) fn release_file(t: &mut WTables<'_>, id: FileId) -> Result<()> {
    let (mut row, inline) = read_file_value(t, id)?;
    if row.refcount > 1 {
        row.refcount -= 1;
        return insert_file_row(t, id, &row, &inline);
    }
    t.files.write()?.remove(id.raw())?;
    let place = place::Place::of_file_in(t, id)?;
    if !unindexed(row.size, &inline) {
        let key = remote::dedup_key(place.location(), &row.blake3);
        if t.files_by_hash.read()?.get(&key)?.map(|g| g.value()) == Some(id.raw()) {
            t.files_by_hash.write()?.remove(&key)?;
        }
    }
    let hashes = take_chunk_rows(t, id)?;
    place.release(t, id, &row.blake3, &hashes)
}

/// Removes a file's `file_chunks` rows and returns the hashes they held, in order.
pub(crate) fn take_chunk_rows(t: &mut WTables<'_>, id: FileId) -> Result<Vec<Hash>> {
    let mut hashes = Vec::new();
    for e in t
        .file_chunks
        .read()?
        .range((id.raw(), 0)..=(id.raw(), u64::MAX))?
    {
        hashes.push(e?.1.value());
    }
    t.file_chunks
        .write()?
        .retain_in((id.raw(), 0)..=(id.raw(), u64::MAX), |_, _| false)?;
    Ok(hashes)
}

/// Takes one reference to a chunk, storing its bytes if no chunk with that hash exists yet.
/// Every row that names a chunk (`file_chunks`, `staged_chunks`) takes its reference this way
/// and gives it back with [`release_chunk`].
pub(crate) fn store_chunk(t: &mut WTables<'_>, hash: &Hash, bytes: &[u8]) -> Result<()> {
    let known = t.chunk_index.read()?.get(hash)?.map(|g| g.value());
    match known {
        Some((id, refs)) => {
            t.chunk_index.write()?.insert(hash, (id, refs + 1))?;
        }
        None => {
            let id = crate::ids::fresh_v7().as_u128();
            if t.chunks.write()?.insert(id, bytes)?.is_some() {
                // Ids are unique by construction; never overwrite stored bytes if that fails.
                return Err(Error::corrupt(format!("chunk id {id:x} is already in use")));
            }
            t.chunk_index.write()?.insert(hash, (id, 1))?;
        }
    }
    Ok(())
}

pub(crate) fn release_chunk(t: &mut WTables<'_>, hash: &Hash) -> Result<()> {
    let known = t.chunk_index.read()?.get(hash)?.map(|g| g.value());
    match known {
        Some((id, refs)) if refs <= 1 => {
            t.chunk_index.write()?.remove(hash)?;
            t.chunks.write()?.remove(id)?;
        }
        Some((id, refs)) => {
            t.chunk_index.write()?.insert(hash, (id, refs - 1))?;
        }
        None => {}
    }
    Ok(())
}

/// The id under which the chunk with this hash is stored, if it is.
pub(crate) fn chunk_id<V: View>(v: &V, hash: &Hash) -> Result<Option<u128>> {
    Ok(v.chunk_index()?.get(hash)?.map(|g| g.value().0))
}

/// Looks up a file instance.
pub(crate) fn file_instance<S: Snapshot + ?Sized>(
    s: &S,
    id: FileId,
) -> Result<Option<FileInstance>> {
    let row = with_view!(s, |v| get_file_row(v, id))?;
    Ok(row.map(|r| FileInstance::from_row(id, &r)))
}

/// Incremental checksums of one stream: blake3 always, md5 when asked.
pub(crate) struct Digests {
    blake3: blake3::Hasher,
    md5: Option<md5::Md5>,
}

impl Digests {
    pub(crate) fn new(with_md5: bool) -> Digests {
        use md5::Digest;
        Digests {
            blake3: blake3::Hasher::new(),
            md5: with_md5.then(md5::Md5::new),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        use md5::Digest;
        self.blake3.update(bytes);
        if let Some(m) = &mut self.md5 {
            m.update(bytes);
        }
    }

    pub(crate) fn finish(self) -> (Hash, Option<[u8; 16]>) {
        use md5::Digest;
        (
            *self.blake3.finalize().as_bytes(),
            self.md5.map(|m| m.finalize().into()),
        )
    }
}

/// The stored file with exactly this content (same blake3 and size), if any. It learns the
/// md5 when it did not have one yet.
pub(crate) fn find_duplicate(
    t: &mut WTables<'_>,
    blake3: &Hash,
    size: u64,
    md5: Option<[u8; 16]>,
) -> Result<Option<FileId>> {
    let existing = t
        .files_by_hash
        .read()?
        .get(blake3)?
        .map(|g| FileId::from_raw(g.value()));
    match existing {
        Some(id) => same_content(t, id, size, md5),
        None => Ok(None),
    }
}

/// `id`, the file the dedup index names for a hash, if it also has `size` (so it holds the
/// same content); it learns the md5 when it did not have one yet.
pub(crate) fn same_content(
    t: &mut WTables<'_>,
    id: FileId,
    size: u64,
    md5: Option<[u8; 16]>,
) -> Result<Option<FileId>> {
    match get_file_row(t, id)? {
        Some(row) if row.size == size => {
            if row.md5.is_none() && md5.is_some() {
                update_file_row(t, id, |row| row.md5 = md5)?;
            }
            Ok(Some(id))
        }
        _ => Ok(None),
    }
}

/// Freshly written content, before it becomes a file.
pub(crate) enum Written<'a> {
    /// (offset, hash) pairs already stored with [`store_chunk`], each holding the reference
    /// the new file's chunk row takes over.
    Chunks(&'a [(u64, Hash)]),
    /// The whole content of a file that fits in one chunk, not stored yet.
    Inline(&'a [u8]),
}

/// Registers freshly written content as a file, or finds the identical file already stored
/// (then chunk references are given back and inline bytes are not written). Either way the
/// caller's reference is taken: a new file is stored once, with a count of one, rather than
/// stored and then read back and rewritten to count the reference. Returns the file id and its
/// row as stored.
pub(crate) fn register_file(
    t: &mut WTables<'_>,
    size: u64,
    digest: (Hash, Option<[u8; 16]>),
    chunk_size: u32,
    content: Written<'_>,
    storage_class: &str,
    now: Timestamp,
) -> Result<(FileId, FileRow)> {
    let (blake3, md5) = digest;
    let id = FileId::new();
    let small = matches!(content, Written::Inline(bytes) if unindexed(size, bytes));
    // The dedup index is keyed by hash, so its entries sit at random places in the tree: the
    // new file claims its hash and learns in the same descent whether a file had it (new
    // content is the common case); a duplicate gives the entry back to the file it found.
    // Small inline content is not deduplicated at all (see `UNINDEXED_MAX`).
    let previous = match small {
        true => None,
        false => t
            .files_by_hash
            .write()?
            .insert(&blake3, id.raw())?
            .map(|g| FileId::from_raw(g.value())),
    };
    if let Some(existing) = previous
        && let Some(existing) = same_content(t, existing, size, md5)?
    {
        t.files_by_hash.write()?.insert(&blake3, existing.raw())?;
        if let Written::Chunks(chunks) = content {
            // All shared with the existing file.
            for (_, h) in chunks {
                release_chunk(t, h)?;
            }
        }
        return Ok((existing, retain_file(t, existing, now)?));
    }
    let inline = match content {
        Written::Chunks(chunks) => {
            for (off, h) in chunks {
                t.file_chunks.write()?.insert((id.raw(), *off), h)?;
            }
            &[][..]
        }
        Written::Inline(bytes) => bytes,
    };
    let mut row = FileRow::new(size, (blake3, md5), chunk_size, storage_class, now);
    row.refcount = 1;
    insert_file_row(t, id, &row, inline)?;
    Ok((id, row))
}

#[cfg(test)]
mod tests {
    use super::{blake3_text, hex};

    #[test]
    fn blake3_text_is_the_prefixed_hex_digest() {
        for h in [[0u8; 32], [0xff; 32], *blake3::hash(b"recfiles").as_bytes()] {
            assert_eq!(blake3_text(&h), format!("blake3:{}", hex(&h)));
        }
    }
}
