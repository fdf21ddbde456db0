//! Staged uploads: large content is written in batches; an upload abandoned half-way leaves
//! nothing visible, and the next open clears its staged chunks.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{FilesQuery, MultipartLimits};
use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
use std::io::Read;
use std::path::Path;

const STAGING: TableDefinition<u128, &[u8]> = TableDefinition::new("staging");
const STAGED_CHUNKS: TableDefinition<(u128, u64), [u8; 32]> = TableDefinition::new("staged_chunks");
const CHUNKS: TableDefinition<u128, &[u8]> = TableDefinition::new("chunks");

fn builder() -> StoreBuilder {
    Store::builder().chunk_size(4096).staging_batch(16 * 1024)
}

/// (staging rows, staged chunk rows, chunks) as the raw file holds them.
fn raw_counts(path: &Path) -> (u64, u64, u64) {
    let db = common::raw_db(path);
    let r = db.begin_read().unwrap();
    (
        r.open_table(STAGING).unwrap().len().unwrap(),
        r.open_table(STAGED_CHUNKS).unwrap().len().unwrap(),
        r.open_table(CHUNKS).unwrap().len().unwrap(),
    )
}

/// A stream that ends the process (no unwinding, no destructors) once `die_at` bytes have been
/// handed out: a process killed in the middle of an upload. Just before, another durable commit
/// lands, which makes the staging batches written so far durable too (they are committed
/// without fsync of their own).
struct DiesMidway {
    given: usize,
    die_at: usize,
    store: Store,
    bucket: BucketId,
}

impl Read for DiesMidway {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.given >= self.die_at {
            put(&self.store, self.bucket, "witness", b"durable");
            std::process::exit(0);
        }
        let n = buf.len().min(self.die_at - self.given).min(4096);
        buf[..n].copy_from_slice(&bytes(self.given as u64, n));
        self.given += n;
        Ok(n)
    }
}

#[test]
fn an_upload_abandoned_by_a_dead_process_is_cleared_on_reopen() {
    if let Ok(path) = std::env::var("RECFILES_TEST_STAGING_CHILD") {
        let store = builder().open(&path).unwrap();
        let b = store.buckets().unwrap()[0].id;
        let reader = DiesMidway {
            given: 0,
            die_at: 200_000,
            store: store.clone(),
            bucket: b,
        };
        let _ = store.put_object(b, "dying", reader, &PutOptions::default());
        unreachable!("the reader ends the process");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = builder().open(&path).unwrap();
        let b = bucket(&store);
        put(&store, b.id, "kept", &bytes(1, 50_000));
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_upload_abandoned_by_a_dead_process_is_cleared_on_reopen",
            "--nocapture",
        ])
        .env("RECFILES_TEST_STAGING_CHILD", &path)
        .status()
        .unwrap();
    assert!(status.success());
    let (rows, staged, _) = raw_counts(&path);
    assert!(
        rows == 1 && staged > 0,
        "the child left staged chunks: {rows} rows, {staged} chunks"
    );
    {
        let store = builder().open(&path).unwrap();
        assert_consistent(&store);
        let b = store.buckets().unwrap()[0].id;
        assert!(store.object(b, "dying").unwrap().is_none());
        assert_eq!(read_all(&store, b, "witness"), b"durable");
        assert_eq!(read_all(&store, b, "kept"), bytes(1, 50_000));
    }
    let (rows, staged, chunks) = raw_counts(&path);
    assert_eq!((rows, staged), (0, 0));
    assert_eq!(
        chunks,
        50_000u64.div_ceil(4096),
        "only the kept file's chunks remain (the witness is stored inline)"
    );
}

#[test]
fn a_part_upload_killed_before_its_first_batch_leaves_no_staging_row() {
    // A part's bytes are staged as they arrive, and the staging row goes in with the first
    // batch of chunks: a process that dies while that batch is still being read has committed
    // nothing for the part (the row used to be committed before the first byte was read).
    let limits = MultipartLimits {
        min_part_size: 1024,
        ..MultipartLimits::default()
    };
    if let Ok(path) = std::env::var("RECFILES_TEST_STAGING_EARLY_CHILD") {
        let store = builder().multipart_limits(limits).open(&path).unwrap();
        let b = store.buckets().unwrap()[0].id;
        let up = store.init_multipart(b, "parts", 200_000, 100_000).unwrap();
        let reader = DiesMidway {
            given: 0,
            // Less than a staging batch (16 KiB): no batch of the part is written yet.
            die_at: 10_000,
            store: store.clone(),
            bucket: b,
        };
        let _ = store.upload_part(up.id, 0, reader);
        unreachable!("the reader ends the process");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = builder().open(&path).unwrap();
        bucket(&store);
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_part_upload_killed_before_its_first_batch_leaves_no_staging_row",
            "--nocapture",
        ])
        .env("RECFILES_TEST_STAGING_EARLY_CHILD", &path)
        .status()
        .unwrap();
    assert!(status.success());
    // Read before a reopen could clear what the child left.
    assert_eq!(
        raw_counts(&path),
        (0, 0, 0),
        "(staging rows, staged chunks, chunks) the dead part left"
    );
    let store = builder().multipart_limits(limits).open(&path).unwrap();
    assert_consistent(&store);
    let b = store.buckets().unwrap()[0].id;
    assert_eq!(read_all(&store, b, "witness"), b"durable");
    let snap = store.snapshot().unwrap();
    let up = snap.multipart_uploads(b).unwrap();
    assert_eq!(up.len(), 1, "the upload itself was committed");
    assert!(snap.parts(up[0].id).unwrap().is_empty(), "no part");
}

