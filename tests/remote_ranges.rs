//! Range reads of content in another location, at the edges of the chunks its hashes cover:
//! every way a remote file is made (one request, a streamed upload, a multipart upload
//! completed into the location, a file moved there) reads back the right bytes around every
//! chunk boundary, with one request per read. The backend here is an in-memory map so the
//! byte arithmetic is checked on every run; `tests/s3.rs` checks the same against Garage. The
//! same backend checks how content reaches the location: dedup, and multipart completions and
//! moves refused at their commit.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{ContentBackend, ContentUpload, Error, FileReader, MultipartLimits};
use std::collections::HashMap;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

/// The chunk size of content in another location (docs/S3.md, docs/FORMAT.md).
const REMOTE_CHUNK: usize = 64 * 1024;

/// Objects in memory, counting the ranged reads made of them.
#[derive(Debug, Default)]
struct Memory {
    objects: parking_lot::Mutex<HashMap<String, Vec<u8>>>,
    gets: AtomicUsize,
}

struct MemoryUpload {
    to: Arc<Memory>,
    key: String,
    bytes: Vec<u8>,
}

impl ContentUpload for MemoryUpload {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.to.objects.lock().insert(self.key, self.bytes);
        Ok(())
    }
    fn abort(self: Box<Self>) {}
}

/// The backend handed to the store: a handle on the shared [`Memory`].
#[derive(Debug)]
struct MemoryBackend(Arc<Memory>);

impl ContentBackend for MemoryBackend {
    fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        self.0.objects.lock().insert(key.to_string(), bytes);
        Ok(())
    }
    fn start_upload(&self, key: &str) -> io::Result<Box<dyn ContentUpload>> {
        Ok(Box::new(MemoryUpload {
            to: Arc::clone(&self.0),
            key: key.to_string(),
            bytes: Vec::new(),
        }))
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> io::Result<Vec<u8>> {
        self.0.gets.fetch_add(1, Ordering::SeqCst);
        let objects = self.0.objects.lock();
        let o = objects.get(key).ok_or(io::ErrorKind::NotFound)?;
        let end = (range.end as usize).min(o.len());
        Ok(o[(range.start as usize).min(end)..end].to_vec())
    }
    fn size(&self, key: &str) -> io::Result<Option<u64>> {
        Ok(self.0.objects.lock().get(key).map(|o| o.len() as u64))
    }
    fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        let mut objects = self.0.objects.lock();
        let o = objects.get(from).ok_or(io::ErrorKind::NotFound)?.clone();
        objects.insert(to.to_string(), o);
        Ok(())
    }
    fn delete(&self, key: &str) -> io::Result<()> {
        self.0.objects.lock().remove(key);
        Ok(())
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<(String, SystemTime)>> {
        Ok(self
            .0
            .objects
            .lock()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .map(|k| (k.clone(), SystemTime::now()))
            .collect())
    }
}

