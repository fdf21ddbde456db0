//! Content outside the store file: locations whose URI is `s3://bucket/prefix` (or any
//! location the application gave a backend of its own) keep their files' bytes in an object
//! store, while every row about them (the file, its chunk hashes, its references) stays in the
//! store file.
//!
//! On the object store a file's content is one object named by the blake3 of the content
//! (`ab/abcd…` under the location's prefix), so a repeated or retried upload writes the same
//! object and files with the same content in one location share it. The store file keeps, for
//! each such file, the blake3 of each chunk-sized piece of its content (`file_chunks`, as for
//! embedded content), the location it lives in (`remote_files`), and, for each object, how
//! many files use it (`remote_objects`). Reads are ranged requests for the chunks a read
//! touches, each checked against its hash before a byte is returned (`remote_read`).
//!
//! [`Remote`] is this place's implementation of the content trait
//! ([`super::place::ContentPlace`]): staging uploads the object before the commit that adopts
//! it, whether it is a put, a multipart upload's parts or a moving file's content.
//!
//! Ordering gives the guarantees across the boundary: content is uploaded before the commit
//! that refers to it, and an object is deleted only after the commit that dropped its last
//! reference. A crash in between leaves objects nothing refers to, which [`crate::Store::gc_location`]
//! removes once they are older than a grace period. Within one process, uploads and deletes of
//! the same store exclude each other through a gate (uploads share it until their commit,
//! a delete takes it alone and checks again that the object is still unreferenced), so a
//! delete can never remove an object an upload is about to refer to.

use super::place::{ContentPlace, Spans, Staged, Stored};
use super::remote_read::RemoteSpans;
use super::staging::Parts;
use super::write::{ChunkSource, StreamLimits};
use super::{ContentDigest, Digests, FileRow, Hash, hex, insert_file_row, retain_file};
use crate::error::{Error, Result};
use crate::ids::{FileId, Timestamp};
use crate::storage::{Config, ReadTx, Store, View, WTables, WriteTx};
use parking_lot::{Condvar, Mutex};
use redb::ReadableTable;
use redb::{ReadOnlyTable, ReadTransaction};
use std::collections::HashMap;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

/// An object store that holds the content of a location: the narrow interface recfiles needs
/// from S3 and its kin. Keys are relative to the location's own root (its bucket and prefix).
///
/// With the `s3` feature, `ObjectStoreBackend` implements it over the `object_store` crate;
/// an application may implement it for anything else and give it to
/// [`crate::StoreBuilder::location_backend`]. Errors are `std::io::Error`s; a missing object
/// must be `ErrorKind::NotFound`.
pub trait ContentBackend: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` as the object `key` in one request, replacing any object there.
    fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()>;
    /// Starts a streamed (multipart) upload to `key`; nothing is visible there before
    /// [`ContentUpload::finish`].
    fn start_upload(&self, key: &str) -> io::Result<Box<dyn ContentUpload>>;
    /// The bytes of `range` of object `key` (`ErrorKind::NotFound` when there is no object).
    fn get_range(&self, key: &str, range: Range<u64>) -> io::Result<Vec<u8>>;
    /// The size of object `key`, `None` when there is none.
    fn size(&self, key: &str) -> io::Result<Option<u64>>;
    /// Copies object `from` to `to` (on the server, without moving the bytes through here).
    fn copy(&self, from: &str, to: &str) -> io::Result<()>;
    /// Deletes object `key`; deleting a missing object is not an error.
    fn delete(&self, key: &str) -> io::Result<()>;
    /// Every object whose key starts with `prefix`, with when it was last written.
    fn list(&self, prefix: &str) -> io::Result<Vec<(String, SystemTime)>>;
}

/// A streamed upload in progress. Dropping it without `finish` must leave no object at its key
/// (the backend may leave parts that the object store's own lifecycle rules clean up).
pub trait ContentUpload: Send {
    /// Appends bytes; may wait while earlier parts are still in flight (bounded memory).
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Completes the upload: the object becomes visible at its key.
    fn finish(self: Box<Self>) -> io::Result<()>;
    /// Gives the upload up.
    fn abort(self: Box<Self>);
}

/// The object key of content with this blake3.
pub(crate) fn content_key(blake3: &Hash) -> String {
    let h = hex(blake3);
    format!("{}/{h}", &h[..2])
}

/// Where objects being uploaded wait until their content (and so their name) is known.
pub(crate) const INCOMING: &str = "incoming/";

/// The hash a content is known by in the dedup index (`files_by_hash`): the content's blake3
/// for embedded content, a hash of the location's name and the blake3 for content in another
/// location, so each location dedups on its own (a put into an S3 bucket never ends up pointing
/// at bytes in the store file, and the other way round).
pub(crate) fn dedup_key(location: Option<&str>, blake3: &Hash) -> Hash {
    match location {
        None => *blake3,
        Some(name) => {
            let mut h = blake3::Hasher::new_derive_key("recfiles remote content dedup key v1");
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(blake3);
            *h.finalize().as_bytes()
        }
    }
}

/// The location a file's content lives in, `None` for the store file.
pub(crate) fn file_location<V: View>(v: &V, id: FileId) -> Result<Option<String>> {
    Ok(v.remote_files()?
        .get(id.raw())?
        .map(|g| g.value().to_string()))
}

/// The URI of a location.
pub(crate) fn location_uri<V: View>(v: &V, name: &str) -> Result<String> {
    match v.locations()?.get(name)? {
        Some(g) => {
            let row: crate::files::rows::LocationRow = crate::storage::dec(g.value(), "locations")?;
            Ok(row.uri)
        }
        None => Err(Error::LocationNotFound {
            name: name.to_string(),
        }),
    }
}

/// Builds a backend for an `s3://` URI from the environment (the `s3` feature).
pub(crate) type UriFactory = fn(&str) -> io::Result<Arc<dyn ContentBackend>>;

