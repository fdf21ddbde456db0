//! Direct reads of chunk bytes from the store file, past the engine's page cache.
//!
//! redb keeps each content chunk (about 1 MiB) as one value in one page, and reads a page only
//! whole: a cache miss allocates and zero-fills a page-sized buffer, reads the whole page into
//! it, caches it and evicts another. With a cache much smaller than the content (the default
//! is 64 MiB), nearly every chunk a reader touches is such a miss, so a 64 KiB range costs a
//! 1 MiB read, and a sequential read copies every byte twice.
//!
//! Chunks are immutable and addressed by their hash, so once the file offset of a chunk's bytes
//! is known, any later read of any part of that chunk can be served by reading just those bytes
//! from the storage, for as long as nothing overwrites them. This module learns those offsets
//! and keeps them valid:
//!
//! * **Learning.** The storage backend redb is given is wrapped in a [`Tap`]. While a reader
//!   loads a chunk through redb, the tap notes (on that thread only) every buffer the backend
//!   fills: its address, length and file offset. The chunk's bytes are a slice of the page buffer
//!   redb filled, so the note whose buffer holds the slice gives the slice's file offset. A buffer
//!   filled during the load is either that page, or one that did not coexist with it (two live
//!   buffers never overlap), and a page filled earlier cannot share an address with a buffer
//!   filled during the load; taking the latest note that holds the slice is therefore exact, and
//!   a page that came from redb's cache (no note holds it) teaches nothing.
//! * **Validity.** A file offset stays valid until the storage bytes there change, which only
//!   a `write` or `set_len` through the tap can do (redb holds the file exclusively). The tap
//!   forgets every learned chunk overlapping a write before passing the write on, and bumps an
//!   epoch under the same lock. A direct read notes the epoch with the location, reads, and
//!   keeps its bytes only if the epoch is unchanged or the location is still learned; a load
//!   learns nothing if any write started since the load began.
//! * **Bounds.** At most [`MAX_LOCATED`] chunks are remembered (one arbitrary entry is dropped
//!   to make room), about 100 bytes each.
//!
//! The set also records which chunks were verified: under `ReadVerification::Once` a chunk is
//! learned only after its bytes, as loaded through redb from that offset, matched their hash.

use parking_lot::{Mutex, RwLock};
use redb::{BackendError, StorageBackend};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io::Error as BackendIoError;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

type Hash = [u8; 32];

/// Most chunks whose location is remembered at once (about 1.6 MB of bookkeeping; 16 GiB of
/// content at the default chunk size).
pub(crate) const MAX_LOCATED: usize = 16 * 1024;

/// Where a chunk's bytes lie in the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    /// Storage offset of the chunk's first byte.
    pub offset: u64,
    /// The chunk's length.
    pub len: u64,
}

#[derive(Default)]
struct Located {
    by_hash: HashMap<Hash, Loc>,
    // Start offset -> chunk, to find the chunks a write overlaps. Chunks never overlap each
    // other (each lies in its own page), so a start offset names one chunk.
    by_offset: BTreeMap<u64, Hash>,
}

impl Located {
    fn remove(&mut self, h: &Hash) {
        if let Some(loc) = self.by_hash.remove(h) {
            self.by_offset.remove(&loc.offset);
        }
    }

    /// Forgets every chunk with a byte in `[from, to)`.
    fn forget_range(&mut self, from: u64, to: u64) {
        if self.by_hash.is_empty() || from >= to {
            return;
        }
        let hit: Vec<Hash> = self
            .by_offset
            .range(..to)
            .rev()
            // Learned chunks never overlap (see `Watch::learn`), so their ends ascend with their
            // starts: walking down from `to`, the first one ending at or before `from` ends it.
            .take_while(|(_, h)| {
                self.by_hash
                    .get(*h)
                    .is_some_and(|l| l.offset.saturating_add(l.len) > from)
            })
            .map(|(_, h)| *h)
            .collect();
        for h in hit {
            self.remove(&h);
        }
    }
}

