//! Where a file's content lives, and the one interface every place offers: the store file
//! (chunks or inline bytes, [`super::embedded`]) or an object of a location's backend
//! ([`super::remote`]).
//!
//! A [`Place`] is found from the file's rows (`remote_files` names a location; no row means
//! the store file). What a place does is a `match` over this enum, never a trait object, so the
//! embedded path (the hot one) stays monomorphic: no dynamic call and no allocation is added
//! to it.
//!
//! - reading: [`Place::open`] gives the file's [`Spans`], which `FileReader` asks for the
//!   bytes at an offset;
//! - releasing: [`Place::release`] gives back what a file held at its place once its last
//!   reference goes (or its content moves away), inside that transaction: the references of
//!   its embedded chunks, or its use of an object (the object's last user queues its delete
//!   for after the commit);
//! - putting an object's content: [`Place::stage`] streams it into the place outside any
//!   transaction (chunks staged in the store file, or the object uploaded under its content
//!   address; small embedded content is only held in memory) and the transaction that creates
//!   the version calls [`Staged::adopt`] (the staged chunks become the file's, or the object is
//!   registered; identical content already there is deduplicated either way); dropped without
//!   adoption, staged chunks are discarded. [`Place::write_in`] does the same inside the
//!   caller's transaction (`WriteTx::put_object`).
//!
//! Not behind `Place` yet: multipart completion and migration, which choose between staging
//! chunks and `remote::upload_stream` themselves (docs/S3.md, *The content trait*).

use super::embedded::EmbeddedSpans;
use super::remote::{REMOTE_CHUNK, UploadPass, Uploaded, register_remote, upload_stream};
use super::remote_read::RemoteSpans;
use super::staging::{self, StagedContent};
use super::{ContentBackend, ContentDigest, FileRow, Hash, StreamLimits, write_stream};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::{Config, Store, View, WTables, WriteTx};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable};
use std::io::Read;

/// Where a file's content lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the store file: chunks named in `file_chunks`, or inline after the file's row.
    Embedded,
    /// An object of the backend of the location of this name.
    Remote(String),
}

impl Place {
    /// The place of `file`'s content as of the snapshot `txn` (a store of format 4 opened
    /// read-only has no `remote_files` table: all of its content is embedded).
    #[inline]
    pub(crate) fn of_file(txn: &ReadTransaction, file: FileId) -> Result<Place> {
        match txn.open_table(crate::storage::defs::remote_files) {
            Ok(t) => Ok(match t.get(file.raw())? {
                Some(g) => Place::Remote(g.value().to_string()),
                None => Place::Embedded,
            }),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(Place::Embedded),
            Err(e) => Err(e.into()),
        }
    }

    /// The place of `file`'s content, inside a write transaction.
    pub(crate) fn of_file_in(t: &WTables<'_>, file: FileId) -> Result<Place> {
        Ok(match super::remote::file_location(t, file)? {
            Some(location) => Place::Remote(location),
            None => Place::Embedded,
        })
    }

    /// The location name, for content in another location.
    pub(crate) fn location(&self) -> Option<&str> {
        match self {
            Place::Embedded => None,
            Place::Remote(name) => Some(name),
        }
    }

    /// Opens the content of `file` for reading from the snapshot `txn` (`files`: its `files`
    /// table, already open to find the file's row).
    #[inline]
    pub(crate) fn open(
        self,
        txn: &ReadTransaction,
        cfg: &Config,
        file: &Stored,
        files: ReadOnlyTable<u128, &'static [u8]>,
    ) -> Result<Spans> {
        match self {
            Place::Embedded => Ok(Spans::Embedded(EmbeddedSpans::open(txn, cfg, file, files)?)),
            Place::Remote(location) => {
                Ok(Spans::Remote(RemoteSpans::open(txn, cfg, file, location)?))
            }
        }
    }

