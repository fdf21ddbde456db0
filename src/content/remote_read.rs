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

#[cfg(test)]
mod tests {
    //! Files of one location written with different chunk sizes (256 KiB by builds before
    //! 64 KiB) live side by side: each reads, checks and deduplicates by its own row.
    use super::super::remote::{REMOTE_CHUNK, register_remote, upload_stream};
    use super::super::write::StreamLimits;
    use super::super::{ContentBackend, ContentUpload};
    use crate::files::{BucketOptions, PutOptions};
    use crate::ids::BucketId;
    use crate::storage::Store;
    use parking_lot::Mutex;
    use std::collections::HashMap;
    use std::io;
    use std::ops::Range;
    use std::sync::Arc;
    use std::time::SystemTime;

    #[derive(Debug, Default)]
    struct Memory(Arc<Mutex<HashMap<String, Vec<u8>>>>);

    struct Upload(Arc<Mutex<HashMap<String, Vec<u8>>>>, String, Vec<u8>);

    impl ContentUpload for Upload {
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.2.extend_from_slice(bytes);
            Ok(())
        }
        fn finish(self: Box<Self>) -> io::Result<()> {
            self.0.lock().insert(self.1, self.2);
            Ok(())
        }
        fn abort(self: Box<Self>) {}
    }

    impl ContentBackend for Memory {
        fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
            self.0.lock().insert(key.to_string(), bytes);
            Ok(())
        }
        fn start_upload(&self, key: &str) -> io::Result<Box<dyn ContentUpload>> {
            Ok(Box::new(Upload(
                Arc::clone(&self.0),
                key.into(),
                Vec::new(),
            )))
        }
        fn get_range(&self, key: &str, range: Range<u64>) -> io::Result<Vec<u8>> {
            let objects = self.0.lock();
            let o = objects.get(key).ok_or(io::ErrorKind::NotFound)?;
            let end = (range.end as usize).min(o.len());
            Ok(o[(range.start as usize).min(end)..end].to_vec())
        }
        fn size(&self, key: &str) -> io::Result<Option<u64>> {
            Ok(self.0.lock().get(key).map(|o| o.len() as u64))
        }
        fn copy(&self, from: &str, to: &str) -> io::Result<()> {
            let mut objects = self.0.lock();
            let o = objects.get(from).ok_or(io::ErrorKind::NotFound)?.clone();
            objects.insert(to.to_string(), o);
            Ok(())
        }
        fn delete(&self, key: &str) -> io::Result<()> {
            self.0.lock().remove(key);
            Ok(())
        }
        fn list(&self, prefix: &str) -> io::Result<Vec<(String, SystemTime)>> {
            let objects = self.0.lock();
            let keys = objects.keys().filter(|k| k.starts_with(prefix));
            Ok(keys.map(|k| (k.clone(), SystemTime::now())).collect())
        }
    }

    fn content(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
            .collect()
    }

    /// Puts `data` as `key` the way a build with `chunk_size` chunks did.
    fn put_chunked(
        store: &Store,
        backend: &Memory,
        b: BucketId,
        key: &str,
        data: &[u8],
        chunk_size: usize,
    ) {
        let limits = StreamLimits {
            declared: None,
            cap: None,
        };
        let up = upload_stream(
            backend,
            "remote",
            &mut &data[..],
            limits,
            false,
            chunk_size,
            &|_| Ok(()),
            &|_| Ok(false),
        )
        .unwrap();
        store
            .write(|tx| {
                let file = register_remote(&mut tx.t, "remote", &up, "S", tx.now)?;
                tx.append_version(b, key, Some(file), None).map(|_| ())
            })
            .unwrap();
    }

    #[test]
    fn files_of_256_kib_and_64_kib_chunks_share_a_location() {
        let objects = Arc::new(Mutex::new(HashMap::new()));
        let store = Store::builder()
            .location_backend("remote", Arc::new(Memory(Arc::clone(&objects))))
            .in_memory()
            .unwrap();
        store
            .write(|tx| tx.create_location("remote", "s3://m/x", false).map(|_| ()))
            .unwrap();
        let opts = BucketOptions {
            location: Some("remote".into()),
            ..Default::default()
        };
        let b = store.create_bucket(&opts).unwrap().id;
        let backend = Memory(Arc::clone(&objects));
        let old = content(1, 3 * 256 * 1024 + 99);
        put_chunked(&store, &backend, b, "old", &old, 256 * 1024);
        let new = content(2, 5 * REMOTE_CHUNK + 7);
        let v_new = store
            .put_object(b, "new", &new[..], &PutOptions::default())
            .unwrap();
        let old_file = store.object(b, "old").unwrap().unwrap().file_id.unwrap();
        assert_eq!(
            store.file(old_file).unwrap().unwrap().chunk_size,
            256 * 1024
        );
        let new_file = v_new.file_id.unwrap();
        assert_eq!(
            store.file(new_file).unwrap().unwrap().chunk_size as usize,
            REMOTE_CHUNK
        );
        for (key, data, piece) in [("old", &old, 256 * 1024), ("new", &new, REMOTE_CHUNK)] {
            for b0 in (piece..data.len()).step_by(piece) {
                for (at, len) in [(b0 - 1, 2), (b0 - 3, piece + 6), (b0, 1)] {
                    let got = store
                        .open_object(b, key)
                        .unwrap()
                        .read_range(at as u64, len)
                        .unwrap();
                    assert_eq!(
                        got,
                        &data[at..(at + len).min(data.len())],
                        "{key} {at}+{len}"
                    );
                }
            }
        }
        // The same content put now deduplicates onto the file of 256 KiB chunks.
        let again = store
            .put_object(b, "again", &old[..], &PutOptions::default())
            .unwrap();
        assert_eq!(again.file_id, Some(old_file));
        assert!(store.verify_file(old_file).unwrap());
        assert!(store.verify_file(new_file).unwrap());
        assert!(store.check().unwrap().is_ok());
        // Its object goes with the last of its references.
        assert_eq!(objects.lock().len(), 2);
        store.delete_object(b, "old").unwrap();
        store.remove_bucket(b).unwrap();
        assert!(store.check().unwrap().is_ok());
        assert_eq!(objects.lock().len(), 0);
    }
}
