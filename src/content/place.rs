//! Where a file's content lives, and the one interface every place offers
//! ([`ContentPlace`]): the store file (chunks or inline bytes, [`super::embedded::Embedded`])
//! or an object of a location's backend ([`super::remote::Remote`]).
//!
//! A [`Place`] is found from the file's rows (`remote_files` names a location; no row means
//! the store file) or from a bucket's location ([`Place::of_location`]). Each of its methods is
//! a `match` handing the call to one of the two implementations, never a trait object, so the
//! embedded path (the hot one) stays monomorphic: no dynamic call and no allocation is added
//! to it. Callers never branch on the place themselves:
//!
//! - reading: [`Place::open`] gives the file's [`Spans`], which `FileReader` asks for the
//!   bytes at an offset;
//! - releasing: [`Place::release`] gives back what a file held at its place once its last
//!   reference goes (or its content moves away), inside that transaction: the references of
//!   its embedded chunks, or its use of an object (the object's last user queues its delete
//!   for after the commit);
//! - putting content: outside any transaction, the bytes are staged at the place — an
//!   object's content by [`Place::stage`] (small embedded content is only held in memory), a
//!   multipart upload's parts by [`Place::stage_parts`], a moving file's content by
//!   [`Place::stage_copy`] — as chunks staged in the store file or an object uploaded under
//!   its content address; then the committing transaction adopts them, as a new file
//!   ([`Staged::adopt`]: identical content already at the place is deduplicated) or as the
//!   content of the file that moves ([`Staged::adopt_as`], after [`Place::leave`] took it out
//!   of its old place). Dropped without adoption, staged chunks are discarded; an uploaded
//!   object is left for `Store::gc_location`. [`Place::write_in`] writes inside the caller's
//!   transaction (`WriteTx::put_object`).

use super::embedded::{Embedded, EmbeddedSpans};
use super::remote::{
    Remote, UploadPass, Uploaded, attach, dedup_key, put_chunk_rows, register_remote,
};
use super::remote_read::RemoteSpans;
use super::staging::{self, Assembled, Parts, StagedContent};
use super::{ContentBackend, ContentDigest, FileRow, Hash, StreamLimits, insert_file_row};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::{Config, ReadTx, Store, View, WTables, WriteTx};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable};
use std::io::Read;

/// What every place of content does, the store file's ([`Embedded`]) and a location's
/// ([`Remote`]). The contract, for each implementation:
///
/// - Content is whole before anything refers to it: what is staged or uploaded outside a
///   transaction becomes a file only in the transaction that adopts it, and a failure before
///   that commit leaves no reference (staged chunks are discarded when their [`Staged`]
///   drops; an uploaded object stays unreferenced, for `Store::gc_location`).
/// - Declared checksums are checked once the last byte is in, before the content can be
///   adopted (for a location, before the object is visible under its content address).
/// - Identical content (same blake3 and size) already at the place is deduplicated: one
///   file per content and place (small inline files aside), one object per content and
///   location.
/// - Whatever a file held at the place is given back in the transaction that drops it or
///   moves it away; an object is deleted only after that commit.
pub(crate) trait ContentPlace {
    /// Opens the content of `file` for reading from the snapshot `txn` (`files`: its `files`
    /// table, already open to find the file's row).
    fn open(
        &self,
        txn: &ReadTransaction,
        cfg: &Config,
        file: &Stored,
        files: ReadOnlyTable<u128, &'static [u8]>,
    ) -> Result<Spans>;

    /// Gives back what `file` (of blake3 `blake3`) held here, once its `file_chunks` rows
    /// (`hashes`, see [`super::take_chunk_rows`]) are gone: the references of its chunks, or
    /// its use of its object. Inline content goes with the file's row, which the caller
    /// removes or rewrites.
    fn release(
        &self,
        t: &mut WTables<'_>,
        file: FileId,
        blake3: &Hash,
        hashes: &[Hash],
    ) -> Result<()>;

    /// Streams `reader` here outside any transaction, within `limits`, computing md5 too when
    /// `with_md5`; `check` sees the digests once the last byte is in, and a refusal discards
    /// what was staged.
    fn stage(
        &self,
        store: &Store,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
    ) -> Result<Staged>;