/// The content backends of an open store, by location, and the gate between its uploads and
/// its deletes. Shared by every handle of the store.
pub(crate) struct Remotes {
    /// Backends the application gave the builder, by location name.
    configured: HashMap<String, Arc<dyn ContentBackend>>,
    /// Backends built from `s3://` URIs, by URI.
    from_uri: parking_lot::Mutex<HashMap<String, Arc<dyn ContentBackend>>>,
    factory: Option<UriFactory>,
    gate: Arc<Gate>,
    /// Objects whose last reference is gone, waiting for a moment without uploads.
    pending: Mutex<Vec<(String, Hash)>>,
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remotes")
            .field("configured", &self.configured.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Uploads in flight and whether a delete is running: they never overlap.
#[derive(Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    uploads: usize,
    deleting: bool,
}

/// Held by an upload from before its first byte leaves until its commit is over.
pub(crate) struct UploadPass(Arc<Gate>);

impl Drop for UploadPass {
    fn drop(&mut self) {
        self.0.state.lock().uploads -= 1;
        self.0.changed.notify_all();
    }
}

/// Held while deleting objects: no upload of this store is in flight meanwhile.
pub(crate) struct Exclusive<'g>(&'g Gate);

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        self.0.state.lock().deleting = false;
        self.0.changed.notify_all();
    }
}

impl Gate {
    fn pass(self: &Arc<Gate>) -> UploadPass {
        let mut s = self.state.lock();
        while s.deleting {
            self.changed.wait(&mut s);
        }
        s.uploads += 1;
        UploadPass(Arc::clone(self))
    }

    fn try_exclusive(&self) -> Option<Exclusive<'_>> {
        let mut s = self.state.lock();
        if s.uploads > 0 || s.deleting {
            return None;
        }
        s.deleting = true;
        Some(Exclusive(self))
    }

    fn exclusive(&self) -> Exclusive<'_> {
        let mut s = self.state.lock();
        while s.uploads > 0 || s.deleting {
            self.changed.wait(&mut s);
        }
        s.deleting = true;
        Exclusive(self)
    }
}

impl Remotes {
    pub(crate) fn new(configured: HashMap<String, Arc<dyn ContentBackend>>) -> Remotes {
        #[cfg(feature = "s3")]
        let factory: Option<UriFactory> = Some(super::s3::backend_from_uri);
        #[cfg(not(feature = "s3"))]
        let factory: Option<UriFactory> = None;
        Remotes {
            configured,
            from_uri: Default::default(),
            factory,
            gate: Default::default(),
            pending: Default::default(),
        }
    }

