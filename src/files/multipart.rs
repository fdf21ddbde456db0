//! Multipart (S3-like, chunked) uploads: init reserves quota, parts arrive in any order and may
//! be re-sent, completion assembles the parts into one file atomically, abort and expiry give
//! everything back. Unlike Invenio, a size that is an exact multiple of the part size works,
//! abandoned uploads expire, and a failed completion leaves the upload intact for a retry.

use super::object::{PutOptions, check_declared, limits_for};
use super::rows::*;
use super::validate_key;
use crate::content::staging::{Parts, claim_for_part, discard, stage};
use crate::content::{Place, StreamLimits};
use crate::error::{Error, Result};
use crate::ids::{BucketId, Timestamp, UploadId};
use crate::storage::{Store, WriteTx, enc};
use crate::{FilesQuery, ObjectVersion};
use redb::ReadableTable;
use std::io::Read;

/// Options of a part upload ([`Store::upload_part_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartOptions {
    /// The md5 the part must have, as `md5:<hex>` or bare hex (like HTTP Content-MD5).
    pub md5: Option<String>,
}

/// An open multipart upload (Invenio's `MultipartObject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    /// The upload's id.
    pub id: UploadId,
    /// The bucket it will land in.
    pub bucket: BucketId,
    /// The key it will land under.
    pub key: String,
    /// The total size in bytes (reserved in the bucket from init on).
    pub size: u64,
    /// The size of every part but the last.
    pub part_size: u64,
    /// When it was started.
    pub created: Timestamp,
    /// Last change.
    pub updated: Timestamp,
}

impl MultipartUpload {
    pub(crate) fn from_row(id: UploadId, r: MultipartRow) -> Self {
        MultipartUpload {
            id,
            bucket: BucketId::from_raw(r.bucket),
            key: r.key,
            size: r.size,
            part_size: r.part_size,
            created: r.created,
            updated: r.updated,
        }
    }

    /// Number of the last part (parts are numbered from 0).
    pub fn last_part_number(&self) -> u32 {
        last_part(self.size, self.part_size)
    }

    /// The exact size part `n` must have.
    pub fn expected_part_size(&self, n: u32) -> u64 {
        let (start, end) = part_range(self.size, self.part_size, n);
        end - start
    }
}

/// One received part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its number, from 0.
    pub part_number: u32,
    /// Offset of its first byte in the file.
    pub start_byte: u64,
    /// Offset one past its last byte.
    pub end_byte: u64,
    /// `blake3:<hex>` of the part.
    pub checksum: String,
    /// `md5:<hex>` of the part, when the store computes md5.
    pub md5: Option<String>,
    /// When it was received.
    pub created: Timestamp,
    /// When it was last re-sent.
    pub updated: Timestamp,
}

impl Part {
    pub(crate) fn from_row(n: u32, part_size: u64, r: &PartRow) -> Part {
        let start = u64::from(n) * part_size;
        Part {
            part_number: n,
            start_byte: start,
            end_byte: start + r.size,
            checksum: crate::content::blake3_text(&r.blake3),
            md5: r.md5.map(|m| format!("md5:{}", crate::content::hex(&m))),
            created: r.created,
            updated: r.updated,
        }
    }
}

fn last_part(size: u64, part_size: u64) -> u32 {
    (size.div_ceil(part_size).max(1) - 1) as u32
}

fn part_range(size: u64, part_size: u64, n: u32) -> (u64, u64) {
    let start = (u64::from(n) * part_size).min(size);
    (start, (start + part_size).min(size))
}

