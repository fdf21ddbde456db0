//! What a read checks, by `ReadVerification`, and the direct chunk reads behind `Once` and
//! `Never`: after a chunk was loaded (and, under `Once`, hashed) once, reads of it fetch only
//! the bytes asked for from the storage, and stay exact while the engine rewrites pages.

mod common;

use common::{bucket, bytes, put};
use recfiles::prelude::*;
use recfiles::{Backend, Error, ReadVerification};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// Storage in memory that notes the length of every read, and whose bytes a test can damage
/// behind the store's back (bit rot while the store is open).
#[derive(Debug, Clone, Default)]
struct Disk(Arc<Mutex<DiskState>>);

#[derive(Debug, Default)]
struct DiskState {
    bytes: Vec<u8>,
    read_lens: Vec<usize>,
}

impl Disk {
    /// Flips a byte in every copy of `needle`; returns how many copies there were.
    fn rot(&self, needle: &[u8]) -> usize {
        let mut s = self.0.lock().unwrap();
        let mut hits = Vec::new();
        let mut from = 0;
        while let Some(i) = s.bytes[from..]
            .windows(needle.len())
            .position(|w| w == needle)
        {
            hits.push(from + i);
            from += i + 1;
        }
        for &at in &hits {
            s.bytes[at + needle.len() / 2] ^= 0x5a;
        }
        hits.len()
    }

    fn take_read_lens(&self) -> Vec<usize> {
        std::mem::take(&mut self.0.lock().unwrap().read_lens)
    }
}