/// A store whose location `remote` keeps its content in `memory`, with a bucket there.
fn remote_store(memory: &Arc<Memory>) -> (Store, BucketId) {
    let store = Store::builder()
        .location_backend("remote", Arc::new(MemoryBackend(Arc::clone(memory))))
        .multipart_limits(MultipartLimits {
            min_part_size: 10,
            max_part_size: 64 << 20,
            max_parts: 100,
            expires: std::time::Duration::from_secs(3600),
        })
        .in_memory()
        .unwrap();
    store
        .write(|tx| {
            tx.create_location("remote", "s3://memory/x", false)
                .map(|_| ())
        })
        .unwrap();
    let b = store
        .create_bucket(&BucketOptions {
            location: Some("remote".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    (store, b)
}

/// Ranges around every chunk boundary of a file of `len` bytes, and at its end.
fn boundary_ranges(len: usize) -> Vec<(usize, usize)> {
    let c = REMOTE_CHUNK;
    let mut out = vec![(0, 1), (0, c), (0, c + 1), (len - 1, 1), (len - 5, 100)];
    for b in (c..len).step_by(c) {
        out.extend([
            (b - 1, 1),
            (b - 1, 2),
            (b, 1),
            (b, c),
            (b - 3, c + 6),
            (b + 1, 2 * c),
            (b - c / 2, 64 * 1024),
        ]);
    }
    out
}

/// Checks every boundary range of `data` through fresh readers `open` gives (one request
/// each), then through one reader kept across them (which may read ahead on a thread of its
/// own, so its requests are not counted), and a sequential read in odd buffers.
fn assert_ranges(memory: &Memory, data: &[u8], mut open: impl FnMut() -> FileReader) {
    let ranges = boundary_ranges(data.len());
    let want = |at: usize, len: usize| &data[at..(at + len).min(data.len())];
    for &(at, len) in &ranges {
        let before = memory.gets.load(Ordering::SeqCst);
        let got = open().read_range(at as u64, len).unwrap();
        assert_eq!(
            got,
            want(at, len),
            "range {at}+{len} through a fresh reader"
        );
        assert_eq!(
            memory.gets.load(Ordering::SeqCst) - before,
            1,
            "range {at}+{len}: one request"
        );
    }
    let mut kept = open();
    for &(at, len) in &ranges {
        let got = kept.read_range(at as u64, len).unwrap();
        assert_eq!(got, want(at, len), "range {at}+{len} through a kept reader");
    }
    let mut all = Vec::new();
    let mut r = open();
    let mut buf = vec![0; 7777];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    assert!(all == data, "sequential read in 7,777-byte buffers");
}

#[test]
fn remote_content_is_hashed_in_64_kib_chunks() {
    let memory = Arc::new(Memory::default());
    let (store, b) = remote_store(&memory);
    let v = put(&store, b, "f", &bytes(1, 3 * REMOTE_CHUNK + 10));
    let file = store.file(v.file_id.unwrap()).unwrap().unwrap();
    assert_eq!(file.chunk_size as usize, REMOTE_CHUNK);
}

#[test]
fn range_reads_at_chunk_boundaries_of_content_put_in_one_request() {
    let memory = Arc::new(Memory::default());
    let (store, b) = remote_store(&memory);
    let data = bytes(2, 10 * REMOTE_CHUNK + 1234);
    put(&store, b, "f", &data);
    assert_ranges(&memory, &data, || store.open_object(b, "f").unwrap());
    assert_consistent(&store);
}

#[test]
fn range_reads_at_chunk_boundaries_of_streamed_content() {
    let memory = Arc::new(Memory::default());
    let (store, b) = remote_store(&memory);
    // Over 8 MiB: a streamed (multipart) upload, then a copy to the final name.
    let data = bytes(3, (9 << 20) + 777);
    put(&store, b, "f", &data);
    assert_ranges(&memory, &data, || store.open_object(b, "f").unwrap());
    assert_consistent(&store);
}

#[test]
fn range_reads_at_chunk_boundaries_after_a_multipart_upload_into_the_location() {
    let memory = Arc::new(Memory::default());
    let (store, b) = remote_store(&memory);
    let data = bytes(4, 5 * REMOTE_CHUNK + 99);
    let part = 100_000;
    let mp = store
        .init_multipart(b, "mp", data.len() as u64, part as u64)
        .unwrap();
    for (n, piece) in data.chunks(part).enumerate() {
        store.upload_part(mp.id, n as u32, piece).unwrap();
    }
    let v = store.complete_multipart(mp.id).unwrap();
    let file = store.file(v.file_id.unwrap()).unwrap().unwrap();
    assert_eq!(
        file.chunk_size as usize, REMOTE_CHUNK,
        "moved to the location"
    );
    assert_ranges(&memory, &data, || store.open_object(b, "mp").unwrap());
    assert!(store.verify_file(file.id).unwrap());
    assert_consistent(&store);
}

#[test]
fn range_reads_at_chunk_boundaries_after_moves_into_and_out_of_the_location() {
    let memory = Arc::new(Memory::default());
    let (store, _) = remote_store(&memory);
    let local = bucket(&store).id;
    let data = bytes(5, 7 * REMOTE_CHUNK + 5);
    let file = put(&store, local, "f", &data).file_id.unwrap();
    let embedded_chunk = store.file(file).unwrap().unwrap().chunk_size;

    let moved = store.migrate_file(file, "remote", &mut |_, _| {}).unwrap();
    assert_eq!(moved.chunk_size as usize, REMOTE_CHUNK);
    assert_ranges(&memory, &data, || store.open_file(file).unwrap());
    assert!(store.verify_file(file).unwrap());
    assert_consistent(&store);

    let back = store.migrate_file(file, "default", &mut |_, _| {}).unwrap();
    assert_eq!(back.chunk_size, embedded_chunk);
    assert_eq!(read_all(&store, local, "f"), data);
    assert!(store.verify_file(file).unwrap());
    assert_consistent(&store);
}

#[test]
fn a_byte_altered_after_a_chunk_boundary_fails_only_reads_of_that_chunk() {
    let memory = Arc::new(Memory::default());
    let (store, b) = remote_store(&memory);
    let data = bytes(6, 4 * REMOTE_CHUNK);
    put(&store, b, "f", &data);
    for o in memory.objects.lock().values_mut() {
        o[2 * REMOTE_CHUNK] ^= 1;
    }
    let mut r = store.open_object(b, "f").unwrap();
    let before = 2 * REMOTE_CHUNK - 10;
    assert_eq!(
        r.read_range(before as u64, 10).unwrap(),
        &data[before..before + 10]
    );
    match store
        .open_object(b, "f")
        .unwrap()
        .read_range(before as u64, 11)
    {
        Err(Error::Corruption { .. }) => {}
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn identical_content_in_two_buckets_of_the_location_is_one_file_and_one_object() {
    let memory = Arc::new(Memory::default());
    let (store, first) = remote_store(&memory);
    let second = store
        .create_bucket(&BucketOptions {
            location: Some("remote".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    let data = bytes(3, 2 * REMOTE_CHUNK + 5);
    let a = put(&store, first, "a", &data);
    let b = put(&store, second, "b", &data);
    assert_eq!(
        a.file_id, b.file_id,
        "the second put reuses the first one's file"
    );
    assert_eq!(memory.objects.lock().len(), 1, "one object holds both");
    assert_consistent(&store);
    // The object goes with its last reference, not before.
    store.remove_version(a.version_id).unwrap();
    assert_eq!(
        memory.objects.lock().len(),
        1,
        "still referenced by the second bucket"
    );
    store.remove_version(b.version_id).unwrap();
    assert!(
        memory.objects.lock().is_empty(),
        "freed with its last reference"
    );
    assert_consistent(&store);
}

#[test]
fn a_multipart_upload_completed_into_the_location_reuses_the_file_of_identical_content() {
    let memory = Arc::new(Memory::default());
    let (store, b) = remote_store(&memory);
    let data = bytes(7, 3 * REMOTE_CHUNK + 17);
    let plain = put(&store, b, "plain", &data);
    let part = 100_000;
    let mp = store
        .init_multipart(b, "multi", data.len() as u64, part as u64)
        .unwrap();
    for (n, piece) in data.chunks(part).enumerate() {
        store.upload_part(mp.id, n as u32, piece).unwrap();
    }
    let multi = store.complete_multipart(mp.id).unwrap();
    assert_eq!(
        multi.file_id, plain.file_id,
        "the completion reuses the file"
    );
    assert_eq!(memory.objects.lock().len(), 1, "one object holds both");
    assert_eq!(
        store.stats().unwrap().chunks,
        0,
        "the parts' chunks are given up"
    );
    assert_eq!(read_all(&store, b, "multi"), data);
    assert_consistent(&store);
}

#[test]
fn a_multipart_completion_refused_at_its_commit_keeps_the_upload_and_leaves_only_what_gc_reclaims()
{
    let memory = Arc::new(Memory::default());
    let (store, b) = remote_store(&memory);
    let data = bytes(8, 2 * REMOTE_CHUNK + 3);
    let part = 100_000;
    let mp = store
        .init_multipart(b, "mp", data.len() as u64, part as u64)
        .unwrap();
    for (n, piece) in data.chunks(part).enumerate() {
        store.upload_part(mp.id, n as u32, piece).unwrap();
    }
    store.set_bucket_locked(b, true).unwrap();
    assert!(matches!(
        store.complete_multipart(mp.id),
        Err(Error::BucketLocked { .. })
    ));
    assert_eq!(
        store.read(|r| r.parts(mp.id)).unwrap().len(),
        2,
        "the parts stay"
    );
    assert!(store.object(b, "mp").unwrap().is_none());
    assert_consistent(&store);
    // What the refused completion uploaded is referred to by nothing.
    let gc = store
        .gc_location("remote", std::time::Duration::ZERO)
        .unwrap();
    assert_eq!(gc.deleted as usize, gc.listed as usize);
    assert!(memory.objects.lock().is_empty());

    store.set_bucket_locked(b, false).unwrap();
    store.complete_multipart(mp.id).unwrap();
    assert_eq!(read_all(&store, b, "mp"), data);
    assert_eq!(store.stats().unwrap().chunks, 0, "the parts are given up");
    assert_eq!(memory.objects.lock().len(), 1);
    assert_consistent(&store);
}

#[test]
fn a_move_into_the_store_file_refused_at_its_commit_leaves_no_staged_chunks() {
    let memory = Arc::new(Memory::default());
    let (store, b) = remote_store(&memory);
    let data = bytes(9, 3 * REMOTE_CHUNK + 1);
    let file = put(&store, b, "f", &data).file_id.unwrap();
    // Once its bytes are copied, another move takes the file first: this one's commit finds
    // the file gone from where the move found it and is refused.
    let other = store.clone();
    let mut moved_meanwhile = false;
    let err = store
        .migrate_file(file, "default", &mut |done, total| {
            if done == total && !moved_meanwhile {
                moved_meanwhile = true;
                other.migrate_file(file, "default", &mut |_, _| {}).unwrap();
            }
        })
        .unwrap_err();
    assert!(moved_meanwhile);
    assert!(matches!(err, Error::InvalidOperation { .. }), "{err:?}");
    // The other move stands; this one's staged chunks are gone (the check counts every
    // staging row and chunk reference).
    assert_eq!(read_all(&store, b, "f"), data);
    assert!(store.verify_file(file).unwrap());
    assert!(
        memory.objects.lock().is_empty(),
        "the object left with the file"
    );
    assert_consistent(&store);
}

#[test]
fn a_move_into_the_location_refused_at_its_commit_leaves_only_what_gc_reclaims() {
    let memory = Arc::new(Memory::default());
    let (store, _) = remote_store(&memory);
    let local = bucket(&store).id;
    let data = bytes(10, 3 * REMOTE_CHUNK + 1);
    let v = put(&store, local, "f", &data);
    let file = v.file_id.unwrap();
    // Once its bytes are read, the file's only version goes: the move's commit finds no file.
    let other = store.clone();
    let mut removed = false;
    let err = store
        .migrate_file(file, "remote", &mut |done, total| {
            if done == total && !removed {
                removed = true;
                other.remove_version(v.version_id).unwrap();
            }
        })
        .unwrap_err();
    assert!(removed);
    assert!(matches!(err, Error::FileNotFound { .. }), "{err:?}");
    assert!(store.file(file).unwrap().is_none());
    assert_eq!(
        store.stats().unwrap().chunks,
        0,
        "the file's chunks went with it"
    );
    assert_consistent(&store);
    // The object uploaded for the move is referred to by nothing.
    let gc = store
        .gc_location("remote", std::time::Duration::ZERO)
        .unwrap();
    assert_eq!(gc.deleted as usize, gc.listed as usize);
    assert!(memory.objects.lock().is_empty());
}

/// The source of the import tests: a store whose location `remote` keeps a large and a small
/// file, with a bucket in the store file beside it; its dump and each file's content.
fn import_source() -> (
    recfiles::transfer::ImportSet,
    HashMap<recfiles::FileId, Vec<u8>>,
    BucketId,
    BucketId,
) {
    use recfiles::transfer::{self, ImportSet};
    let from = Arc::new(Memory::default());
    let (source, far) = remote_store(&from);
    let near = source.create_bucket(&BucketOptions::default()).unwrap().id;
    put(&source, far, "large", &bytes(4, 2 * REMOTE_CHUNK + 5));
    put(&source, far, "small", b"a few bytes");
    put(&source, near, "here", b"stays in the store file");
    let snap = source.snapshot().unwrap();
    let mut set = ImportSet {
        store: transfer::dump_store(&snap).unwrap(),
        ..ImportSet::default()
    };
    for id in transfer::bucket_ids(&snap).unwrap() {
        set.buckets
            .push(transfer::dump_bucket(&snap, id).unwrap().unwrap());
    }
    let mut content = HashMap::new();
    for b in &set.buckets {
        for v in &b.versions {
            if let Some(f) = &v.file {
                let mut buf = Vec::new();
                snap.open_file(f.id).unwrap().read_to_end(&mut buf).unwrap();
                content.insert(f.id, buf);
            }
        }
    }
    (set, content, far, near)
}

fn import_into(
    target: &Store,
    set: &recfiles::transfer::ImportSet,
    content: &HashMap<recfiles::FileId, Vec<u8>>,
) -> recfiles::Result<recfiles::transfer::ImportReport> {
    recfiles::transfer::import(target, set, &mut |f: &recfiles::transfer::FileDump| {
        Ok(Box::new(io::Cursor::new(content[&f.id].clone())))
    })
}

/// An import puts the content of a bucket in a location into that location, as a put there
/// does: a store restored from an export keeps its buckets' content where they say it is.
/// (Imports used to write every file into the store file.)
#[test]
fn an_import_puts_the_content_of_a_bucket_in_a_location_there() {
    let (set, content, far, near) = import_source();
    let large = bytes(4, 2 * REMOTE_CHUNK + 5);
    let to = Arc::new(Memory::default());
    let target = Store::builder()
        .location_backend("remote", Arc::new(MemoryBackend(Arc::clone(&to))))
        .in_memory()
        .unwrap();
    import_into(&target, &set, &content).unwrap();
    assert_consistent(&target);
    let mut objects: Vec<Vec<u8>> = to.objects.lock().values().cloned().collect();
    objects.sort();
    let mut expected = vec![large.clone(), b"a few bytes".to_vec()];
    expected.sort();
    assert_eq!(
        objects, expected,
        "the location holds the content of its bucket, and only that"
    );
    assert_eq!(read_all(&target, far, "large"), large);
    assert_eq!(read_all(&target, far, "small"), b"a few bytes");
    assert_eq!(read_all(&target, near, "here"), b"stays in the store file");
    // Reads of the location's content go to the location.
    let before = to.gets.load(Ordering::SeqCst);
    assert_eq!(read_all(&target, far, "large"), large);
    assert!(to.gets.load(Ordering::SeqCst) > before);
    // The imported files keep their ids, and the dump of the target is the source's.
    let again = target.snapshot().unwrap();
    for b in &set.buckets {
        assert_eq!(
            &recfiles::transfer::dump_bucket(&again, b.id)
                .unwrap()
                .unwrap(),
            b,
            "bucket {} imported as it was",
            b.id
        );
    }
}

/// Whether an import clashes with content the store already holds depends on where that
/// content is: the same bytes in the store file do not stop a file going to the location, the
/// same bytes already in the location (as another file) do, as they would in the store file.
#[test]
fn an_import_clashes_only_with_content_already_at_the_place_it_goes_to() {
    let (set, content, _, _) = import_source();
    let large = bytes(4, 2 * REMOTE_CHUNK + 5);
    let to = Arc::new(Memory::default());
    let target = Store::builder()
        .location_backend("remote", Arc::new(MemoryBackend(Arc::clone(&to))))
        .in_memory()
        .unwrap();
    let here = target.create_bucket(&BucketOptions::default()).unwrap().id;
    put(&target, here, "same bytes", &large);
    import_into(&target, &set, &content).unwrap();
    assert_consistent(&target);
    assert_eq!(to.objects.lock().len(), 2);

    let to = Arc::new(Memory::default());
    let (target, there) = remote_store(&to);
    put(&target, there, "same bytes", &large);
    let before = target.stats().unwrap();
    match import_into(&target, &set, &content) {
        Err(Error::ImportConflict { what, .. }) => assert_eq!(what, "file with the content of"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        target.stats().unwrap(),
        before,
        "a refused import changes nothing"
    );
    assert_consistent(&target);

    // A location of another name over the same prefix would share its objects: refused too.
    let target = Store::builder()
        .location_backend(
            "mirror",
            Arc::new(MemoryBackend(Arc::new(Memory::default()))),
        )
        .in_memory()
        .unwrap();
    target
        .write(|tx| {
            tx.create_location("mirror", "s3://memory/x", false)
                .map(|_| ())
        })
        .unwrap();
    match import_into(&target, &set, &content) {
        Err(Error::ImportConflict { what, id }) => {
            assert_eq!(what, "location with the same object-store prefix");
            assert!(id.contains("mirror"), "{id}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}