/// The shared state of one open store: the backend, the learned chunk locations and what keeps
/// them valid.
pub(crate) struct Direct {
    backend: Arc<dyn StorageBackend>,
    id: usize,
    located: Mutex<Located>,
    epoch: AtomicU64,
    // Held shared by direct reads and exclusively by `close`, after which nothing is read.
    closed: RwLock<bool>,
    // Set by any failed backend operation: redb then refuses further I/O, and so does this.
    failed: AtomicBool,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("located", &self.located.lock().by_hash.len())
            .finish()
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// What a direct read found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DirectRead {
    /// The first `n` bytes of `out` hold the chunk's bytes.
    Done(usize),
    /// The chunk is shorter than the requested start.
    Beyond,
    /// The chunk's location is not (or no longer) known; load it through redb.
    Unknown,
}

impl Direct {
    /// Wraps `backend`; give redb the returned [`Tap`].
    pub(crate) fn new(backend: Arc<dyn StorageBackend>) -> (Arc<Direct>, Tap) {
        let direct = Arc::new(Direct {
            backend,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            located: Mutex::new(Located::default()),
            epoch: AtomicU64::new(0),
            closed: RwLock::new(false),
            failed: AtomicBool::new(false),
        });
        (direct.clone(), Tap(direct))
    }

    /// The learned location of chunk `h`, if any.
    pub(crate) fn location(&self, h: &Hash) -> Option<Loc> {
        self.located.lock().by_hash.get(h).copied()
    }

    /// Reads bytes of chunk `h` from `at` bytes into the chunk into `out` (as many as `out` holds
    /// or the chunk has left) straight from the storage, if the chunk's location is known.
    pub(crate) fn read(&self, h: &Hash, at: u64, out: &mut [u8]) -> std::io::Result<DirectRead> {
        let (loc, epoch) = {
            let located = self.located.lock();
            match located.by_hash.get(h) {
                Some(loc) => (*loc, self.epoch.load(Ordering::SeqCst)),
                None => return Ok(DirectRead::Unknown),
            }
        };
        if at >= loc.len {
            return Ok(DirectRead::Beyond);
        }
        let n = (loc.len - at).min(out.len() as u64) as usize;
        {
            let closed = self.closed.read();
            if *closed || self.failed.load(Ordering::Acquire) {
                return Ok(DirectRead::Unknown);
            }
            self.backend.read(loc.offset + at, &mut out[..n])?;
        }
        if self.epoch.load(Ordering::SeqCst) != epoch && self.location(h) != Some(loc) {
            // Written over while being read: the bytes may be anything.
            return Ok(DirectRead::Unknown);
        }
        Ok(DirectRead::Done(n))
    }

    /// Whether the storage at `loc` starts and ends with the same bytes as `bytes` (the chunk as
    /// redb returned it). Checked before a place is learned: the place comes from matching
    /// buffer addresses, and a wrong one would serve wrong bytes unchecked, so two small reads
    /// confirm it first.
    pub(crate) fn confirms(&self, loc: Loc, bytes: &[u8]) -> bool {
        const PROBE: usize = 64;
        if loc.len != bytes.len() as u64 {
            return false;
        }
        let n = PROBE.min(bytes.len());
        let tail = bytes.len() - n;
        let mut buf = [0u8; PROBE];
        let closed = self.closed.read();
        if *closed || self.failed.load(Ordering::Acquire) {
            return false;
        }
        let mut same_at = |at: usize| {
            self.backend
                .read(loc.offset + at as u64, &mut buf[..n])
                .is_ok()
                && buf[..n] == bytes[at..at + n]
        };
        same_at(0) && same_at(tail)
    }

    /// Starts watching the backend reads this thread makes, to learn where a chunk about to be
    /// loaded through redb lies. Dropping the watch stops it.
    pub(crate) fn watch(&self) -> Watch<'_> {
        FILLS.with(|f| {
            let mut f = f.borrow_mut();
            f.notes.clear();
            f.overflow = false;
        });
        WATCHING.set(self.id);
        Watch {
            direct: self,
            epoch: self.epoch.load(Ordering::SeqCst),
        }
    }

    /// Forgets chunk `h` (its bytes may be damaged).
    pub(crate) fn forget(&self, h: &Hash) {
        self.located.lock().remove(h);
    }

    /// Forgets every learned chunk.
    pub(crate) fn forget_all(&self) {
        let mut located = self.located.lock();
        located.by_hash.clear();
        located.by_offset.clear();
    }

    /// How many chunks are located (for tests).
    #[cfg(test)]
    pub(crate) fn located(&self) -> usize {
        self.located.lock().by_hash.len()
    }

    fn invalidate(&self, from: u64, to: u64) {
        let mut located = self.located.lock();
        located.forget_range(from, to);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn io<T>(&self, r: Result<T, BackendIoError>) -> Result<T, BackendIoError> {
        if r.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        r
    }
}