impl Backend for Disk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().bytes.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        let start = offset as usize;
        let src = s
            .bytes
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(src);
        s.read_lens.push(out.len());
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.lock().unwrap().bytes.resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        let end = offset as usize + data.len();
        if s.bytes.len() < end {
            s.bytes.resize(end, 0);
        }
        s.bytes[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

const CHUNK: usize = 4096;

/// A store whose engine cache holds nothing, so every chunk load reaches the storage.
fn store_on(disk: &Disk, mode: ReadVerification) -> Store {
    Store::builder()
        .chunk_size(CHUNK)
        .staging_batch(4 * CHUNK)
        .cache_size(0)
        .read_verification(mode)
        .open_backend(disk.clone())
        .unwrap()
}

fn read_all(store: &Store, b: BucketId, key: &str) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    store.open_object(b, key).unwrap().read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn once_is_the_default_and_verify_reads_maps_to_always_and_never() {
    assert_eq!(ReadVerification::default(), ReadVerification::Once);
    let s = format!("{:?}", Store::builder());
    assert!(s.contains("verify_reads: Once"), "{s}");
    let s = format!("{:?}", Store::builder().verify_reads(true));
    assert!(s.contains("verify_reads: Always"), "{s}");
    let s = format!("{:?}", Store::builder().verify_reads(false));
    assert!(s.contains("verify_reads: Never"), "{s}");
}

#[test]
fn after_the_first_load_a_range_reads_only_its_own_bytes_unless_always() {
    for mode in [
        ReadVerification::Once,
        ReadVerification::Never,
        ReadVerification::Always,
    ] {
        let disk = Disk::default();
        let store = store_on(&disk, mode);
        let b = bucket(&store).id;
        let data = bytes(7, 8 * CHUNK);
        put(&store, b, "f", &data);
        // In place, so reads reach the storage (pages still in the journal's overlay are read
        // from memory).
        store.checkpoint().unwrap();
        assert_eq!(read_all(&store, b, "f").unwrap(), data);

        // A new reader (a new snapshot) of the same store.
        let mut r = store.open_object(b, "f").unwrap();
        disk.take_read_lens();
        let at = 3 * CHUNK as u64 + 10;
        assert_eq!(r.read_range(at, 100).unwrap(), &data[at as usize..][..100]);
        // A range over two chunks: two reads, of exactly the bytes of each.
        let at2 = 5 * CHUNK as u64 - 30;
        assert_eq!(r.read_range(at2, 50).unwrap(), &data[at2 as usize..][..50]);
        let lens = disk.take_read_lens();
        let direct = lens.iter().filter(|&&l| l == 100 || l == 30 || l == 20);
        match mode {
            ReadVerification::Always => assert_eq!(direct.count(), 0, "{mode:?}: {lens:?}"),
            _ => assert_eq!(direct.count(), 3, "{mode:?}: {lens:?}"),
        }
        // A chunk's page (a chunk and its key) is larger than a chunk: under Once and Never no
        // such page is read again, only the engine's small index pages.
        let pages = lens.iter().filter(|&&l| l > CHUNK).count();
        match mode {
            ReadVerification::Always => assert!(pages >= 3, "{mode:?}: {lens:?}"),
            _ => assert_eq!(pages, 0, "{mode:?}: {lens:?}"),
        }
    }
}

#[test]
fn damage_done_while_the_store_is_open_is_found_as_the_mode_says() {
    for mode in [
        ReadVerification::Once,
        ReadVerification::Always,
        ReadVerification::Never,
    ] {
        let disk = Disk::default();
        let store = store_on(&disk, mode);
        let b = bucket(&store).id;
        let data = bytes(8, 6 * CHUNK);
        let f = put(&store, b, "f", &data).file_id.unwrap();
        assert_eq!(read_all(&store, b, "f").unwrap(), data);
        // The chunk at 2 * CHUNK rots after it was read (and, under Once, checked). Its page
        // must be in place for that, not only in the journal's overlay.
        store.checkpoint().unwrap();
        assert!(disk.rot(&data[2 * CHUNK + 100..2 * CHUNK + 164]) >= 1);
        let got = store
            .open_object(b, "f")
            .unwrap()
            .read_range(2 * CHUNK as u64, CHUNK);
        match mode {
            // Checked on every load: the damage is refused.
            ReadVerification::Always => {
                assert!(matches!(got, Err(Error::Corruption { .. })), "{got:?}")
            }
            // Checked once already, or never: the damaged bytes come back.
            _ => assert_ne!(got.unwrap(), &data[2 * CHUNK..3 * CHUNK], "{mode:?}"),
        }
        // Fixity re-hashes everything, whatever the mode, and names the file.
        assert!(!store.verify_file(f).unwrap());
        let got = store
            .open_object(b, "f")
            .unwrap()
            .read_range(2 * CHUNK as u64, CHUNK);
        match mode {
            // Once fixity found damage, chunks are checked again on their next load.
            ReadVerification::Once | ReadVerification::Always => {
                assert!(matches!(got, Err(Error::Corruption { .. })), "{got:?}")
            }
            ReadVerification::Never => assert!(got.is_ok()),
        }
        // Undamaged chunks still read.
        assert_eq!(
            store
                .open_object(b, "f")
                .unwrap()
                .read_range(0, 2 * CHUNK)
                .unwrap(),
            &data[..2 * CHUNK]
        );
        drop(store);
        // A new open checks again (Once) before trusting anything.
        let store = store_on(&disk, mode);
        let err = read_all(&store, b, "f");
        if mode == ReadVerification::Never {
            assert!(err.is_ok());
        } else {
            assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
    }
}

/// Content is removed and the engine reuses its pages for new content, with readers of old
/// snapshots still open: every read, direct or not, returns exactly the bytes of its snapshot.
#[test]
fn direct_reads_stay_exact_while_pages_are_freed_and_reused() {
    for mode in [ReadVerification::Once, ReadVerification::Never] {
        let disk = Disk::default();
        let store = Store::builder()
            .chunk_size(CHUNK)
            .staging_batch(4 * CHUNK)
            .cache_size(64 * 1024)
            .read_verification(mode)
            .open_backend(disk.clone())
            .unwrap();
        let b = bucket(&store).id;
        let mut old_readers = Vec::new();
        for round in 0..30u64 {
            let key = format!("k{}", round % 3);
            let data = bytes(100 + round, (1 + round as usize % 5) * CHUNK + 77);
            let v = put(&store, b, &key, &data);
            // Read it twice (the second time directly), keep a reader on this snapshot.
            for _ in 0..2 {
                assert_eq!(read_all(&store, b, &key).unwrap(), data, "round {round}");
            }
            let mut r = store.open_object(b, &key).unwrap();
            assert_eq!(r.read_range(10, 100).unwrap(), &data[10..110]);
            old_readers.push((r, data));
            // Remove an older version so its chunks are freed and their pages reused.
            let versions = store.object_versions(b, &key).unwrap();
            if versions.len() > 1 {
                let oldest = versions.last().unwrap().version_id;
                if oldest != v.version_id {
                    // A reader may still hold it: its snapshot keeps the pages alive.
                    store.remove_version(oldest).unwrap();
                }
            }
            // Every reader still open reads its own snapshot's bytes, anywhere.
            for (i, (r, want)) in old_readers.iter_mut().enumerate() {
                let at = (round as usize * 997 + i * 31) % want.len();
                let len = (want.len() - at).min(CHUNK + 500);
                assert_eq!(
                    r.read_range(at as u64, len).unwrap(),
                    &want[at..at + len],
                    "{mode:?} round {round} reader {i}"
                );
            }
            if old_readers.len() > 6 {
                old_readers.remove(0);
            }
        }
        assert!(store.check().unwrap().is_ok());
    }
}

/// With small chunks several share one engine page, and inserting a neighbour rewrites the page
/// elsewhere: content that stays stored moves, its old page is freed and reused. Content removed
/// and later stored again lands somewhere new. Reads through new snapshots must follow.
#[test]
fn direct_reads_follow_content_the_engine_moves() {
    for mode in [ReadVerification::Once, ReadVerification::Never] {
        let disk = Disk::default();
        let store = Store::builder()
            .chunk_size(1024)
            .staging_batch(4096)
            .cache_size(32 * 1024)
            .read_verification(mode)
            .open_backend(disk.clone())
            .unwrap();
        let b = bucket(&store).id;
        let keep = bytes(1, 16 * 1024);
        let again = bytes(2, 8 * 1024);
        put(&store, b, "keep", &keep);
        for round in 0..40u64 {
            // New neighbours for every chunk, and the previous ones removed.
            for (i, old) in store
                .object_versions(b, "churn")
                .unwrap()
                .iter()
                .enumerate()
            {
                if i > 0 {
                    store.remove_version(old.version_id).unwrap();
                }
            }
            put(&store, b, "churn", &bytes(1000 + round, 12 * 1024));
            // The same content stored, read, removed, and stored again later.
            if round % 4 == 0 {
                put(&store, b, "again", &again);
            }
            if store.object(b, "again").unwrap().is_some() {
                assert_eq!(
                    read_all(&store, b, "again").unwrap(),
                    again,
                    "round {round}"
                );
            }
            if round % 4 == 1 {
                for v in store.object_versions(b, "again").unwrap() {
                    store.remove_version(v.version_id).unwrap();
                }
            }
            assert_eq!(
                read_all(&store, b, "keep").unwrap(),
                keep,
                "{mode:?} round {round}"
            );
            let mut r = store.open_object(b, "keep").unwrap();
            let at = (round as usize * 3001) % (keep.len() - 700);
            assert_eq!(r.read_range(at as u64, 700).unwrap(), &keep[at..at + 700]);
        }
        assert!(store.check().unwrap().is_ok());
    }
}

/// A writer keeps replacing content while readers on other threads read it, directly and not.
#[test]
fn concurrent_writes_never_leak_into_direct_reads() {
    let disk = Disk::default();
    let store = Store::builder()
        .chunk_size(1024)
        .staging_batch(4096)
        .cache_size(32 * 1024)
        .read_verification(ReadVerification::Never)
        .open_backend(disk.clone())
        .unwrap();
    let b = bucket(&store).id;
    // Word i of version n is (n << 32) | i: a read holds words of one version, in order.
    let content = |n: u64| {
        (0..(3 * CHUNK / 8) as u64)
            .flat_map(|i| ((n << 32) | i).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    put(&store, b, "k", &content(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let store = store.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut r = store.open_object(b, "k").unwrap();
                    for i in 0..8u64 {
                        let at = (reads * 131 + i * 1021 + t * 7) % (3 * CHUNK as u64 - 64) / 8 * 8;
                        let got = r.read_range(at, 64).unwrap();
                        let words: Vec<u64> = got
                            .chunks(8)
                            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
                            .collect();
                        let version = words[0] >> 32;
                        for (k, w) in words.iter().enumerate() {
                            assert_eq!(*w, (version << 32) | (at / 8 + k as u64), "{words:?}");
                        }
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for n in 1..200u64 {
        let v = put(&store, b, "k", &content(n));
        let versions = store.object_versions(b, "k").unwrap();
        for old in versions.iter().skip(2) {
            if old.version_id != v.version_id {
                store.remove_version(old.version_id).unwrap();
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(store.check().unwrap().is_ok());
}