    /// The backend of location `name` (URI `uri`); `None` when its content is embedded.
    /// Only `s3://` URIs and locations given a backend by the builder are remote: any other
    /// URI keeps its content in the store file, as every location did before.
    pub(crate) fn backend(&self, name: &str, uri: &str) -> Result<Option<Arc<dyn ContentBackend>>> {
        if let Some(b) = self.configured.get(name) {
            return Ok(Some(Arc::clone(b)));
        }
        if !uri.starts_with("s3://") {
            return Ok(None);
        }
        let unavailable = |reason: String| Error::LocationUnavailable {
            location: name.to_string(),
            uri: uri.to_string(),
            reason,
        };
        let Some(factory) = self.factory else {
            return Err(unavailable(
                "this build lacks the `s3` feature and the store was given no backend for it"
                    .into(),
            ));
        };
        let mut cache = self.from_uri.lock();
        if let Some(b) = cache.get(uri) {
            return Ok(Some(Arc::clone(b)));
        }
        let b = factory(uri).map_err(|e| unavailable(e.to_string()))?;
        cache.insert(uri.to_string(), Arc::clone(&b));
        Ok(Some(b))
    }

    /// The backend of location `name`, looked up in `v`.
    pub(crate) fn backend_of<V: View>(
        &self,
        v: &V,
        name: &str,
    ) -> Result<Option<Arc<dyn ContentBackend>>> {
        let uri = location_uri(v, name)?;
        self.backend(name, &uri)
    }

    /// A pass for one upload (see the module's documentation). A thread may hold several.
    pub(crate) fn upload_pass(&self) -> UploadPass {
        self.gate.pass()
    }

    /// Excludes this store's uploads while held (for a collection that must know none is
    /// between its upload and its commit); waits for those in flight.
    pub(crate) fn exclusive(&self) -> Exclusive<'_> {
        self.gate.exclusive()
    }

    /// Runs the deletes a committed transaction left, and any left waiting before: each
    /// object is removed unless a commit since has referred to it again. While uploads are
    /// in flight the deletes wait for a later commit (the committing thread never waits for
    /// them). Failures, and deletes still waiting when the store closes, are left to
    /// [`crate::Store::gc_location`].
    pub(crate) fn after_commit(&self, store: &crate::Store, after: AfterCommit) {
        let AfterCommit { deletes, passes } = after;
        // The transaction's own uploads are over.
        drop(passes);
        let mut pending = self.pending.lock();
        pending.extend(deletes);
        if pending.is_empty() {
            return;
        }
        let Some(_alone) = self.gate.try_exclusive() else {
            return;
        };
        let deletes = std::mem::take(&mut *pending);
        drop(pending);
        for (location, blake3) in deletes {
            let unused = store.read(|r| {
                let unused =
                    r.t.remote_objects()?
                        .get((location.as_str(), blake3))?
                        .is_none();
                match unused {
                    true => self.backend_of(&r.t, &location),
                    false => Ok(None),
                }
            });
            if let Ok(Some(backend)) = unused {
                let _ = backend.delete(&content_key(&blake3));
            }
        }
    }
}

/// What a write transaction leaves to do once it has committed: objects whose last reference
/// it dropped, and the passes of its uploads.
#[derive(Default)]
pub(crate) struct AfterCommit {
    pub deletes: Vec<(String, Hash)>,
    pub passes: Vec<UploadPass>,
}

impl AfterCommit {
    pub(crate) fn is_empty(&self) -> bool {
        self.deletes.is_empty() && self.passes.is_empty()
    }
}

/// Content uploaded to a location and not yet referred to by any commit.
#[derive(Debug, Clone)]
pub(crate) struct Uploaded {
    pub size: u64,
    pub digest: ContentDigest,
    /// The blake3 of each `chunk_size` piece, in order.
    pub chunks: Vec<Hash>,
    pub chunk_size: u32,
}

/// Bytes of content in another location per chunk hash kept in the store file (each file's
/// row keeps the size it was written with, so files of 256 KiB chunks from earlier builds read
/// as before). A read can only return checked bytes, so it fetches and hashes the whole chunks
/// it touches: with 64 KiB a random 64 KiB range costs about 128 KiB (about 320 KiB with the
/// 256 KiB chunks used before, which kept range reads at 0.75x the cluster's own client). The
/// hashes of a file take 32 bytes per chunk (512 KiB per GiB) in the file and while uploading.
pub(crate) const REMOTE_CHUNK: usize = 64 * 1024;

/// Content up to this size is sent in one request, under its final name; larger content is
/// streamed as a multipart upload to a temporary name and copied to its final one on the
/// server.
const ONE_REQUEST: u64 = 8 * 1024 * 1024;

