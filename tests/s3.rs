//! File content on an S3-compatible object store: a real Garage server on loopback (see
//! `common/garage.rs`), never a mock. Each test starts a node of its own.
#![cfg(feature = "s3")]

mod common;
mod http_support;
use common::garage::{Cluster, Garage, Killer};
use common::*;
use recfiles::prelude::*;
use recfiles::{ContentBackend, Error, FilesQuery, Store};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

const BUCKET: &str = "recfiles-test";

/// A store whose location `cluster` (`s3://recfiles-test/<prefix>`) keeps its content on the
/// node, with a bucket there and one in the embedded default location.
struct Setup {
    store: Store,
    backend: Arc<recfiles::ObjectStoreBackend>,
    remote: BucketId,
    local: BucketId,
}

/// A bucket in the location `cluster` of `store`, the location created at `uri` first if the
/// store has none of that name.
fn cluster_bucket(store: &Store, uri: &str) -> BucketId {
    store
        .write(|tx| {
            if tx.location("cluster")?.is_none() {
                tx.create_location("cluster", uri, false)?;
            }
            Ok(())
        })
        .unwrap();
    store
        .create_bucket(&BucketOptions {
            location: Some("cluster".into()),
            ..Default::default()
        })
        .unwrap()
        .id
}

fn setup(g: &Garage, prefix: &str, builder: StoreBuilder, path: Option<&std::path::Path>) -> Setup {
    let backend = g.backend(BUCKET, prefix);
    let builder = builder.location_backend("cluster", backend.clone());
    let store = match path {
        Some(p) => builder.open(p).unwrap(),
        None => builder.in_memory().unwrap(),
    };
    let remote = cluster_bucket(&store, &format!("s3://{BUCKET}/{prefix}"));
    let local = bucket(&store).id;
    Setup {
        store,
        backend,
        remote,
        local,
    }
}

/// The content objects under the backend's prefix (not uploads in progress).
fn objects(b: &dyn ContentBackend) -> Vec<String> {
    let mut keys: Vec<String> = b
        .list("")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !k.starts_with("incoming/"))
        .collect();
    keys.sort();
    keys
}

fn key_of(checksum: &str) -> String {
    let hex = checksum.strip_prefix("blake3:").unwrap();
    format!("{}/{hex}", &hex[..2])
}