// The buffers one thread's backend reads filled while it watched: (address, length, offset).
#[derive(Default)]
struct Fills {
    notes: Vec<(usize, usize, u64)>,
    overflow: bool,
}

const MAX_NOTES: usize = 16;

thread_local! {
    static WATCHING: Cell<usize> = const { Cell::new(0) };
    static FILLS: RefCell<Fills> = RefCell::new(Fills::default());
}

/// Watches one chunk load (see [`Direct::watch`]).
pub(crate) struct Watch<'d> {
    direct: &'d Direct,
    epoch: u64,
}

impl Watch<'_> {
    /// Where `bytes` (the value of chunk `h`, as redb returned it) lie in the storage, if a
    /// backend read during the watch filled them. Nothing is learned yet: see [`Watch::learn`].
    pub(crate) fn find(&self, bytes: &[u8]) -> Option<Loc> {
        let start = bytes.as_ptr() as usize;
        let end = start + bytes.len();
        FILLS.with(|f| {
            let f = f.borrow();
            if f.overflow {
                return None;
            }
            f.notes
                .iter()
                .rev()
                .find(|(addr, len, _)| *addr <= start && end <= addr + len)
                .map(|(addr, _, offset)| Loc {
                    offset: offset + (start - addr) as u64,
                    len: bytes.len() as u64,
                })
        })
    }

    /// Remembers that chunk `h` lies at `loc`, unless the storage may have been written since
    /// the watch began.
    pub(crate) fn learn(&self, h: Hash, loc: Loc) {
        let d = self.direct;
        let mut located = d.located.lock();
        if d.epoch.load(Ordering::SeqCst) != self.epoch {
            return;
        }
        located.remove(&h);
        // Keeps learned chunks disjoint, which `forget_range` relies on. (A chunk learned at an
        // overlapping place would be stale, which the epoch check rules out; stay exact anyway.)
        located.forget_range(loc.offset, loc.offset + loc.len);
        if located.by_hash.len() >= MAX_LOCATED
            && let Some(victim) = located.by_hash.keys().next().copied()
        {
            located.remove(&victim);
        }
        located.by_hash.insert(h, loc);
        located.by_offset.insert(loc.offset, h);
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        WATCHING.set(0);
        FILLS.with(|f| f.borrow_mut().notes.clear());
    }
}

/// The storage backend as redb sees it: every call goes to the wrapped backend; reads are
/// noted for a watching reader, writes first forget the chunks they overlap.
#[derive(Debug)]
pub(crate) struct Tap(Arc<Direct>);