    /// Gives back what `file` (of blake3 `blake3`) held at this place, once its `file_chunks`
    /// rows (`hashes`, see [`super::take_chunk_rows`]) are gone: the references of embedded
    /// chunks, or the file's use of its object (whose delete, for the last user, follows the
    /// commit). Inline content goes with the file's row, which the caller removes or rewrites.
    pub(crate) fn release(
        &self,
        t: &mut WTables<'_>,
        file: FileId,
        blake3: &Hash,
        hashes: &[Hash],
    ) -> Result<()> {
        match self {
            Place::Embedded => {
                for h in hashes {
                    super::release_chunk(t, h)?;
                }
                Ok(())
            }
            Place::Remote(location) => super::remote::detach(t, file, location, blake3),
        }
    }
}

/// What opening a file's content needs to know of it, from its row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    pub file: FileId,
    pub size: u64,
    /// The blake3 of the whole content (inline content is checked against it).
    pub blake3: Hash,
    /// Bytes per chunk hash in `file_chunks`.
    pub chunk_size: u32,
    /// Whether the content is stored inline, after the file's row.
    pub inline: bool,
}

/// A file's content opened for reading: the bytes at any offset, checked before they are
/// returned. Dispatch is a `match` (see the module's documentation).
// The embedded variant (its open tables) is the larger and the common one: boxing it would add
// an allocation to every open of a reader of the store file, which this enum exists to avoid.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Spans {
    /// Chunks or inline bytes in the store file.
    Embedded(EmbeddedSpans),
    /// An object in another location, fetched by ranged requests.
    Remote(RemoteSpans),
}

impl Spans {
    /// Copies bytes from offset `pos` (< the file's size) into `out` (not empty): as many as
    /// `out` holds or the loaded span has left, at least one. Returns how many.
    #[inline]
    pub(crate) fn read_at(&mut self, pos: u64, out: &mut [u8]) -> Result<usize> {
        match self {
            Spans::Embedded(s) => s.read_at(pos, out),
            Spans::Remote(s) => s.read_at(pos, out),
        }
    }
}

/// The offset and hash of the chunk of `file` that holds byte `pos`, from its `file_chunks`
/// rows.
#[inline]
pub(crate) fn chunk_at(
    file_chunks: &redb::ReadOnlyTable<(u128, u64), Hash>,
    file: FileId,
    pos: u64,
) -> Result<(u64, Hash)> {
    let id = file.raw();
    match file_chunks.range((id, 0)..=(id, pos))?.next_back() {
        Some(e) => {
            let (k, v) = e?;
            Ok((k.value().1, v.value()))
        }
        None => Err(damaged(file, pos, "no chunk covers this offset")),
    }
}

/// The corruption error for `file` at byte `offset`.
pub(crate) fn damaged(file: FileId, offset: u64, what: &str) -> Error {
    Error::Corruption {
        file: Some(file),
        detail: format!("file {file} at byte {offset}: {what}"),
    }
}

/// Copies `bytes[from..]` into `out`, as much as fits; returns how much.
pub(crate) fn copy_from(bytes: &[u8], from: usize, out: &mut [u8]) -> usize {
    let n = (bytes.len() - from).min(out.len());
    out[..n].copy_from_slice(&bytes[from..from + n]);
    n
}

/// Content streamed into its place ahead of the transaction that makes it a file
/// ([`Place::stage`]), waiting for that transaction to [`Staged::adopt`] it. Dropped without
/// [`Staged::committed`] (the transaction failed or was refused), chunks staged in the store
/// file are discarded; an object uploaded to a location stays unreferenced until
/// `Store::gc_location` collects it, as it always has.
pub(crate) enum Staged {
    /// Embedded content no larger than the staging batch, held in memory: the transaction
    /// writes it itself (`WriteTx::put_object`), as one transaction always has.
    Held(Vec<u8>),
    /// Chunks staged in the store file under a staging id (their own short transactions).
    Embedded(StagedContent),
    /// An object uploaded to a location under its content address; `pass` (held until the
    /// adopting transaction commits) keeps a collection of the location from taking it first.
    // `up` is boxed to keep the enum small: moving it around the embedded put would
    // otherwise copy the uploaded variant's size each time.
    Remote {
        location: String,
        up: Box<Uploaded>,
        pass: Option<UploadPass>,
    },
}