    /// Stages a multipart upload's `parts` (read from the snapshot `snap`, each chunk checked)
    /// here as one content, outside any transaction. The parts stay as they are until the
    /// adopting transaction commits.
    fn stage_parts(
        &self,
        store: &Store,
        snap: &ReadTx,
        parts: &Parts,
        with_md5: bool,
    ) -> Result<Staged>;

    /// Copies the content of a file (its id and row; its bytes from `source`) here for a move,
    /// outside any transaction, reporting the bytes done and the total to `progress`, and
    /// checks it against the file's blake3.
    fn stage_copy(
        &self,
        store: &Store,
        file: (FileId, &FileRow),
        source: &mut dyn Read,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Staged>;

    /// Streams `reader` here as a file inside the caller's transaction (the content commits or
    /// rolls back with it, deduplicated as an adoption is); the caller's reference is taken.
    #[allow(clippy::too_many_arguments)]
    fn write_in(
        &self,
        tx: &mut WriteTx<'_>,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
        class: &str,
    ) -> Result<(FileId, FileRow)>;
}

/// Where a file's content lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the store file: chunks named in `file_chunks`, or inline after the file's row.
    Embedded,
    /// An object of the backend of the location of this name.
    Remote(String),
}

/// Hands `$call` to the implementation of `$place` as `$p` (a location's given `$backend`,
/// when it has one): a `match`, so each arm is a static call.
macro_rules! at_place {
    ($place:expr, $backend:expr, |$p:ident| $call:expr) => {
        match $place {
            Place::Embedded => {
                let $p = Embedded;
                $call
            }
            Place::Remote(location) => {
                let $p = Remote::new(location, $backend);
                $call
            }
        }
    };
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
        Ok(Place::from_location(super::remote::file_location(t, file)?))
    }

    /// The place a file's content is in, from its location (`None`: the store file).
    pub(crate) fn from_location(location: Option<String>) -> Place {
        match location {
            Some(name) => Place::Remote(name),
            None => Place::Embedded,
        }
    }

    /// The place of the content of location `name` in `v`, with its backend.
    pub(crate) fn of_location<V: View>(
        v: &V,
        cfg: &Config,
        name: &str,
    ) -> Result<(Place, Option<std::sync::Arc<dyn ContentBackend>>)> {
        let backend = cfg.remotes.backend_of(v, name)?;
        let place = match backend {
            Some(_) => Place::Remote(name.to_string()),
            None => Place::Embedded,
        };
        Ok((place, backend))
    }

    /// The location name, for content in another location.
    pub(crate) fn location(&self) -> Option<&str> {
        match self {
            Place::Embedded => None,
            Place::Remote(name) => Some(name),
        }
    }

    /// See [`ContentPlace::open`].
    #[inline]
    pub(crate) fn open(
        self,
        txn: &ReadTransaction,
        cfg: &Config,
        file: &Stored,
        files: ReadOnlyTable<u128, &'static [u8]>,
    ) -> Result<Spans> {
        at_place!(&self, None, |p| p.open(txn, cfg, file, files))
    }

    /// See [`ContentPlace::release`].
    #[inline]
    pub(crate) fn release(
        &self,
        t: &mut WTables<'_>,
        file: FileId,
        blake3: &Hash,
        hashes: &[Hash],
    ) -> Result<()> {
        at_place!(self, None, |p| p.release(t, file, blake3, hashes))
    }

    /// See [`ContentPlace::stage`]; `backend` is the location's, for [`Place::Remote`].
    /// Embedded content up to the store's staging batch comes back [`Staged::Held`].
    #[inline]
    pub(crate) fn stage(
        &self,
        store: &Store,
        backend: Option<&dyn ContentBackend>,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
    ) -> Result<Staged> {
        at_place!(self, backend, |p| p
            .stage(store, reader, limits, with_md5, check))
    }

    /// See [`ContentPlace::stage_parts`]: in the store file, where the parts already are,
    /// their chunks are only hashed end to end; a location gets the assembled content
    /// uploaded under its content address.
    pub(crate) fn stage_parts(
        &self,
        store: &Store,
        backend: Option<&dyn ContentBackend>,
        snap: &ReadTx,
        parts: &Parts,
        with_md5: bool,
    ) -> Result<Staged> {
        at_place!(self, backend, |p| p
            .stage_parts(store, snap, parts, with_md5))
    }

    /// See [`ContentPlace::stage_copy`]: the store file stages chunks (never holding the
    /// content in memory); a location uploads the object, or checks a complete one already
    /// there instead of sending it again (an interrupted move resumes).
    pub(crate) fn stage_copy(
        &self,
        store: &Store,
        backend: Option<&dyn ContentBackend>,
        file: (FileId, &FileRow),
        source: &mut dyn Read,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Staged> {
        at_place!(self, backend, |p| p
            .stage_copy(store, file, source, progress))
    }

    /// See [`ContentPlace::write_in`]: the store file writes its chunks or inline bytes in the
    /// transaction; a location gets the object first, which the transaction then refers to
    /// (holding the upload's pass until it is over).
    #[allow(clippy::too_many_arguments)]
    #[inline]
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
        at_place!(self, backend, |p| p
            .write_in(tx, reader, limits, with_md5, check, class))
    }

    /// Takes the content of `file` (its row `row`) out of this place inside the transaction,
    /// for a move: the dedup index no longer names it here, its chunk rows go, and its
    /// chunks or its use of the object are released ([`Place::release`]). Inline bytes go when
    /// the adoption rewrites the file's row ([`Staged::adopt_as`]).
    pub(crate) fn leave(&self, t: &mut WTables<'_>, file: FileId, row: &FileRow) -> Result<()> {
        let key = dedup_key(self.location(), &row.blake3);
        if t.files_by_hash.read()?.get(&key)?.map(|g| g.value()) == Some(file.raw()) {
            t.files_by_hash.write()?.remove(&key)?;
        }
        let hashes = super::take_chunk_rows(t, file)?;
        self.release(t, file, &row.blake3, &hashes)
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
/// ([`Place::stage`], [`Place::stage_parts`], [`Place::stage_copy`]), waiting for that
/// transaction to adopt it ([`Staged::adopt`] as a new file, [`Staged::adopt_as`] as the
/// content of a file that moves). Dropped without [`Staged::committed`] (the transaction failed
/// or was refused), chunks staged in the store file are discarded, a multipart upload's parts
/// stay as they were, and an object uploaded to a location stays unreferenced until
/// `Store::gc_location` collects it, as it always has.
pub(crate) enum Staged {
    /// Embedded content no larger than the staging batch, held in memory: the transaction
    /// writes it itself (`WriteTx::put_object`), as one transaction always has.
    Held(Vec<u8>),
    /// Chunks staged in the store file under a staging id (their own short transactions).
    Embedded(StagedContent),
    /// A multipart upload's parts, staged in the store file, laid end to end: the adoption
    /// makes their chunks the file's (boxed, as only a completion allocates it).
    Parts(Box<InStoreParts>),
    /// An object uploaded to a location under its content address.
    // Boxed to keep the enum small: moving it around the embedded put would otherwise copy the
    // uploaded variant's size each time.
    Remote(Box<Uploading>),
}

/// Parts staged in the store file, assembled ([`Staged::Parts`]).
pub(crate) struct InStoreParts {
    pub(super) sources: Vec<(u128, u64)>,
    pub(super) size: u64,
    pub(super) digest: ContentDigest,
    pub(super) chunk_size: u32,
}

/// An object uploaded to a location, not yet referred to ([`Staged::Remote`]).
pub(crate) struct Uploading {
    location: String,
    up: Uploaded,
    /// Held until the adopting transaction commits: keeps a collection of the location from
    /// taking the object first.
    pass: Option<UploadPass>,
    /// Staging ids the content was read from (a multipart upload's parts), given up by the
    /// adopting transaction.
    consumed: Vec<u128>,
}

impl Staged {
    /// An object uploaded to `location`, not yet referred to; `pass` is held until the
    /// adopting transaction commits, `consumed` are staging ids the adoption gives up.
    pub(super) fn uploaded(
        location: &str,
        up: Uploaded,
        pass: UploadPass,
        consumed: Vec<u128>,
    ) -> Staged {
        Staged::Remote(Box::new(Uploading {
            location: location.to_string(),
            up,
            pass: Some(pass),
            consumed,
        }))
    }

    /// The content's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Staged::Held(bytes) => bytes.len() as u64,
            Staged::Embedded(s) => s.size,
            Staged::Parts(p) => p.size,
            Staged::Remote(r) => r.up.size,
        }
    }

    /// Makes the staged content a file inside the transaction that creates its object
    /// version, or finds the identical file already stored at the place (dedup by blake3, as
    /// [`super::register_file`] does) and drops the staged copy; either way the caller's
    /// reference is taken. Staged chunks (or parts) become the file's; an uploaded object is
    /// registered and attached, the parts it was read from given up, the upload's pass
    /// released after the commit. [`Staged::Held`] content is written by the caller
    /// (`WriteTx::put_object`), never adopted.
    pub(crate) fn adopt(&mut self, tx: &mut WriteTx<'_>, class: &str) -> Result<(FileId, FileRow)> {
        match self {
            Staged::Held(_) => Err(held_is_written()),
            Staged::Embedded(staged) => staging::adopt(tx, staged, class),
            Staged::Parts(p) => {
                let content = Assembled {
                    sources: &p.sources,
                    size: p.size,
                    digest: p.digest,
                    chunk_size: p.chunk_size,
                };
                let now = tx.now;
                staging::adopt_assembled(&mut tx.t, &content, class, now)
            }
            Staged::Remote(r) => {
                r.take_pass(&mut tx.t);
                let file = register_remote(&mut tx.t, &r.location, &r.up, class, tx.now)?;
                r.give_up_sources(&mut tx.t)?;
                Ok(file)
            }
        }
    }

    /// Makes the staged content the content of the existing `file` (its row `row`, whose
    /// content [`Place::leave`] took out of its old place in this transaction): the file keeps
    /// its id, checksums and references; its row is rewritten with the chunk size of its new
    /// place, and it becomes the file the dedup index names for its content there unless
    /// another file is named already.
    pub(crate) fn adopt_as(
        &mut self,
        tx: &mut WriteTx<'_>,
        file: FileId,
        row: &FileRow,
    ) -> Result<()> {
        let t = &mut tx.t;
        let mut moved = row.clone();
        let location = match self {
            Staged::Held(_) => return Err(held_is_written()),
            Staged::Embedded(staged) => {
                staging::move_into_file(t, &[(staged.id, 0)], file)?;
                moved.chunk_size = staged.chunk_size;
                None
            }
            Staged::Parts(p) => {
                staging::move_into_file(t, &p.sources, file)?;
                moved.chunk_size = p.chunk_size;
                None
            }
            Staged::Remote(r) => {
                r.take_pass(t);
                put_chunk_rows(t, file, &r.up)?;
                attach(t, file, &r.location, &row.blake3)?;
                r.give_up_sources(t)?;
                moved.chunk_size = r.up.chunk_size;
                Some(r.location.as_str())
            }
        };
        insert_file_row(t, file, &moved, &[])?;
        let key = dedup_key(location, &row.blake3);
        if t.files_by_hash.read()?.get(&key)?.is_none() {
            t.files_by_hash.write()?.insert(&key, file.raw())?;
        }
        Ok(())
    }

    /// Marks the content as adopted by a committed transaction: staged chunks are kept.
    pub(crate) fn committed(self) {
        if let Staged::Embedded(staged) = self {
            staged.committed();
        }
    }
}