impl StorageBackend for Tap {
    fn len(&self) -> Result<u64, BackendIoError> {
        self.0.io(self.0.backend.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        self.0.io(self.0.backend.read(offset, out))?;
        if WATCHING.get() == self.0.id {
            FILLS.with(|f| {
                let mut f = f.borrow_mut();
                if f.notes.len() < MAX_NOTES {
                    f.notes.push((out.as_ptr() as usize, out.len(), offset));
                } else {
                    f.overflow = true;
                }
            });
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        self.0.invalidate(len, u64::MAX);
        self.0.io(self.0.backend.set_len(len))
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        self.0.io(self.0.backend.sync_data())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        self.0
            .invalidate(offset, offset.saturating_add(data.len() as u64));
        self.0.io(self.0.backend.write(offset, data))
    }

    fn close(&self) -> Result<(), BackendIoError> {
        let mut closed = self.0.closed.write();
        *closed = true;
        self.0.forget_all();
        self.0.backend.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.backend.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.0.backend.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.backend.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.backend.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.backend.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.backend.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> Hash {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&i.to_le_bytes());
        h
    }

    fn direct() -> Arc<Direct> {
        Direct::new(Arc::new(redb::backends::InMemoryBackend::new())).0
    }

    #[test]
    fn a_write_forgets_exactly_the_chunks_it_overlaps() {
        let d = direct();
        // Chunks of 100 bytes at 0, 100, ..., 900.
        for i in 0..10 {
            d.watch().learn(
                h(i),
                Loc {
                    offset: i * 100,
                    len: 100,
                },
            );
        }
        assert_eq!(d.located(), 10);
        d.invalidate(250, 251); // inside chunk 2
        d.invalidate(399, 401); // the end of chunk 3 and the start of chunk 4
        d.invalidate(600, 600); // empty
        d.invalidate(700, 700 + 1); // the first byte of chunk 7
        d.invalidate(1000, 2000); // past every chunk
        let left: Vec<u64> = (0..10).filter(|&i| d.location(&h(i)).is_some()).collect();
        assert_eq!(left, vec![0, 1, 5, 6, 8, 9]);
        d.invalidate(950, u64::MAX); // a shrink to 950
        assert!(d.location(&h(9)).is_none());
        assert!(d.location(&h(8)).is_some());
    }

    #[test]
    fn nothing_is_learned_once_a_write_began_during_the_load() {
        let d = direct();
        let w = d.watch();
        d.invalidate(10_000, 10_001);
        w.learn(h(1), Loc { offset: 0, len: 10 });
        drop(w);
        assert_eq!(d.located(), 0);
        d.watch().learn(h(1), Loc { offset: 0, len: 10 });
        assert_eq!(d.located(), 1);
    }

    #[test]
    fn at_most_max_located_chunks_are_remembered() {
        let d = direct();
        for i in 0..MAX_LOCATED as u64 + 100 {
            d.watch().learn(
                h(i),
                Loc {
                    offset: i * 10,
                    len: 10,
                },
            );
        }
        assert_eq!(d.located(), MAX_LOCATED);
        // The newest is always kept.
        assert!(d.location(&h(MAX_LOCATED as u64 + 99)).is_some());
    }

    #[test]
    fn a_direct_read_reads_the_located_bytes_and_stops_at_the_chunk_end() {
        let (d, tap) = Direct::new(Arc::new(redb::backends::InMemoryBackend::new()));
        tap.set_len(1000).unwrap();
        tap.write(500, b"0123456789").unwrap();
        d.watch().learn(
            h(1),
            Loc {
                offset: 500,
                len: 10,
            },
        );
        let mut out = [0u8; 8];
        assert_eq!(d.read(&h(1), 4, &mut out).unwrap(), DirectRead::Done(6));
        assert_eq!(&out[..6], b"456789");
        assert_eq!(d.read(&h(1), 10, &mut out).unwrap(), DirectRead::Beyond);
        assert_eq!(d.read(&h(2), 0, &mut out).unwrap(), DirectRead::Unknown);
        // Writing over it forgets it.
        tap.write(505, b"x").unwrap();
        assert_eq!(d.read(&h(1), 0, &mut out).unwrap(), DirectRead::Unknown);
        // So does closing.
        d.watch().learn(
            h(1),
            Loc {
                offset: 500,
                len: 10,
            },
        );
        tap.close().unwrap();
        assert_eq!(d.read(&h(1), 0, &mut out).unwrap(), DirectRead::Unknown);
    }

    #[test]
    fn a_place_is_confirmed_only_where_the_storage_holds_the_same_bytes() {
        let (d, tap) = Direct::new(Arc::new(redb::backends::InMemoryBackend::new()));
        tap.set_len(4096).unwrap();
        let chunk: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        tap.write(1000, &chunk).unwrap();
        let at = |offset| Loc { offset, len: 300 };
        assert!(d.confirms(at(1000), &chunk));
        assert!(!d.confirms(at(1001), &chunk), "shifted by one byte");
        assert!(
            !d.confirms(
                Loc {
                    offset: 1000,
                    len: 299
                },
                &chunk
            ),
            "wrong length"
        );
        let mut tail_differs = chunk.clone();
        tail_differs[299] ^= 1;
        assert!(!d.confirms(at(1000), &tail_differs));
        let short = &chunk[..20];
        tap.write(2000, short).unwrap();
        assert!(d.confirms(
            Loc {
                offset: 2000,
                len: 20
            },
            short
        ));
    }
}