impl WriteTx<'_> {
    /// Starts a multipart upload of `size` bytes in parts of `part_size`, reserving `size` in
    /// the bucket's quota.
    pub fn init_multipart(
        &mut self,
        bucket: BucketId,
        key: &str,
        size: u64,
        part_size: u64,
    ) -> Result<MultipartUpload> {
        let row = self.writable_bucket(bucket)?;
        let lim = self.cfg.multipart;
        if part_size < lim.min_part_size || part_size > lim.max_part_size {
            return Err(Error::MultipartInvalidPartSize {
                part_size,
                min: lim.min_part_size,
                max: lim.max_part_size,
            });
        }
        if size <= lim.min_part_size || size > part_size.saturating_mul(lim.max_parts) {
            return Err(Error::MultipartInvalidSize { size, part_size });
        }
        limits_for(&row, Some(size))?;
        validate_key(key, self.cfg.max_key_len)?;
        let id = UploadId::new();
        let mp = MultipartRow {
            bucket: bucket.raw(),
            key: key.to_string(),
            size,
            part_size,
            created: self.now,
            updated: self.now,
        };
        self.t
            .multipart
            .write()?
            .insert(id.raw(), enc(&mp)?.as_slice())?;
        self.add_bucket_size(bucket, i128::from(size))?;
        Ok(MultipartUpload::from_row(id, mp))
    }

    /// Aborts an upload: its parts are freed and its reservation released.
    pub fn abort_multipart(&mut self, upload: UploadId) -> Result<()> {
        let mp =
            multipart_row(&self.t, upload.raw())?.ok_or(Error::MultipartNotFound { upload })?;
        self.writable_bucket(BucketId::from_raw(mp.bucket))?;
        self.drop_multipart(upload)
    }

    /// Removes an upload whatever its bucket's state (used by abort, expiry and bucket removal).
    pub(crate) fn drop_multipart(&mut self, upload: UploadId) -> Result<()> {
        let mp =
            multipart_row(&self.t, upload.raw())?.ok_or(Error::MultipartNotFound { upload })?;
        for (_, p) in self.part_rows(upload)? {
            discard(&mut self.t, p.staging)?;
        }
        let u = upload.raw();
        self.t
            .parts
            .write()?
            .retain_in((u, 0)..=(u, u32::MAX), |_, _| false)?;
        self.t.multipart.write()?.remove(u)?;
        self.add_bucket_size(BucketId::from_raw(mp.bucket), -i128::from(mp.size))
    }

    /// Aborts every upload started before `now - older_than`. Returns how many.
    pub fn expire_multipart(&mut self, older_than: std::time::Duration) -> Result<usize> {
        let cutoff = self.now.minus(older_than);
        let mut old = Vec::new();
        for e in self.t.multipart.read()?.iter()? {
            let (k, v) = e?;
            let r: MultipartRow = crate::storage::dec(v.value(), "multipart")?;
            if r.created < cutoff {
                old.push(UploadId::from_raw(k.value()));
            }
        }
        for u in &old {
            self.drop_multipart(*u)?;
        }
        Ok(old.len())
    }

    fn part_rows(&self, upload: UploadId) -> Result<Vec<(u32, PartRow)>> {
        let u = upload.raw();
        let mut out = Vec::new();
        for e in self.t.parts.read()?.range((u, 0)..=(u, u32::MAX))? {
            let (k, v) = e?;
            out.push((k.value().1, crate::storage::dec(v.value(), "parts")?));
        }
        Ok(out)
    }
}

impl Store {
    /// Starts a multipart upload (see [`WriteTx::init_multipart`]).
    pub fn init_multipart(
        &self,
        bucket: BucketId,
        key: &str,
        size: u64,
        part_size: u64,
    ) -> Result<MultipartUpload> {
        self.write(|tx| tx.init_multipart(bucket, key, size, part_size))
    }

    /// Receives part `n` of an upload; sending a part again replaces it. The part must have
    /// exactly its expected size (the last part may be shorter, or full when the size is an
    /// exact multiple of the part size).
    pub fn upload_part(&self, upload: UploadId, n: u32, reader: impl Read) -> Result<Part> {
        self.upload_part_with(upload, n, reader, &PartOptions::default())
    }

    /// [`Store::upload_part`], with a declared md5 the part's bytes must have: a part whose
    /// md5 differs is refused with [`Error::ChecksumMismatch`] and stores nothing (an earlier
    /// copy of the part, if any, stays).
    pub fn upload_part_with(
        &self,
        upload: UploadId,
        n: u32,
        mut reader: impl Read,
        opts: &PartOptions,
    ) -> Result<Part> {
        let mp = self
            .read(|r| r.multipart(upload))?
            .ok_or(Error::MultipartNotFound { upload })?;
        let last = mp.last_part_number();
        if n > last {
            return Err(Error::MultipartInvalidPartNumber { part: n, last });
        }
        let expected = mp.expected_part_size(n);
        let limits = StreamLimits {
            declared: Some(expected),
            cap: None,
        };
        let with_md5 = self.inner.cfg.md5 || opts.md5.is_some();
        let staged = stage(self, &mut reader, limits, with_md5).map_err(|e| match e {
            Error::UnexpectedFileSize { actual, .. } => Error::MultipartPartSize {
                part: n,
                expected,
                actual,
            },
            other => other,
        })?;
        // On a mismatch the staged bytes are discarded when `staged` drops.
        let declared = PutOptions {
            md5: opts.md5.clone(),
            ..PutOptions::default()
        };
        check_declared(&staged.digest, &declared)?;
        let part = self.write(|tx| {
            let mp =
                multipart_row(&tx.t, upload.raw())?.ok_or(Error::MultipartNotFound { upload })?;
            tx.writable_bucket(BucketId::from_raw(mp.bucket))?;
            let now = tx.now;
            let created = match part_row(&tx.t, upload.raw(), n)? {
                Some(old) => {
                    discard(&mut tx.t, old.staging)?;
                    old.created
                }
                None => now,
            };
            claim_for_part(&mut tx.t, &staged, upload.raw(), n)?;
            let row = PartRow {
                staging: staged.id,
                size: staged.size,
                blake3: staged.digest.0,
                md5: staged.digest.1,
                created,
                updated: now,
            };
            tx.t.parts
                .write()?
                .insert((upload.raw(), n), enc(&row)?.as_slice())?;
            Ok(Part::from_row(n, mp.part_size, &row))
        })?;
        staged.committed();
        Ok(part)
    }