impl Uploading {
    /// The upload's pass goes with the transaction, released once it is over.
    fn take_pass(&mut self, t: &mut WTables<'_>) {
        if let Some(pass) = self.pass.take() {
            t.after_commit.passes.push(pass);
        }
    }

    /// Releases the staged chunks the content was read from.
    fn give_up_sources(&self, t: &mut WTables<'_>) -> Result<()> {
        for id in &self.consumed {
            staging::discard(t, *id)?;
        }
        Ok(())
    }
}

fn held_is_written() -> Error {
    Error::InvalidOperation {
        reason: "held content is written, not adopted",
    }
}

/// The error of content that no longer matches its file's blake3 when copied for a move.
pub(crate) fn changed_on_the_way(file: FileId) -> Error {
    Error::Corruption {
        file: Some(file),
        detail: format!("file {file}: the content copied does not match the file's blake3"),
    }
}

/// A reader that reports how many bytes it has given, and of how many.
pub(crate) struct Counting<'p, R: Read> {
    inner: R,
    done: u64,
    total: u64,
    progress: &'p mut dyn FnMut(u64, u64),
}

impl<'p, R: Read> Counting<'p, R> {
    pub(crate) fn new(inner: R, total: u64, progress: &'p mut dyn FnMut(u64, u64)) -> Self {
        Counting {
            inner,
            done: 0,
            total,
            progress,
        }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done, self.total);
        Ok(n)
    }
}