impl Place {
    /// Streams `reader` into this place outside any transaction, within `limits`, computing
    /// md5 too when `with_md5`. `check` sees the digests once the last byte is in (for a
    /// location, before the object is made visible under its content address); a refusal
    /// discards what was staged. `backend` is the location's, for [`Place::Remote`].
    /// Embedded content up to the store's staging batch comes back [`Staged::Held`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn stage(
        &self,
        store: &Store,
        backend: Option<&dyn ContentBackend>,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
    ) -> Result<Staged> {
        match (self, backend) {
            (Place::Embedded, _) => {
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
            (Place::Remote(location), Some(backend)) => {
                let pass = store.inner.cfg.remotes.upload_pass();
                let up = upload_stream(
                    backend,
                    location,
                    reader,
                    limits,
                    with_md5,
                    REMOTE_CHUNK,
                    check,
                    &|h| {
                        store.read(|r| {
                            Ok(r.t
                                .remote_objects()?
                                .get((location.as_str(), *h))?
                                .is_some())
                        })
                    },
                )?;
                Ok(Staged::Remote {
                    location: location.clone(),
                    up: Box::new(up),
                    pass: Some(pass),
                })
            }
            (Place::Remote(location), None) => Err(no_backend(location)),
        }
    }

    /// Streams `reader` into this place as a file, inside the caller's transaction (the
    /// content commits or rolls back with it): the store file writes its chunks or inline bytes
    /// there; a location gets the object first, which this transaction then refers to (holding
    /// the upload's pass until it is over). Identical content already at the place is
    /// deduplicated either way; the caller's reference is taken.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_in(
        &self,
        tx: &mut WriteTx<'_>,
        backend: Option<&dyn ContentBackend>,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
        class: &str,
    ) -> Result<(FileId, FileRow)> {
        match (self, backend) {
            (Place::Embedded, _) => write_stream(
                &mut tx.t,
                tx.cfg.chunk_size,
                with_md5,
                reader,
                limits,
                check,
                class,
                tx.now,
            ),
            (Place::Remote(location), Some(backend)) => {
                let pass = tx.cfg.remotes.upload_pass();
                let up = upload_stream(
                    backend,
                    location,
                    reader,
                    limits,
                    with_md5,
                    REMOTE_CHUNK,
                    check,
                    &|h| {
                        Ok(tx
                            .t
                            .remote_objects
                            .read()?
                            .get((location.as_str(), *h))?
                            .is_some())
                    },
                )?;
                let mut staged = Staged::Remote {
                    location: location.clone(),
                    up: Box::new(up),
                    pass: Some(pass),
                };
                staged.adopt(tx, class)
            }
            (Place::Remote(location), None) => Err(no_backend(location)),
        }
    }
}

impl Staged {
    /// The content's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Staged::Held(bytes) => bytes.len() as u64,
            Staged::Embedded(s) => s.size,
            Staged::Remote { up, .. } => up.size,
        }
    }

    /// Makes the staged content a file inside the transaction that creates its object
    /// version, or finds the identical file already stored at the place (dedup by blake3, as
    /// [`super::register_file`] does) and drops the staged copy; either way the caller's
    /// reference is taken. Staged chunks become the file's; an uploaded object is registered
    /// and attached, the upload's pass released after the commit. [`Staged::Held`] content is
    /// written by the caller (`WriteTx::put_object`), never adopted.
    pub(crate) fn adopt(&mut self, tx: &mut WriteTx<'_>, class: &str) -> Result<(FileId, FileRow)> {
        match self {
            Staged::Held(_) => Err(Error::InvalidOperation {
                reason: "held content is written, not adopted",
            }),
            Staged::Embedded(staged) => staging::adopt(tx, staged, class),
            Staged::Remote { location, up, pass } => {
                if let Some(pass) = pass.take() {
                    tx.t.after_commit.passes.push(pass);
                }
                register_remote(&mut tx.t, location, up, class, tx.now)
            }
        }
    }

    /// Marks the content as adopted by a committed transaction: staged chunks are kept.
    pub(crate) fn committed(self) {
        if let Staged::Embedded(staged) = self {
            staged.committed();
        }
    }
}

fn no_backend(location: &str) -> Error {
    Error::ContentBackend {
        location: location.to_string(),
        detail: "the location has no backend in this store".to_string(),
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