#[test]
fn put_get_ranges_dedup_and_delete_on_the_cluster() {
    let Some(g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let s = setup(&g, "basic", Store::builder(), None);
    let store = &s.store;
    let small = bytes(1, 1000);
    let medium = bytes(2, 3 << 20); // one request
    let large = bytes(3, 21 << 20); // streamed as a multipart upload
    let v_small = put(store, s.remote, "small", &small);
    let v_medium = put(store, s.remote, "medium", &medium);
    let v_large = put(store, s.remote, "large", &large);
    assert_eq!(read_all(store, s.remote, "small"), small);
    assert_eq!(read_all(store, s.remote, "medium"), medium);
    assert_eq!(read_all(store, s.remote, "large"), large);
    // The bytes are on the cluster, under their blake3, and nowhere in the store file.
    let mut want: Vec<String> = [&v_small, &v_medium, &v_large]
        .iter()
        .map(|v| key_of(v.checksum.as_deref().unwrap()))
        .collect();
    want.sort();
    assert_eq!(objects(s.backend.as_ref()), want);
    assert_eq!(store.stats().unwrap().chunks, 0);

    // Range reads, across the 64 KiB chunks content on the cluster is hashed in (and the
    // store file's 1 MiB ones), and at the end.
    let chunk = 1024 * 1024 - 64;
    let piece = 64 * 1024;
    assert_eq!(
        store
            .file(v_large.file_id.unwrap())
            .unwrap()
            .unwrap()
            .chunk_size,
        piece as u32
    );
    let mut r = store.open_object(s.remote, "large").unwrap();
    for (at, len) in [
        (0, 10),
        (piece - 1, 2),
        (piece, piece),
        (5 * piece - 3, piece + 6),
        (7 * piece + 1, 64 * 1024),
        (chunk - 5, 10),
        (3 * chunk + 1, 2 * chunk),
        (large.len() - 7, 100),
    ] {
        let got = r.read_range(at as u64, len).unwrap();
        let end = (at + len).min(large.len());
        assert_eq!(got, &large[at..end], "range {at}+{len}");
    }

    // Dedup within the location: same file, same object; the embedded location keeps its own.
    let other = store
        .create_bucket(&BucketOptions {
            location: Some("cluster".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    let again = put(store, other, "copy", &large);
    assert_eq!(again.file_id, v_large.file_id);
    let local = put(store, s.local, "copy", &large);
    assert_ne!(local.file_id, v_large.file_id);
    assert_eq!(read_all(store, s.local, "copy"), large);
    assert_eq!(objects(s.backend.as_ref()).len(), 3);
    // Inside a caller's transaction too.
    let in_tx = store
        .write(|tx| tx.put_object(other, "tx", &medium[..], &PutOptions::default()))
        .unwrap();
    assert_eq!(in_tx.file_id, v_medium.file_id);
    assert_consistent(store);

    // The object goes with its last reference, after the commit.
    store.remove_version(again.version_id).unwrap();
    assert_eq!(
        objects(s.backend.as_ref()).len(),
        3,
        "still used by `large`"
    );
    store.remove_version(v_large.version_id).unwrap();
    assert!(!objects(s.backend.as_ref()).contains(&key_of(v_large.checksum.as_deref().unwrap())));
    assert_eq!(
        read_all(store, s.local, "copy"),
        large,
        "embedded copy untouched"
    );
    store.remove_bucket(other).unwrap();
    store.remove_version(v_medium.version_id).unwrap();
    store.remove_version(v_small.version_id).unwrap();
    assert_eq!(objects(s.backend.as_ref()), Vec::<String>::new());
    assert_consistent(store);
}

#[test]
fn an_object_altered_or_lost_behind_the_stores_back_is_corruption() {
    let Some(g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let s = setup(&g, "damage", Store::builder(), None);
    let store = &s.store;
    let data = bytes(4, 5 << 20);
    let v = put(store, s.remote, "f", &data);
    let key = key_of(v.checksum.as_deref().unwrap());
    let file = v.file_id.unwrap();

    // One byte changed in the third chunk, same length.
    let mut altered = data.clone();
    altered[2 * (1024 * 1024 - 64) + 17] ^= 1;
    s.backend.put(&key, altered).unwrap();
    let mut r = store.open_object(s.remote, "f").unwrap();
    assert_eq!(
        r.read_range(0, 1000).unwrap(),
        &data[..1000],
        "intact chunks still read"
    );
    match r.read_range(2 * (1024 * 1024 - 64), 100) {
        Err(Error::Corruption { file: Some(f), .. }) => assert_eq!(f, file),
        other => panic!("expected corruption, got {other:?}"),
    }
    let mut all = Vec::new();
    let err = store
        .open_object(s.remote, "f")
        .unwrap()
        .read_to_end(&mut all)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(!store.verify_file(file).unwrap());

    // Gone altogether.
    s.backend.delete(&key).unwrap();
    match store.open_object(s.remote, "f").unwrap().read_range(0, 10) {
        Err(Error::Corruption {
            file: Some(f),
            detail,
        }) => {
            assert_eq!(f, file);
            assert!(detail.contains("missing"), "{detail}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Put back, it reads again and passes fixity.
    s.backend.put(&key, data.clone()).unwrap();
    assert_eq!(read_all(store, s.remote, "f"), data);
    assert!(store.verify_file(file).unwrap());
}

#[test]
fn gc_removes_only_unreferenced_objects_older_than_the_grace_period() {
    let Some(g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let s = setup(&g, "gc", Store::builder(), None);
    let store = &s.store;
    let kept = put(store, s.remote, "kept", &bytes(5, 2000));
    // Left by a crash: content nobody refers to, an upload never finished, and an object
    // recfiles did not name.
    let orphan = *blake3::hash(b"orphan").as_bytes();
    let orphan_key = key_of(&format!("blake3:{}", hex(&orphan)));
    s.backend.put(&orphan_key, b"orphan".to_vec()).unwrap();
    s.backend
        .put("incoming/0190aaaa-dead", vec![1; 10])
        .unwrap();
    s.backend.put("notes/readme", b"not ours".to_vec()).unwrap();

    let young = store
        .gc_location("cluster", Duration::from_secs(3600))
        .unwrap();
    assert_eq!(
        (young.listed, young.deleted, young.young, young.foreign),
        (4, 0, 2, 1)
    );
    let report = store.gc_location("cluster", Duration::ZERO).unwrap();
    assert_eq!((report.deleted, report.foreign), (2, 1));
    let left: Vec<String> = s
        .backend
        .list("")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(left.contains(&key_of(kept.checksum.as_deref().unwrap())));
    assert!(left.contains(&"notes/readme".to_string()));
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(read_all(store, s.remote, "kept"), bytes(5, 2000));
    // The embedded location has nothing to collect.
    assert!(matches!(
        store.gc_location("default", Duration::ZERO),
        Err(Error::InvalidOperation { .. })
    ));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The child half of the crash test: uploads inside a transaction, then dies before the
/// commit.
#[test]
fn child_dies_between_upload_and_commit() {
    let (Ok(path), Ok(endpoint)) = (
        std::env::var("RECFILES_S3_CHILD_STORE"),
        std::env::var("RECFILES_S3_CHILD_ENDPOINT"),
    ) else {
        return; // only meaningful as the child of the test below
    };
    let client = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region(common::garage::REGION)
        .with_bucket_name(BUCKET)
        .with_access_key_id(common::garage::KEY_ID)
        .with_secret_access_key(common::garage::SECRET)
        .build()
        .unwrap();
    let backend = recfiles::ObjectStoreBackend::new(Arc::new(client), "crash").unwrap();
    let store = Store::builder()
        .location_backend("cluster", Arc::new(backend))
        .open(&path)
        .unwrap();
    let b = store.buckets().unwrap()[0].id;
    let b = if store.bucket(b).unwrap().unwrap().location == "cluster" {
        b
    } else {
        store.buckets().unwrap()[1].id
    };
    let _ = store.write(|tx| {
        tx.put_object(b, "doomed", &bytes(6, 12 << 20)[..], &PutOptions::default())?;
        // Uploaded, not committed: the process dies here.
        std::process::abort();
        #[allow(unreachable_code)]
        Ok(())
    });
}

#[test]
fn a_process_killed_between_upload_and_commit_leaves_only_what_gc_reclaims() {
    let Some(g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let s = setup(&g, "crash", Store::builder(), Some(&path));
    let kept = put(&s.store, s.remote, "kept", &bytes(7, 100));
    drop(s.store);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_dies_between_upload_and_commit",
            "--nocapture",
        ])
        .env("RECFILES_S3_CHILD_STORE", &path)
        .env("RECFILES_S3_CHILD_ENDPOINT", &g.endpoint)
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to die");
    let doomed = key_of(&format!(
        "blake3:{}",
        hex(blake3::hash(&bytes(6, 12 << 20)).as_bytes())
    ));
    assert!(
        objects(s.backend.as_ref()).contains(&doomed),
        "the upload happened before the crash"
    );
    let store = Store::builder()
        .location_backend("cluster", s.backend.clone())
        .open(&path)
        .unwrap();
    assert!(store.object(s.remote, "doomed").unwrap().is_none());
    assert_consistent(&store);
    let report = store.gc_location("cluster", Duration::ZERO).unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(
        objects(s.backend.as_ref()),
        vec![key_of(kept.checksum.as_deref().unwrap())]
    );
    assert_eq!(read_all(&store, s.remote, "kept"), bytes(7, 100));
}

#[test]
fn migrate_file_moves_content_both_ways_and_resumes() {
    let Some(g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let s = setup(&g, "migrate", Store::builder(), None);
    let store = &s.store;
    let data = bytes(8, 10 << 20);
    let v = put(store, s.local, "f", &data);
    let small = put(store, s.local, "s", b"tiny and inline");
    let file = v.file_id.unwrap();
    let chunks_before = store.stats().unwrap().chunks;
    assert!(chunks_before >= 10);

    let mut seen = Vec::new();
    let moved = store
        .migrate_file(file, "cluster", &mut |done, total| seen.push((done, total)))
        .unwrap();
    assert_eq!(moved.id, file);
    assert_eq!(seen.last(), Some(&(data.len() as u64, data.len() as u64)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(store.stats().unwrap().chunks, 0, "old chunks freed");
    assert_eq!(objects(s.backend.as_ref()), vec![key_of(&moved.checksum)]);
    assert_eq!(read_all(store, s.local, "f"), data);
    assert_eq!(
        store.object(s.local, "f").unwrap().unwrap().file_id,
        Some(file)
    );
    assert_consistent(store);
    // Inline content moves too.
    store
        .migrate_file(small.file_id.unwrap(), "cluster", &mut |_, _| {})
        .unwrap();
    assert_eq!(read_all(store, s.local, "s"), b"tiny and inline");
    assert_consistent(store);
    // Moving to where it is changes nothing.
    store.migrate_file(file, "cluster", &mut |_, _| {}).unwrap();

    // Back into the store file: the object goes after the commit.
    store.migrate_file(file, "default", &mut |_, _| {}).unwrap();
    assert_eq!(read_all(store, s.local, "f"), data);
    assert_eq!(
        objects(s.backend.as_ref()).len(),
        1,
        "only the small file's"
    );
    assert!(store.verify_file(file).unwrap());
    assert_consistent(store);

    // A move interrupted after its upload (the object is there, the commit never came):
    // the next call checks the object instead of sending it again.
    s.backend
        .put(&key_of(&moved.checksum), data.clone())
        .unwrap();
    let mut calls = 0;
    store
        .migrate_file(file, "cluster", &mut |_, _| calls += 1)
        .unwrap();
    assert!(calls > 0);
    assert_eq!(read_all(store, s.local, "f"), data);
    assert_consistent(store);
    // A corrupt leftover at the destination is not taken for the content.
    store.migrate_file(file, "default", &mut |_, _| {}).unwrap();
    let mut bad = data.clone();
    bad[5] ^= 0xff;
    s.backend.put(&key_of(&moved.checksum), bad).unwrap();
    assert!(matches!(
        store.migrate_file(file, "cluster", &mut |_, _| {}),
        Err(Error::Corruption { file: Some(f), .. }) if f == file
    ));
    assert_eq!(
        read_all(store, s.local, "f"),
        data,
        "still in the store file"
    );
    assert_consistent(store);
}

/// A reader that stops the server after handing out `after` bytes.
struct StopsServer<'g> {
    data: std::io::Cursor<Vec<u8>>,
    after: u64,
    garage: &'g mut Garage,
}

impl Read for StopsServer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.position() >= self.after {
            self.garage.kill();
        }
        self.data.read(buf)
    }
}

#[test]
fn the_server_stopped_mid_upload_is_a_typed_error_and_nothing_is_referenced() {
    let Some(mut g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let s = setup(&g, "stop", Store::builder(), None);
    let store = s.store.clone();
    let data = bytes(9, 40 << 20);
    let reader = StopsServer {
        data: std::io::Cursor::new(data),
        after: 12 << 20,
        garage: &mut g,
    };
    match store.put_object(s.remote, "cut", reader, &PutOptions::default()) {
        Err(Error::ContentBackend { location, .. }) => assert_eq!(location, "cluster"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(store.object(s.remote, "cut").unwrap().is_none());
    assert_eq!(common::file_count(&store), 0);
    assert_consistent(&store);
}

/// A store whose location `cluster` (`s3://recfiles-test/<prefix>`) uses `backend`, with one
/// bucket there.
fn store_on(backend: Arc<dyn ContentBackend>, prefix: &str) -> (Store, BucketId) {
    let store = Store::builder()
        .location_backend("cluster", backend)
        .in_memory()
        .unwrap();
    let b = cluster_bucket(&store, &format!("s3://{BUCKET}/{prefix}"));
    (store, b)
}

/// Every key under a backend's prefix, uploads in progress included.
fn all_keys(b: &dyn ContentBackend) -> Vec<String> {
    let mut keys: Vec<String> = b.list("").unwrap().into_iter().map(|(k, _)| k).collect();
    keys.sort();
    keys
}

/// The key of `data` on the object store.
fn key_of_bytes(data: &[u8]) -> String {
    key_of(&format!("blake3:{}", hex(blake3::hash(data).as_bytes())))
}

#[test]
fn a_put_with_another_node_of_the_cluster_stopped_succeeds_and_reads_back() {
    let Some(mut c) = Cluster::start(&[BUCKET]) else {
        return;
    };
    let (store, b) = store_on(c.backend(0, BUCKET, "degraded"), "degraded");
    // Node 2 is not the one the store talks to; two of three copies are a quorum.
    c.kill(2);
    let large = bytes(12, 20 << 20); // multipart
    let small = bytes(13, 5000);
    let v_large = put(&store, b, "large", &large);
    let v_small = put(&store, b, "small", &small);
    assert_eq!(read_all(&store, b, "large"), large);
    assert_eq!(read_all(&store, b, "small"), small);
    assert!(store.verify_file(v_large.file_id.unwrap()).unwrap());
    assert!(store.verify_file(v_small.file_id.unwrap()).unwrap());
    // Node 1 sees the same objects: they are in the cluster, not only on node 0.
    let mut want = vec![key_of_bytes(&large), key_of_bytes(&small)];
    want.sort();
    assert_eq!(all_keys(c.backend(1, BUCKET, "degraded").as_ref()), want);
    assert_consistent(&store);
}

/// A reader that stops a node of the cluster once it has handed out `after` bytes.
struct StopsNode {
    data: std::io::Cursor<Vec<u8>>,
    after: u64,
    node: Killer,
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl Read for StopsNode {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.position() >= self.after {
            self.node.kill();
            self.stopped
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.data.read(buf)
    }
}

/// The real backend of a node, which stops that node just before the server-side copy that
/// gives a completed multipart upload its final name, when armed.
#[derive(Debug)]
struct StopsBeforeCopy {
    inner: Arc<recfiles::ObjectStoreBackend>,
    armed: std::sync::Mutex<Option<KillerDebug>>,
}

struct KillerDebug(Killer);

impl std::fmt::Debug for KillerDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Killer")
    }
}

impl ContentBackend for StopsBeforeCopy {
    fn put(&self, key: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        self.inner.put(key, bytes)
    }
    fn start_upload(&self, key: &str) -> std::io::Result<Box<dyn recfiles::ContentUpload>> {
        self.inner.start_upload(key)
    }
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> std::io::Result<Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn size(&self, key: &str) -> std::io::Result<Option<u64>> {
        self.inner.size(key)
    }
    fn copy(&self, from: &str, to: &str) -> std::io::Result<()> {
        if let Some(k) = self.armed.lock().unwrap().take() {
            k.0.kill();
        }
        self.inner.copy(from, to)
    }
    fn delete(&self, key: &str) -> std::io::Result<()> {
        self.inner.delete(key)
    }
    fn list(&self, prefix: &str) -> std::io::Result<Vec<(String, std::time::SystemTime)>> {
        self.inner.list(prefix)
    }
}

fn assert_cut(result: recfiles::Result<recfiles::ObjectVersion>) {
    match result {
        Err(
            Error::ContentBackend { location, .. } | Error::LocationUnavailable { location, .. },
        ) => {
            assert_eq!(location, "cluster")
        }
        other => panic!("expected a typed backend error, got {other:?}"),
    }
}

#[test]
fn the_node_the_store_talks_to_stopped_mid_upload_is_a_typed_error_and_gc_reclaims_the_rest() {
    let Some(mut c) = Cluster::start(&[BUCKET]) else {
        return;
    };
    let backend = Arc::new(StopsBeforeCopy {
        inner: c.backend(0, BUCKET, "cut"),
        armed: Default::default(),
    });
    let (store, b) = store_on(backend.clone(), "cut");
    let elsewhere = c.backend(1, BUCKET, "cut");
    let kept = bytes(14, 1000);
    put(&store, b, "kept", &kept);
    let data = bytes(15, 40 << 20);
    // Checked while the node is still down: rows only.
    let nothing_referenced = |store: &Store| {
        assert!(store.object(b, "cut").unwrap().is_none());
        assert_consistent(store);
    };

    // 1. Node 0 stops while parts of a multipart upload are in flight.
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = StopsNode {
        data: std::io::Cursor::new(data.clone()),
        after: 12 << 20,
        node: c.killer(0),
        stopped: stopped.clone(),
    };
    assert_cut(store.put_object(b, "cut", reader, &PutOptions::default()));
    assert!(stopped.load(std::sync::atomic::Ordering::SeqCst));
    nothing_referenced(&store);
    // The rest of the cluster holds only what was committed: no part of the upload shows.
    assert_eq!(all_keys(elsewhere.as_ref()), vec![key_of_bytes(&kept)]);
    // Reads through the stopped node are typed errors too, never wrong bytes.
    let mut r = store.open_object(b, "kept").unwrap();
    assert!(matches!(
        r.read_range(0, 10),
        Err(Error::ContentBackend { .. })
    ));
    c.restart(0, BUCKET);
    assert_eq!(
        common::file_count(&store),
        1,
        "only `kept`, and it reads back"
    );
    let report = store.gc_location("cluster", Duration::ZERO).unwrap();
    assert_eq!(report.deleted, 0, "{report:?}");
    assert_eq!(all_keys(backend.as_ref()), vec![key_of_bytes(&kept)]);

    // 2. Node 0 stops once the upload is complete under its temporary name, before the copy to
    // its content address: the temporary object is left behind.
    *backend.armed.lock().unwrap() = Some(KillerDebug(c.killer(0)));
    assert_cut(store.put_object(b, "cut", &data[..], &PutOptions::default()));
    assert!(
        backend.armed.lock().unwrap().is_none(),
        "the node was stopped"
    );
    nothing_referenced(&store);
    let left = all_keys(elsewhere.as_ref());
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().any(|k| k.starts_with("incoming/")), "{left:?}");
    assert!(left.contains(&key_of_bytes(&kept)));
    c.restart(0, BUCKET);
    assert_eq!(common::file_count(&store), 1);
    let report = store.gc_location("cluster", Duration::ZERO).unwrap();
    assert_eq!(report.deleted, 1, "{report:?}");
    // Listed through the node that deleted it. (Once, under load, node 1 still listed the
    // deleted object right after; Garage's listing is not checked for that here.)
    assert_eq!(all_keys(backend.as_ref()), vec![key_of_bytes(&kept)]);

    // Retried with every node up, the put succeeds and reads back checked.
    let v = put(&store, b, "cut", &data);
    assert_eq!(read_all(&store, b, "cut"), data);
    assert!(store.verify_file(v.file_id.unwrap()).unwrap());
    let mut want = vec![key_of_bytes(&kept), key_of_bytes(&data)];
    want.sort();
    assert_eq!(all_keys(backend.as_ref()), want);
    assert_eq!(read_all(&store, b, "kept"), kept);
    assert_consistent(&store);
}

/// The REST API, unchanged, on buckets whose content is on the cluster (the cluster made the
/// default location, so the buckets the API creates land there): a real server on a real
/// socket and a real client.
#[test]
fn the_http_server_serves_buckets_on_the_cluster() {
    use recfiles::http::{Config, ServeOptions, router};
    let Some(g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let backend = g.backend(BUCKET, "http");
    let store = Store::builder()
        .location_backend("cluster", backend.clone())
        .in_memory()
        .unwrap();
    store
        .write(|tx| {
            tx.create_location("cluster", &format!("s3://{BUCKET}/http"), true)
                .map(|_| ())
        })
        .unwrap();
    let running = http_support::spawn(
        router(store.clone(), Config::default()),
        ServeOptions {
            shutdown_grace: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            max_connections: 64,
        },
    );
    let addr = running.addr;
    let call = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        let (status, _, body) = http_support::call(addr, method, path, headers, body);
        (status, body)
    };
    let (status, body) = call("POST", "/api/files", &[], b"");
    assert_eq!(status, 200);
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = bytes(10, 3 << 20);
    let (status, _) = call("PUT", &format!("/api/files/{id}/data.bin"), &[], &data);
    assert_eq!(status, 200);
    assert_eq!(
        objects(backend.as_ref()).len(),
        1,
        "the content went to the cluster"
    );
    let (status, body) = call("GET", &format!("/api/files/{id}/data.bin"), &[], b"");
    assert_eq!((status, body == data), (200, true));
    let (status, body) = call(
        "GET",
        &format!("/api/files/{id}/data.bin"),
        &[("range", "bytes=1000000-1000099")],
        b"",
    );
    assert_eq!(status, 206);
    assert_eq!(body, &data[1_000_000..1_000_100]);
    let _ = running.stop.send(());
    running.thread.join().unwrap();
    assert_consistent(&store);
}

/// The child half of the test below: an `s3://` location with no backend given to the
/// builder, configured from the environment alone.
#[test]
fn child_configured_from_the_environment() {
    let Ok(path) = std::env::var("RECFILES_S3_ENV_CHILD_STORE") else {
        return; // only meaningful as the child of the test below
    };
    let store = Store::open(&path).unwrap();
    let b = cluster_bucket(&store, &format!("s3://{BUCKET}/env"));
    let data = bytes(11, 9 << 20);
    put(&store, b, "f", &data);
    assert_eq!(read_all(&store, b, "f"), data);
    assert_consistent(&store);
}

#[test]
fn an_s3_location_is_configured_from_the_environment_and_by_settings() {
    let Some(g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_configured_from_the_environment",
            "--nocapture",
        ])
        .env("RECFILES_S3_ENV_CHILD_STORE", &path)
        .env("AWS_ENDPOINT", &g.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", common::garage::REGION)
        .env("AWS_ACCESS_KEY_ID", common::garage::KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", common::garage::SECRET)
        .status()
        .unwrap();
    assert!(status.success());
    // The same content, seen by a backend built from settings: the object is there, under its
    // blake3, and the store file holds no credentials.
    let settings = recfiles::S3Settings {
        endpoint: Some(g.endpoint.clone()),
        region: Some(common::garage::REGION.into()),
        access_key_id: Some(common::garage::KEY_ID.into()),
        secret_access_key: Some(common::garage::SECRET.into()),
    };
    let backend =
        recfiles::ObjectStoreBackend::s3(&format!("s3://{BUCKET}/env"), &settings).unwrap();
    let want = key_of(&format!(
        "blake3:{}",
        hex(blake3::hash(&bytes(11, 9 << 20)).as_bytes())
    ));
    assert_eq!(objects(&backend), vec![want]);
    let file = std::fs::read(&path).unwrap();
    for secret in [common::garage::SECRET, common::garage::KEY_ID] {
        assert!(
            !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "credentials found in the store file"
        );
    }
    let store = Store::builder()
        .location_backend("cluster", Arc::new(backend))
        .open(&path)
        .unwrap();
    let b = store.buckets().unwrap()[0].id;
    assert_eq!(read_all(&store, b, "f"), bytes(11, 9 << 20));
}

/// `recfiles serve --location cluster`: the buckets the API creates keep their content on the
/// cluster, configured from the `AWS_*` environment; a real server process, a real client.
#[test]
fn serve_with_an_s3_location_creates_buckets_whose_content_is_on_the_cluster() {
    use std::io::BufRead;
    let Some(g) = Garage::start(&[BUCKET]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| {
                tx.create_location("cluster", &format!("s3://{BUCKET}/serve"), false)
                    .map(|_| ())
            })
            .unwrap();
        store.close().unwrap();
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_recfiles"))
        .args(["serve", "--store"])
        .arg(&path)
        .args(["--bind", "127.0.0.1:0", "--location", "cluster"])
        .env("AWS_ENDPOINT", &g.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", common::garage::REGION)
        .env("AWS_ACCESS_KEY_ID", common::garage::KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", common::garage::SECRET)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "serve exited");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let call = |method: &str, path: &str, range: Option<&str>, body: &[u8]| {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let mut resp = agent.run(req.body(body.to_vec()).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        (status, body)
    };
    let (status, body) = call("POST", "/api/files", None, b"");
    assert_eq!(status, 200);
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = bytes(16, 11 << 20); // a multipart upload to the cluster
    let (status, _) = call("PUT", &format!("/api/files/{id}/big.bin"), None, &data);
    assert_eq!(status, 200);
    let (status, body) = call("GET", &format!("/api/files/{id}/big.bin"), None, b"");
    assert_eq!((status, body == data), (200, true));
    let (status, body) = call(
        "GET",
        &format!("/api/files/{id}/big.bin"),
        Some("bytes=9000000-9000099"),
        b"",
    );
    assert_eq!(
        (status, body.as_slice()),
        (206, &data[9_000_000..9_000_100])
    );
    let backend = g.backend(BUCKET, "serve");
    assert_eq!(objects(backend.as_ref()), vec![key_of_bytes(&data)]);
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(child.wait().unwrap().success());
    let store = Store::builder()
        .location_backend("cluster", backend)
        .open(&path)
        .unwrap();
    let b = id.parse().unwrap();
    assert_eq!(store.bucket(b).unwrap().unwrap().location, "cluster");
    assert_eq!(
        store.stats().unwrap().chunks,
        0,
        "no content in the store file"
    );
    assert_eq!(read_all(&store, b, "big.bin"), data);
    assert_consistent(&store);
}