    /// Completes an upload: every part must be there. The parts become one file (or the
    /// identical file already stored at the bucket's location) and a new head version; the
    /// reservation turns into the file's size. In a bucket whose location keeps its content in
    /// an object store, the assembled parts are uploaded there first, as one object, before
    /// the commit. Any failure leaves the upload as it was, to be retried or aborted (an
    /// object already uploaded is left for [`Store::gc_location`]).
    pub fn complete_multipart(&self, upload: UploadId) -> Result<ObjectVersion> {
        self.complete_multipart_then(upload, |_, version| Ok(version))
    }

    /// [`Store::complete_multipart`], then `then` in the same transaction as the new version.
    pub(crate) fn complete_multipart_then<T>(
        &self,
        upload: UploadId,
        then: impl FnOnce(&mut WriteTx<'_>, ObjectVersion) -> Result<T>,
    ) -> Result<T> {
        // The assembled content goes to the bucket's place first, outside the writer, read
        // from the parts on a snapshot: hashed where the parts are (the store file), or
        // uploaded to the bucket's location. Then one transaction adopts it.
        let snap = self.snapshot()?;
        let mp =
            multipart_row(&snap.t, upload.raw())?.ok_or(Error::MultipartNotFound { upload })?;
        let bucket = BucketId::from_raw(mp.bucket);
        let location = snap
            .bucket_with_deleted(bucket)?
            .ok_or(Error::BucketNotFound { bucket })?
            .location;
        let (place, backend) = Place::of_location(&snap.t, &snap.cfg, &location)?;
        let last = last_part(mp.size, mp.part_size);
        let mut missing = Vec::new();
        let mut parts = Parts {
            upload,
            parts: Vec::new(),
            size: mp.size,
        };
        for n in 0..=last {
            match part_row(&snap.t, upload.raw(), n)? {
                Some(p) => {
                    let base = part_range(mp.size, mp.part_size, n).0;
                    parts.parts.push((n, p.staging, base));
                }
                None if missing.len() < 100 => missing.push(n),
                None => {}
            }
        }
        if !missing.is_empty() {
            return Err(Error::MultipartMissingParts { missing });
        }
        let mut staged =
            place.stage_parts(self, backend.as_deref(), &snap, &parts, self.inner.cfg.md5)?;
        drop(snap);

        let out = self.write(|tx| {
            let now_mp =
                multipart_row(&tx.t, upload.raw())?.ok_or(Error::MultipartNotFound { upload })?;
            let bucket = BucketId::from_raw(now_mp.bucket);
            let row = tx.writable_bucket(bucket)?;
            // A part re-sent since the snapshot makes what was staged stale: refuse, the
            // caller retries.
            for &(n, staging, _) in &parts.parts {
                match part_row(&tx.t, upload.raw(), n)? {
                    Some(cur) if cur.staging == staging => {}
                    _ => {
                        return Err(Error::MultipartMissingParts { missing: vec![n] });
                    }
                }
            }
            let file = staged.adopt(tx, &row.storage_class)?;
            let u = upload.raw();
            tx.t.parts
                .write()?
                .retain_in((u, 0)..=(u, u32::MAX), |_, _| false)?;
            tx.t.multipart.write()?.remove(u)?;
            tx.add_bucket_size(bucket, -i128::from(mp.size))?;
            let version = tx.append_version(bucket, &mp.key, Some(file), None)?;
            tx.after_hooks(|| crate::hooks::Event::MultipartCompleted {
                upload,
                version: version.clone(),
            });
            then(tx, version)
        })?;
        staged.committed();
        Ok(out)
    }

    /// Aborts an upload (see [`WriteTx::abort_multipart`]).
    pub fn abort_multipart(&self, upload: UploadId) -> Result<()> {
        self.write(|tx| tx.abort_multipart(upload))
    }

    /// Aborts uploads older than the configured expiry (4 days by default). Returns how many.
    pub fn expire_multipart(&self) -> Result<usize> {
        let d = self.inner.cfg.multipart.expires;
        self.write(|tx| tx.expire_multipart(d))
    }
}