/// Uploads `reader`'s content to `backend` under its content address, within `limits`, in
/// bounded memory. `check` sees the digests before anything is made visible under a content
/// address; `known` says whether the location already holds that content (then nothing more
/// is sent). A failure leaves nothing under a content address that was not there before.
#[allow(clippy::too_many_arguments)]
pub(crate) fn upload_stream(
    backend: &dyn ContentBackend,
    location: &str,
    reader: &mut dyn Read,
    limits: StreamLimits,
    with_md5: bool,
    chunk_size: usize,
    check: &dyn Fn(&ContentDigest) -> Result<()>,
    known: &dyn Fn(&Hash) -> Result<bool>,
) -> Result<Uploaded> {
    let failed = |e: io::Error| backend_error(location, e);
    let mut src = ChunkSource::new(reader, limits, chunk_size);
    let mut digests = Digests::new(with_md5);
    let mut chunks = Vec::new();
    let mut held: Vec<u8> = Vec::new();
    let mut buf = Vec::new();
    let mut upload: Option<(Box<dyn ContentUpload>, String)> = None;
    let streamed = (|| -> Result<()> {
        while src.next_chunk(&mut buf)? {
            if buf.is_empty() {
                continue;
            }
            digests.update(&buf);
            chunks.push(*blake3::hash(&buf).as_bytes());
            match &mut upload {
                Some((up, _)) => up.write(&buf).map_err(failed)?,
                None => {
                    held.extend_from_slice(&buf);
                    if held.len() as u64 > ONE_REQUEST {
                        let name = format!("{INCOMING}{}", crate::ids::fresh_v7());
                        let mut up = backend.start_upload(&name).map_err(failed)?;
                        up.write(&held).map_err(failed)?;
                        held = Vec::new();
                        upload = Some((up, name));
                    }
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = streamed {
        if let Some((up, _)) = upload {
            up.abort();
        }
        return Err(e);
    }
    let digest = digests.finish();
    let out = Uploaded {
        size: src.total,
        digest,
        chunks,
        chunk_size: chunk_size as u32,
    };
    let target = content_key(&digest.0);
    match upload {
        None => {
            check(&digest)?;
            if !known(&digest.0)? {
                backend.put(&target, held).map_err(failed)?;
            }
        }
        Some((up, name)) => {
            up.finish().map_err(failed)?;
            let placed = check(&digest).and_then(|()| {
                if !known(&digest.0)? {
                    backend.copy(&name, &target).map_err(failed)?;
                }
                Ok(())
            });
            // The temporary object goes either way (gc removes it if this fails).
            let _ = backend.delete(&name);
            placed?;
        }
    }
    Ok(out)
}

pub(crate) fn backend_error(location: &str, e: io::Error) -> Error {
    Error::ContentBackend {
        location: location.to_string(),
        detail: e.to_string(),
    }
}

/// A location as a place of content: one object of its backend per content, under its
/// content address. `backend` is the location's, looked up by the caller; reading looks it up
/// itself, and putting without one fails with [`Error::ContentBackend`].
#[derive(Clone, Copy)]
pub(crate) struct Remote<'a> {
    location: &'a str,
    backend: Option<&'a dyn ContentBackend>,
}

impl<'a> Remote<'a> {
    #[inline]
    pub(crate) fn new(location: &'a str, backend: Option<&'a dyn ContentBackend>) -> Self {
        Remote { location, backend }
    }

    fn backend(&self) -> Result<&'a dyn ContentBackend> {
        self.backend.ok_or_else(|| Error::ContentBackend {
            location: self.location.to_string(),
            detail: "the location has no backend in this store".to_string(),
        })
    }

    /// Whether the location already holds an object of this content that a file refers to.
    fn known(&self, store: &Store, h: &Hash) -> Result<bool> {
        store.read(|r| Ok(r.t.remote_objects()?.get((self.location, *h))?.is_some()))
    }
}

impl ContentPlace for Remote<'_> {
    fn open(
        &self,
        txn: &ReadTransaction,
        cfg: &Config,
        file: &Stored,
        _files: ReadOnlyTable<u128, &'static [u8]>,
    ) -> Result<Spans> {
        let spans = RemoteSpans::open(txn, cfg, file, self.location.to_string())?;
        Ok(Spans::Remote(spans))
    }

    fn release(
        &self,
        t: &mut WTables<'_>,
        file: FileId,
        blake3: &Hash,
        _hashes: &[Hash],
    ) -> Result<()> {
        detach(t, file, self.location, blake3)
    }

    /// The object is uploaded under its content address (not sent again when the location
    /// holds it already), holding an upload pass until the adopting transaction is over, so a
    /// collection of the location cannot take it before the commit.
    fn stage(
        &self,
        store: &Store,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
    ) -> Result<Staged> {
        let backend = self.backend()?;
        let pass = store.inner.cfg.remotes.upload_pass();
        let up = upload_stream(
            backend,
            self.location,
            reader,
            limits,
            with_md5,
            REMOTE_CHUNK,
            check,
            &|h| self.known(store, h),
        )?;
        Ok(Staged::uploaded(self.location, up, pass, Vec::new()))
    }

    /// The parts, read back from the store file, are uploaded as one object; the adopting
    /// transaction gives them up.
    fn stage_parts(
        &self,
        store: &Store,
        snap: &ReadTx,
        parts: &Parts,
        with_md5: bool,
    ) -> Result<Staged> {
        let backend = self.backend()?;
        let mut reader = parts.reader(&snap.t)?;
        let pass = store.inner.cfg.remotes.upload_pass();
        let limits = StreamLimits {
            declared: Some(parts.size),
            cap: None,
        };
        let up = upload_stream(
            backend,
            self.location,
            &mut reader,
            limits,
            with_md5,
            REMOTE_CHUNK,
            &|_| Ok(()),
            &|h| self.known(store, h),
        )
        .map_err(|e| reader.failure().unwrap_or(e))?;
        let consumed = parts.parts.iter().map(|&(_, id, _)| id).collect();
        Ok(Staged::uploaded(self.location, up, pass, consumed))
    }

    fn stage_copy(
        &self,
        store: &Store,
        (file, row): (FileId, &FileRow),
        source: &mut dyn Read,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Staged> {
        let backend = self.backend()?;
        let pass = store.inner.cfg.remotes.upload_pass();
        let up = copy_in(backend, self.location, file, row, source, progress)?;
        Ok(Staged::uploaded(self.location, up, pass, Vec::new()))
    }

    /// The object is uploaded first, then registered in the caller's transaction.
    fn write_in(
        &self,
        tx: &mut WriteTx<'_>,
        reader: &mut dyn Read,
        limits: StreamLimits,
        with_md5: bool,
        check: &dyn Fn(&ContentDigest) -> Result<()>,
        class: &str,
    ) -> Result<(FileId, FileRow)> {
        let backend = self.backend()?;
        let pass = tx.cfg.remotes.upload_pass();
        let up = upload_stream(
            backend,
            self.location,
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
                    .get((self.location, *h))?
                    .is_some())
            },
        )?;
        Staged::uploaded(self.location, up, pass, Vec::new()).adopt(tx, class)
    }
}

/// Records that `file` keeps its content (with blake3 `blake3`) in `location`: one more file
/// uses the object.
pub(crate) fn attach(
    t: &mut WTables<'_>,
    file: FileId,
    location: &str,
    blake3: &Hash,
) -> Result<()> {
    t.remote_files.write()?.insert(file.raw(), location)?;
    let n = t
        .remote_objects
        .read()?
        .get((location, *blake3))?
        .map_or(0, |g| g.value());
    t.remote_objects
        .write()?
        .insert((location, *blake3), n + 1)?;
    Ok(())
}

/// Undoes [`attach`] for `file`, a file of `location`; the object's last user queues its
/// delete for after the commit.
pub(crate) fn detach(
    t: &mut WTables<'_>,
    file: FileId,
    location: &str,
    blake3: &Hash,
) -> Result<()> {
    t.remote_files.write()?.remove(file.raw())?;
    let key = (location, *blake3);
    let n = t.remote_objects.read()?.get(key)?.map_or(0, |g| g.value());
    if n > 1 {
        t.remote_objects.write()?.insert(key, n - 1)?;
    } else {
        t.remote_objects.write()?.remove(key)?;
        t.after_commit.deletes.push((location.to_string(), *blake3));
    }
    Ok(())
}

/// Registers uploaded content as a file of `location`, or finds the identical file of that
/// location already stored; either way the caller's reference is taken (as
/// [`super::register_file`] does).
pub(crate) fn register_remote(
    t: &mut WTables<'_>,
    location: &str,
    up: &Uploaded,
    storage_class: &str,
    now: Timestamp,
) -> Result<(FileId, FileRow)> {
    let (blake3, md5) = up.digest;
    let key = dedup_key(Some(location), &blake3);
    let existing = t
        .files_by_hash
        .read()?
        .get(&key)?
        .map(|g| FileId::from_raw(g.value()));
    if let Some(existing) = existing
        && let Some(existing) = super::same_content(t, existing, up.size, md5)?
    {
        return Ok((existing, retain_file(t, existing, now)?));
    }
    let id = FileId::new();
    put_chunk_rows(t, id, up)?;
    let mut row = FileRow::new(up.size, up.digest, up.chunk_size, storage_class, now);
    row.refcount = 1;
    insert_file_row(t, id, &row, &[])?;
    t.files_by_hash.write()?.insert(&key, id.raw())?;
    attach(t, id, location, &blake3)?;
    Ok((id, row))
}

/// The chunk rows of uploaded content: one hash per `chunk_size` piece.
pub(crate) fn put_chunk_rows(t: &mut WTables<'_>, id: FileId, up: &Uploaded) -> Result<()> {
    let table = t.file_chunks.write()?;
    for (i, h) in up.chunks.iter().enumerate() {
        table.insert((id.raw(), i as u64 * u64::from(up.chunk_size)), h)?;
    }
    Ok(())
}

/// Copies the content of `file` (its row `row`, its bytes from `source`) to `location` for a
/// move there, reporting the bytes done to `progress`, and checks what arrived against the
/// file's blake3 and size. A complete object already under the content address (a move
/// interrupted after its upload, or another file's content) is read back and checked instead
/// of being sent again; a corrupt one is refused, never taken for the content.
pub(crate) fn copy_in(
    backend: &dyn ContentBackend,
    location: &str,
    file: FileId,
    row: &FileRow,
    source: &mut dyn Read,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Uploaded> {
    let key = content_key(&row.blake3);
    let limits = StreamLimits {
        declared: Some(row.size),
        cap: None,
    };
    let present = backend.size(&key).map_err(|e| backend_error(location, e))?;
    let up = if present == Some(row.size) {
        let mut remote = ObjectReader {
            backend,
            key: &key,
            at: 0,
            size: row.size,
            location,
        };
        let mut counted = super::place::Counting::new(&mut remote, row.size, progress);
        hash_stream(&mut counted, limits, row.md5.is_some()).map_err(|e| match e {
            Error::UploadStream { source } => backend_error(location, source),
            other => other,
        })?
    } else {
        let mut counted = super::place::Counting::new(source, row.size, progress);
        let same = |d: &ContentDigest| match d.0 == row.blake3 {
            true => Ok(()),
            false => Err(super::place::changed_on_the_way(file)),
        };
        upload_stream(
            backend,
            location,
            &mut counted,
            limits,
            row.md5.is_some(),
            REMOTE_CHUNK,
            &same,
            &|_| Ok(false),
        )?
    };
    if up.digest.0 != row.blake3 || up.size != row.size {
        return Err(super::place::changed_on_the_way(file));
    }
    // The object is where the commit will say it is, whole.
    match backend.size(&key).map_err(|e| backend_error(location, e))? {
        Some(n) if n == row.size => Ok(up),
        other => Err(Error::ContentBackend {
            location: location.to_string(),
            detail: format!(
                "object {key} holds {other:?} bytes after the upload, not {}",
                row.size
            ),
        }),
    }
}

/// The chunk hashes and digests of content already in place.
fn hash_stream(reader: &mut dyn Read, limits: StreamLimits, with_md5: bool) -> Result<Uploaded> {
    let mut src = ChunkSource::new(reader, limits, REMOTE_CHUNK);
    let mut digests = Digests::new(with_md5);
    let mut chunks = Vec::new();
    let mut buf = Vec::new();
    while src.next_chunk(&mut buf)? {
        if !buf.is_empty() {
            digests.update(&buf);
            chunks.push(*blake3::hash(&buf).as_bytes());
        }
    }
    Ok(Uploaded {
        size: src.total,
        digest: digests.finish(),
        chunks,
        chunk_size: REMOTE_CHUNK as u32,
    })
}

/// Reads an object sequentially, in ranged requests.
struct ObjectReader<'a> {
    backend: &'a dyn ContentBackend,
    key: &'a str,
    at: u64,
    size: u64,
    location: &'a str,
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.size - self.at).min(buf.len() as u64);
        if n == 0 {
            return Ok(0);
        }
        let bytes = self.backend.get_range(self.key, self.at..self.at + n)?;
        if bytes.len() as u64 != n {
            return Err(io::Error::other(format!(
                "location {:?}: object {} is shorter than expected",
                self.location, self.key
            )));
        }
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.at += n;
        Ok(bytes.len())
    }
}