#[test]
fn a_reader_that_panics_mid_upload_leaves_nothing() {
    let store = builder().in_memory().unwrap();
    let b = bucket(&store);
    struct Panics(usize);
    impl Read for Panics {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 > 100_000 {
                panic!("reader exploded");
            }
            let n = buf.len().min(4096);
            buf[..n].fill(1);
            self.0 += n;
            Ok(n)
        }
    }
    let s = store.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _ = s.put_object(b.id, "x", Panics(0), &PutOptions::default());
    }));
    assert!(outcome.is_err());
    assert!(store.object(b.id, "x").unwrap().is_none());
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 0);
    assert_consistent(&store);
    put(&store, b.id, "after", b"still works");
}

#[test]
fn large_content_is_staged_and_reads_back() {
    let store = builder().in_memory().unwrap();
    let b = bucket(&store);
    let data = bytes(2, 300_000);
    let v = put(&store, b.id, "large", &data);
    assert_eq!(v.size, Some(300_000));
    assert_eq!(read_all(&store, b.id, "large"), data);
    assert!(store.verify_file(v.file_id.unwrap()).unwrap());
    assert_consistent(&store);
}

#[test]
fn other_writers_proceed_while_a_large_upload_streams() {
    let store = builder().in_memory().unwrap();
    let b = bucket(&store);
    let (to_writer, writer_go) = std::sync::mpsc::channel::<()>();
    let (to_reader, reader_go) = std::sync::mpsc::channel::<()>();
    // A stream that, half-way, lets another thread commit and waits until it has.
    struct Handshake {
        sent: usize,
        signalled: bool,
        go: std::sync::mpsc::Sender<()>,
        done: std::sync::mpsc::Receiver<()>,
    }
    impl Read for Handshake {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.sent >= 100_000 && !self.signalled {
                self.signalled = true;
                self.go.send(()).unwrap();
                self.done.recv().unwrap();
            }
            if self.sent >= 200_000 {
                return Ok(0);
            }
            let n = buf.len().min(200_000 - self.sent).min(4096);
            buf[..n].fill(9);
            self.sent += n;
            Ok(n)
        }
    }
    let s = store.clone();
    let writer = std::thread::spawn(move || {
        writer_go.recv().unwrap();
        put(&s, b.id, "small", b"committed while the big one streams");
        to_reader.send(()).unwrap();
    });
    let big = Handshake {
        sent: 0,
        signalled: false,
        go: to_writer,
        done: reader_go,
    };
    store
        .put_object(b.id, "big", big, &PutOptions::default())
        .unwrap();
    writer.join().unwrap();
    assert!(store.object(b.id, "small").unwrap().is_some());
    assert_eq!(read_all(&store, b.id, "big").len(), 200_000);
    assert_consistent(&store);
}

/// Hands out a few bytes per call, and `Interrupted` before every third piece.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    calls: usize,
}

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = (1 + self.calls % 7)
            .min(buf.len())
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_stream_that_trickles_and_is_interrupted_is_stored_exactly() {
    let store = builder().in_memory().unwrap();
    let b = bucket(&store);
    // Inline (one chunk), chunked in one transaction, and staged over several batches (the
    // staged path reuses chunk buffers, which are read into in place).
    for (key, len) in [("inline", 3_000), ("chunked", 9_000), ("staged", 70_000)] {
        let data = bytes(len as u64, len);
        let trickle = Trickle {
            data: data.clone(),
            pos: 0,
            calls: 0,
        };
        let v = store
            .put_object(b.id, key, trickle, &PutOptions::default())
            .unwrap();
        assert_eq!(v.size, Some(len as u64), "{key}");
        assert_eq!(read_all(&store, b.id, key), data, "{key}");
    }
    assert_consistent(&store);
}

#[test]
fn a_staged_upload_gets_the_same_checksums_in_memory_and_on_a_file() {
    // An in-memory store hashes a staged upload on the uploading thread, a store on a file on
    // helper threads: both must give the file its bytes' checksums, and check declared ones.
    let dir = tempfile::tempdir().unwrap();
    let on_file = builder().md5(true).open(dir.path().join("s")).unwrap();
    let in_memory = builder().md5(true).in_memory().unwrap();
    let data = bytes(7, 70_000);
    let blake3 = blake3::hash(&data).to_hex().to_string();
    let mut seen = Vec::new();
    for store in [&on_file, &in_memory] {
        let b = bucket(store);
        let wrong = PutOptions {
            blake3: Some("0".repeat(64)),
            ..PutOptions::default()
        };
        let refused = store.put_object(b.id, "x", &data[..], &wrong);
        assert!(
            matches!(refused, Err(recfiles::Error::ChecksumMismatch { .. })),
            "{refused:?}"
        );
        let right = PutOptions {
            blake3: Some(blake3.clone()),
            ..PutOptions::default()
        };
        let v = store.put_object(b.id, "x", &data[..], &right).unwrap();
        let file = store.file(v.file_id.unwrap()).unwrap().unwrap();
        assert_eq!(read_all(store, b.id, "x"), data);
        seen.push((file.checksum.clone(), file.md5.clone()));
        assert_consistent(store);
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[0].1.is_some(), "md5 is on");
}
