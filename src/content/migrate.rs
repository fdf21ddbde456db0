//! Moving a file's content between locations (Invenio's `migrate_file`) and collecting
//! objects that nothing refers to any more (`gc_location`).

use super::place::Place;
use super::remote::{
    ContentBackend, INCOMING, Uploaded, attach, backend_error, content_key, dedup_key,
    file_location, put_chunk_rows, upload_stream,
};
use super::staging::{stage, staged_chunks};
use super::write::StreamLimits;
use super::{FileInstance, FileRow, Hash, get_file_row, insert_file_row, take_chunk_rows};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::{Store, View, WTables};
use redb::ReadableTable;
use std::io::Read;
use std::time::{Duration, SystemTime};

/// What [`Store::gc_location`] found under a location's prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects listed.
    pub listed: u64,
    /// Objects deleted: content nothing refers to and abandoned uploads, older than the grace
    /// period.
    pub deleted: u64,
    /// Unreferenced objects kept because they are younger than the grace period (an upload
    /// whose commit may still come).
    pub young: u64,
    /// Objects whose names recfiles does not give; never touched.
    pub foreign: u64,
}

impl Store {
    /// Moves a file's content to location `to`: the bytes are copied there (read back through
    /// the file's checked reader), checked against the file's blake3, then one commit makes
    /// the file point at its new place and frees the old one (objects of another location are
    /// deleted after that commit). The file keeps its id, checksums and every reference, so
    /// records and versions do not change. `progress` hears of the bytes copied so far and
    /// the total.
    ///
    /// Moving between two locations whose content is in the store file changes nothing. An
    /// interrupted move leaves the file where it was and at most an unreferenced object (or
    /// staged chunks the next open removes); calling it again finishes it, and content
    /// already complete at the destination is checked there rather than sent again.
    pub fn migrate_file(
        &self,
        file: FileId,
        to: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<FileInstance> {
        let (row, from, target) = self.read(|r| {
            let row = get_file_row(&r.t, file)?.ok_or(Error::FileNotFound { file })?;
            if !row.readable {
                return Err(Error::FileUnreadable { file });
            }
            let from = file_location(&r.t, file)?;
            let target = r.cfg.remotes.backend_of(&r.t, to)?;
            Ok((row, from, target))
        })?;
        let done = |s: &Store| s.file(file)?.ok_or(Error::FileNotFound { file });
        match (&from, &target) {
            (None, None) => return done(self),
            (Some(name), Some(_)) if name == to => return done(self),
            _ => {}
        }
        let mut reader = Counting {
            inner: self.open_file(file)?,
            done: 0,
            total: row.size,
            progress,
        };
        match target {
            Some(backend) => {
                let pass = self.inner.cfg.remotes.upload_pass();
                let up = self.copy_to_remote(file, &row, to, backend.as_ref(), &mut reader)?;
                let to = to.to_string();
                self.write(move |tx| {
                    tx.t.after_commit.passes.push(pass);
                    let current = still_at(&tx.t, file, from.as_deref())?;
                    leave(&mut tx.t, file, &current, from.as_deref())?;
                    put_chunk_rows(&mut tx.t, file, &up)?;
                    let mut moved = current.clone();
                    moved.chunk_size = up.chunk_size;
                    insert_file_row(&mut tx.t, file, &moved, &[])?;
                    attach(&mut tx.t, file, &to, &moved.blake3)?;
                    claim_dedup(&mut tx.t, file, Some(&to), &moved.blake3)
                })?;
            }
            None => {
                let limits = StreamLimits {
                    declared: Some(row.size),
                    cap: None,
                };
                let staged = stage(self, &mut reader, limits, row.md5.is_some())?;
                if staged.digest.0 != row.blake3 {
                    return Err(changed_on_the_way(file));
                }
                self.write(|tx| {
                    let current = still_at(&tx.t, file, from.as_deref())?;
                    leave(&mut tx.t, file, &current, from.as_deref())?;
                    let t = &mut tx.t;
                    for (off, h) in staged_chunks(t.staged_chunks.read()?, staged.id)? {
                        t.file_chunks.write()?.insert((file.raw(), off), h)?;
                    }
                    let id = staged.id;
                    t.staged_chunks
                        .write()?
                        .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
                    t.staging.write()?.remove(id)?;
                    let mut moved = current.clone();
                    moved.chunk_size = staged.chunk_size;
                    insert_file_row(t, file, &moved, &[])?;
                    claim_dedup(t, file, None, &moved.blake3)
                })?;
                staged.committed();
            }
        }
        done(self)
    }

    /// Sends a file's content to `backend` (or, if a complete object is there already, reads
    /// that one back) and checks it against the file's blake3.
    fn copy_to_remote(
        &self,
        file: FileId,
        row: &FileRow,
        to: &str,
        backend: &dyn ContentBackend,
        reader: &mut Counting<'_>,
    ) -> Result<Uploaded> {
        let key = content_key(&row.blake3);
        let chunk_size = super::remote::REMOTE_CHUNK;
        let present = backend.size(&key).map_err(|e| backend_error(to, e))?;
        let up = if present == Some(row.size) {
            // A move interrupted after its upload, or content another file put there: check
            // what is there instead of sending it again.
            let mut remote = RemoteReader {
                backend,
                key: &key,
                at: 0,
                size: row.size,
                location: to,
            };
            let mut counted = Counting {
                inner: &mut remote,
                done: 0,
                total: row.size,
                progress: &mut *reader.progress,
            };
            hash_stream(&mut counted, row, chunk_size).map_err(|e| match e {
                Error::UploadStream { source } => backend_error(to, source),
                other => other,
            })?
        } else {
            upload_stream(
                backend,
                to,
                reader,
                StreamLimits {
                    declared: Some(row.size),
                    cap: None,
                },
                row.md5.is_some(),
                chunk_size,
                &|_| Ok(()),
                &|_| Ok(false),
            )?
        };
        if up.digest.0 != row.blake3 || up.size != row.size {
            return Err(changed_on_the_way(file));
        }
        // The object is where the commit will say it is, whole.
        match backend.size(&key).map_err(|e| backend_error(to, e))? {
            Some(n) if n == row.size => Ok(up),
            other => Err(Error::ContentBackend {
                location: to.to_string(),
                detail: format!(
                    "object {key} holds {other:?} bytes after the upload, not {}",
                    row.size
                ),
            }),
        }
    }

    /// Deletes, from the object store of location `name`, what recfiles put there and nothing
    /// refers to any more: content whose last reference a crash (or a failed delete) left
    /// behind, and abandoned uploads. Only objects older than `grace` go: a younger one may
    /// belong to an upload whose commit is still to come (in another process, say).
    pub fn gc_location(&self, name: &str, grace: Duration) -> Result<GcReport> {
        let backend = self
            .read(|r| r.cfg.remotes.backend_of(&r.t, name))?
            .ok_or_else(|| Error::InvalidOperation {
                reason: "the location keeps its content in the store file",
            })?;
        let listed = backend.list("").map_err(|e| backend_error(name, e))?;
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = GcReport {
            listed: listed.len() as u64,
            ..GcReport::default()
        };
        let mut candidates: Vec<(String, Option<Hash>)> = Vec::new();
        for (key, modified) in listed {
            let hash = match key.strip_prefix(INCOMING) {
                Some(_) => None,
                None => match parse_content_key(&key) {
                    Some(h) => Some(h),
                    None => {
                        report.foreign += 1;
                        continue;
                    }
                },
            };
            if modified > cutoff {
                let referenced = match hash {
                    Some(h) => {
                        self.read(|r| Ok(r.t.remote_objects()?.get((name, h))?.is_some()))?
                    }
                    None => false,
                };
                if !referenced {
                    report.young += 1;
                }
                continue;
            }
            candidates.push((key, hash));
        }
        // Alone against this store's uploads: none is between its upload and its commit.
        let _alone = self.inner.cfg.remotes.exclusive();
        let unused: Vec<String> = self.read(|r| {
            let refs = r.t.remote_objects()?;
            let mut out = Vec::new();
            for (key, hash) in candidates {
                let keep = match hash {
                    Some(h) => refs.get((name, h))?.is_some(),
                    None => false,
                };
                if !keep {
                    out.push(key);
                }
            }
            Ok(out)
        })?;
        for key in unused {
            backend.delete(&key).map_err(|e| backend_error(name, e))?;
            report.deleted += 1;
        }
        Ok(report)
    }
}

/// The blake3 named by a content key (`ab/abcd…`), if `key` is one.
fn parse_content_key(key: &str) -> Option<Hash> {
    let (dir, name) = key.split_once('/')?;
    if name.len() != 64 || dir != &name[..2] {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in name.as_bytes().chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    (super::hex(&out) == name).then_some(out)
}

fn changed_on_the_way(file: FileId) -> Error {
    Error::Corruption {
        file: Some(file),
        detail: format!("file {file}: the content copied does not match the file's blake3"),
    }
}

/// The file's row, if its content is still where the move found it.
fn still_at(t: &WTables<'_>, file: FileId, from: Option<&str>) -> Result<FileRow> {
    let row = get_file_row(t, file)?.ok_or(Error::FileNotFound { file })?;
    if file_location(t, file)?.as_deref() != from {
        return Err(Error::InvalidOperation {
            reason: "the file was moved to another location meanwhile",
        });
    }
    Ok(row)
}

/// Takes a file's content out of location `from` (`None`: the store file) inside the
/// transaction: chunk rows and inline bytes go, chunks and objects lose a reference.
fn leave(t: &mut WTables<'_>, file: FileId, row: &FileRow, from: Option<&str>) -> Result<()> {
    let key = dedup_key(from, &row.blake3);
    if t.files_by_hash.read()?.get(&key)?.map(|g| g.value()) == Some(file.raw()) {
        t.files_by_hash.write()?.remove(&key)?;
    }
    let hashes = take_chunk_rows(t, file)?;
    let place = match from {
        Some(location) => Place::Remote(location.to_string()),
        None => Place::Embedded,
    };
    place.release(t, file, &row.blake3, &hashes)?;
    if place == Place::Embedded {
        // Inline content goes with the row's tail.
        insert_file_row(t, file, row, &[])?;
    }
    Ok(())
}

/// Makes `file` the one the dedup index names for its content in `location`, unless another
/// file is named already.
fn claim_dedup(
    t: &mut WTables<'_>,
    file: FileId,
    location: Option<&str>,
    blake3: &Hash,
) -> Result<()> {
    let key = dedup_key(location, blake3);
    if t.files_by_hash.read()?.get(&key)?.is_none() {
        t.files_by_hash.write()?.insert(&key, file.raw())?;
    }
    Ok(())
}

/// The chunk hashes and digests of a stream (content already in place).
fn hash_stream(reader: &mut dyn Read, row: &FileRow, chunk_size: usize) -> Result<Uploaded> {
    let limits = StreamLimits {
        declared: Some(row.size),
        cap: None,
    };
    let mut src = super::write::ChunkSource::new(reader, limits, chunk_size);
    let mut digests = super::Digests::new(row.md5.is_some());
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
        chunk_size: chunk_size as u32,
    })
}

/// Reads an object sequentially, in ranged requests.
struct RemoteReader<'a> {
    backend: &'a dyn ContentBackend,
    key: &'a str,
    at: u64,
    size: u64,
    location: &'a str,
}

impl Read for RemoteReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.size - self.at).min(buf.len() as u64);
        if n == 0 {
            return Ok(0);
        }
        let bytes = self.backend.get_range(self.key, self.at..self.at + n)?;
        if bytes.len() as u64 != n {
            return Err(std::io::Error::other(format!(
                "location {:?}: object {} is shorter than expected",
                self.location, self.key
            )));
        }
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.at += n;
        Ok(bytes.len())
    }
}

/// A reader that reports its progress.
struct Counting<'p, R: Read = super::FileReader> {
    inner: R,
    done: u64,
    total: u64,
    progress: &'p mut dyn FnMut(u64, u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done, self.total);
        Ok(n)
    }
}
