//! The commit journal: a durable commit appends the pages it changed to a log at the head of the
//! store file and syncs that, instead of syncing pages scattered across the file.
//!
//! redb makes a commit durable by writing every page the commit changed in place (copy-on-write
//! pages, about twenty for a record with one small file) and syncing the file. On this kind of
//! disk the sync costs by how many places it touches: twenty 4 KiB pages spread over a file
//! took ~0.2–0.5 ms to sync, the same 80 KiB written in one place ~0.1 ms. So a store file is
//! laid out as
//!
//! ```text
//! [ header page | journal: batches ... | zeros ]  [ the redb database ... ]
//! 0             4 KiB                     region   region + redb's offsets
//! ```
//!
//! and this layer sits between redb and the storage:
//!
//! * **Writes** land in an in-memory *overlay* of 4 KiB pages, not in the file. Reads see the
//!   overlay over the file.
//! * **A sync** (redb's commit point) appends one *batch* to the journal (the current content of
//!   every page written since the last sync), then syncs the storage. The database pages in the
//!   file are untouched, so the sync carries just the batch.
//! * **A checkpoint** writes the overlay's pages to their places, syncs, then starts a new
//!   journal *generation* (a new header, synced), which makes every batch of the old one void.
//!   It runs when the journal is full, on [`crate::Store::checkpoint`], when the store closes,
//!   and before direct mode.
//! * **Direct mode.** When the pages written since the last sync pass [`BIG_COMMIT`] (a big
//!   commit: mostly large values in runs of neighbouring pages, as cheap to sync in place) or
//!   the overlay outgrows the region, a checkpoint empties the overlay and writes go straight
//!   to the file, as if there were no journal. It lasts while each sync follows that much
//!   writing (a large upload, which redb syncs each time it grows the file); the first small
//!   commit's sync ends it.
//! * **Recovery**, before redb reads anything: the batches of the current generation are
//!   written to their places in order, up to the first that is missing, torn or damaged; then
//!   a new generation starts. A valid batch of the current generation further on means a batch
//!   before it was damaged after it was made durable: the open fails with a corruption error
//!   rather than silently drop commits.
//!
//! * **Deferred syncs.** A commit made under [`deferring_sync`] (`Store::write` does) writes its
//!   batch and starts the disk on it, and returns without waiting; redb finishes the commit
//!   (freeing pages of earlier ones) while the disk works, and the caller then settles the sync
//!   ([`JournalControl::settle`]) before it reports the commit done. Only the last batch can be
//!   unsettled, and everything else that changes the file (the next batch, a checkpoint, a
//!   length change) settles it first, so a crash still keeps a prefix of the batches.
//!
//! What redb relies on holds: after `sync_data`, every earlier write survives a crash (it is in a
//! synced batch or, in direct mode, synced in place) — for a deferred sync, once it is settled,
//! which its caller does before anyone learns of the commit — and a write not yet synced may or
//! may not survive, as in a plain file. The database pages in the file only ever change at a
//! checkpoint or in direct mode, and both begin with the journal void or the overlay written out
//! and synced.
//!
//! Locking: redb locks the storage before it reads anything; recovery runs on redb's first
//! access, so it runs under that lock.

use parking_lot::RwLock;
use redb::{BackendError, StorageBackend};
use std::collections::HashMap;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};

/// Page size of the overlay and of journal alignment.
const PAGE: u64 = 4096;

const HEADER_MAGIC: [u8; 8] = *b"recfjrnl";
/// Magic of a batch summed with CRC-32 (the first 4 bytes of its checksum field; the other 12
/// are zero). The only kind written now.
const BATCH_MAGIC: [u8; 8] = *b"recfbcrc";
/// Magic of a batch summed with blake3 (16 bytes), as earlier builds wrote them: a store they
/// left with a journal to replay still opens.
const BATCH_MAGIC_BLAKE3: [u8; 8] = *b"recfbtch";
/// Version of the header page's layout.
const LAYOUT: u32 = 1;
/// Where the header's second copy lies in the header page: a damaged sector at the head of the
/// file leaves the other copy readable.
const HEADER_COPY: usize = 2048;
/// Bytes of one header copy.
const HEADER: usize = 48;
/// Header flag: the store's creation has not finished. While it is set, a database without
/// redb's magic number holds nothing anyone was told was committed, and recovery starts the
/// store over instead of refusing it.
const CREATING: u32 = 1;
/// Bytes of a batch's header: magic, generation, sequence, database length, its smallest length
/// since the batch before, page count, payload length, checksum.
const BATCH_HEADER: u64 = 64;
/// The part of a batch's header its checksum covers (with the payload).
const BATCH_SUMMED: usize = 48;
/// Bytes of a page's entry in a batch: page index (u64) and stored length (u16).
const ENTRY: usize = 10;

/// A commit that writes more than this (in 4 KiB pages) is written in place, not logged: its
/// pages are mostly large values in runs of neighbouring pages, which cost as little to sync in
/// place as in the journal, and logging them would write them twice.
const BIG_COMMIT: u64 = 256 * 1024;

/// The journal region of a new store, header page included.
pub(crate) const DEFAULT_REGION: u64 = 8 * 1024 * 1024;
/// The smallest region a store may be created with.
pub(crate) const MIN_REGION: u64 = 16 * PAGE;
/// The largest region a store may be created with.
pub(crate) const MAX_REGION: u64 = 1 << 30;

thread_local! {
    /// Set while this thread runs a commit whose caller settles the sync itself
    /// ([`deferring_sync`]).
    static DEFER_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Syncs of the running deferred commit still to be folded into its next one (the first
    /// phase of a two-phase commit).
    static FOLD_SYNCS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// A sync of this thread's commit was folded and no batch has carried its pages yet: the
    /// caller's settle writes one.
    static OWED_BATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `commit` (a redb commit on this thread) so that the journal writes its batch and starts
/// the disk on it, but leaves the wait for durability to the caller's [`JournalControl::settle`].
/// The caller must settle before telling anyone the commit is durable.
///
/// With `two_phase`, the commit's first sync (redb's first phase: the new root written, not
/// yet made current) writes no batch: its pages go into the batch of the second sync, which
/// makes the root current. A batch is replayed whole or not at all, so the second phase can
/// never survive without the first; the journal's order does what the first sync was for,
/// and the commit costs one sync instead of two. (If the engine syncs only once after all,
/// the settle writes the batch it is owed.)
pub(crate) fn deferring_sync<T>(two_phase: bool, commit: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DEFER_SYNC.set(false);
            FOLD_SYNCS.set(0);
        }
    }
    DEFER_SYNC.set(true);
    FOLD_SYNCS.set(u32::from(two_phase));
    OWED_BATCH.set(false);
    let _reset = Reset;
    commit()
}

/// Why a file could not be opened through the journal. Travels inside an `io::Error` (redb's
/// backend contract) and is turned into the store's own error at open.
#[derive(Debug)]
pub(crate) enum JournalError {
    /// The file starts like a redb database: a store of format 3 or older, or not a store.
    PlainRedb,
    /// The file is neither empty nor a recfiles store.
    Foreign(String),
    /// The journal is damaged in a way that would lose durable commits.
    Damaged(String),
    /// An earlier write or sync failed; nothing more is done until the store is reopened.
    Failed,
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::PlainRedb => write!(f, "a plain redb file, without a recfiles journal"),
            JournalError::Foreign(d) => write!(f, "not a recfiles store: {d}"),
            JournalError::Damaged(d) => write!(f, "the commit journal is damaged: {d}"),
            JournalError::Failed => write!(
                f,
                "an earlier write or sync failed; reopen the store to recover"
            ),
        }
    }
}

impl std::error::Error for JournalError {}

impl JournalError {
    /// The journal's own error inside an I/O error from the backend, if it is one.
    pub(crate) fn of(e: &io::Error) -> Option<&JournalError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<JournalError>())
    }
}

fn jerr(e: JournalError) -> io::Error {
    let kind = match e {
        JournalError::Failed => io::ErrorKind::Other,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, e)
}

/// The journal layer over a storage backend (see the module docs).
pub(crate) struct Journal<B> {
    inner: B,
    /// Region size for a new (empty) storage; an existing one says its own.
    new_region: u64,
    /// A second handle on the store file, when it is one, to allocate space as the file grows
    /// (see [`Journal::set_storage_len`]) and to start writeback early
    /// ([`Journal::start_writeback`]).
    file: Option<std::fs::File>,
    /// What the database's first bytes are once its creation finished (redb's magic number),
    /// when the journal carries a store; see [`Journal::with_database_magic`].
    db_magic: Option<&'static [u8]>,
    /// Recovery keeps what it can read instead of refusing a damaged journal (a salvage open,
    /// on storage that is never written back to the file).
    salvage: bool,
    opened: AtomicBool,
    failed: AtomicBool,
    st: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Bytes before the database: header page plus journal.
    region: u64,
    generation: u64,
    /// The store's creation has not finished (the header's [`CREATING`] flag).
    creating: bool,
    /// What a salvage recovery had to leave out.
    lost: Option<String>,
    /// Sequence number of the next batch.
    seq: u64,
    /// Where the next batch goes, from the start of the file.
    tail: u64,
    /// The database's length as redb sees it.
    len: u64,
    /// The storage's own length (region included).
    phys: u64,
    /// Pages written since the last checkpoint, by page index.
    overlay: HashMap<u64, Held>,
    /// Pages written since the last sync, each once.
    pending: Vec<u64>,
    /// Counts syncs and checkpoints: a held page whose epoch is the current one is pending.
    epoch: u64,
    /// Page buffers of the last checkpoint, for reuse.
    spare: Vec<Box<[u8]>>,
    /// The last batch's buffer, for reuse.
    batch: Vec<u8>,
    /// The last batch is written but not yet synced: its commit's caller settles it
    /// ([`deferring_sync`]). Only the last batch is ever in this state.
    unsynced: bool,
    /// Batches written since the journal opened: names the unsynced one, so a sync made
    /// without the lock knows whether the batch it covered is still the unsynced one.
    batches: u64,
    /// Writes go straight to the file (until a sync that finds few bytes written since the one
    /// before).
    direct: bool,
    /// Bytes written since the last sync, in either mode.
    written: u64,
    /// The database length the last batch of this generation recorded (recovery takes the
    /// length from the last batch it replays, so a sync after a length change logs one).
    logged_len: u64,
    /// The smallest length since the last batch: a page past it that no later write touched
    /// reads as zeros, however long the database grew again.
    min_len: u64,
}

/// A page held in the overlay.
struct Held {
    buf: Box<[u8]>,
    /// The epoch of the page's last write.
    epoch: u64,
}

impl<B: StorageBackend> Journal<B> {
    /// Wraps `inner`. Nothing is read or written until redb's first access.
    pub(crate) fn new(inner: B, new_region: u64) -> Journal<B> {
        Journal {
            inner,
            new_region: new_region.div_ceil(PAGE).max(MIN_REGION / PAGE) * PAGE,
            file: None,
            db_magic: None,
            salvage: false,
            opened: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            st: RwLock::new(State::default()),
        }
    }

    /// Gives the journal a second handle on the store file `inner` writes, used only to
    /// allocate space when the file grows and to start writeback early.
    pub(crate) fn with_file(mut self, file: Option<std::fs::File>) -> Journal<B> {
        self.file = file;
        self
    }

    /// Marks new storage as *being created* until [`JournalControl::finish_creation`], and
    /// tells recovery what a database whose creation finished starts with. A crash in between
    /// (the engine grows the file and writes its first pages before it writes its magic
    /// number) then leaves a file that opens as a new store, instead of a database without its
    /// magic number that the engine refuses for good.
    pub(crate) fn with_database_magic(mut self, magic: &'static [u8]) -> Journal<B> {
        self.db_magic = Some(magic);
        self
    }

    /// Makes recovery salvage: a damaged journal is replayed up to the damage and the rest is
    /// left out (said by [`JournalControl::lost`]) instead of refusing the open, and a header
    /// whose two copies are damaged is found again from the database's magic number. Only for
    /// storage whose writes never reach the store file.
    pub(crate) fn salvaging(mut self) -> Journal<B> {
        self.salvage = true;
        self
    }

    /// Sets the storage's length. When the database grows, the new space is allocated first
    /// where the platform allows (Linux `fallocate`): it then reads as zeros as after a plain
    /// `set_len`, but a write into it skips the filesystem's per-page allocation work, which
    /// took about a fifth of the writing thread's time in a large upload (the space is taken on
    /// disk at once instead of as pages are written; redb grows the file as it fills). If
    /// allocation fails (no space, or a filesystem without it), the plain `set_len` decides.
    fn set_storage_len(&self, from: u64, to: u64) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if to > from
            && let Some(file) = &self.file
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor belongs to `file`, open for the whole call, and the call
            // touches no memory of ours. Mode 0 only allocates; bytes already there are kept.
            unsafe {
                libc::fallocate(file.as_raw_fd(), 0, from as i64, (to - from) as i64);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (&self.file, from);
        self.inner.set_len(to)
    }

    fn ready(&self) -> io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(jerr(JournalError::Failed));
        }
        if self.opened.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut st = self.st.write();
        if !self.opened.load(Ordering::Acquire) {
            self.guard(self.recover(&mut st))?;
            self.opened.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Marks the journal failed when `r` is an error: after a failed write or sync nobody knows
    /// what reached the disk, so nothing more is written until a reopen recovers.
    fn guard<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        r
    }

    // -----------------------------------------------------------------------------------------
    // Recovery

    fn recover(&self, st: &mut State) -> io::Result<()> {
        let phys = self.inner.len()?;
        let mut head = [0u8; HEADER_COPY + HEADER];
        let have = phys.min(head.len() as u64) as usize;
        self.inner.read(0, &mut head[..have])?;
        // A store's header is never zeros, so the whole storage is read only when it starts so.
        if phys == 0 || (head[..HEADER] == [0u8; HEADER] && self.all_zeros(phys)?) {
            // A new store (or one whose creation never became durable). The region's length
            // is made durable before the header: a header is only ever found with its region.
            st.region = self.new_region;
            // The region stays sparse: an empty store takes no space for it on disk.
            self.inner.set_len(0)?;
            return self.start_new(st, 1);
        }
        if head[..4] == *b"redb" {
            return Err(jerr(JournalError::PlainRedb));
        }
        if have < HEADER {
            return Err(jerr(JournalError::Foreign(format!(
                "{phys} bytes long, shorter than a header"
            ))));
        }
        let header = match read_header(&head[..have]) {
            Ok(h) => h,
            Err(JournalError::PlainRedb) => return Err(jerr(JournalError::PlainRedb)),
            Err(e) if self.salvage => self.salvage_header(phys, st, e)?,
            Err(e) => return Err(jerr(e)),
        };
        let (region, generation) = (header.region, header.generation);
        if phys < region {
            return Err(jerr(JournalError::Damaged(format!(
                "the file ({phys} bytes) is shorter than its journal region ({region} bytes)"
            ))));
        }
        st.region = region;
        let mut pos = PAGE;
        let mut seq = 0;
        let mut replayed = false;
        let mut full = vec![0u8; PAGE as usize];
        while let Some(batch) = self.read_batch(region, generation, pos, Some(seq))? {
            // Cut where the database was shortest since the batch before (what lay past that
            // and was not written again is gone), then lay the pages, then the final length.
            if batch.min_len < batch.len {
                self.inner.set_len(region + batch.min_len)?;
            }
            for (page, bytes) in batch.pages() {
                full[..bytes.len()].copy_from_slice(bytes);
                full[bytes.len()..].fill(0);
                self.inner.write(region + page * PAGE, &full)?;
            }
            self.inner.set_len(region + batch.len)?;
            replayed = true;
            seq += 1;
            pos = next_batch_at(pos, batch.payload.len() as u64);
        }
        if header.creating && !self.database_created(region)? {
            // The engine never finished creating its database, so nothing in it was ever
            // committed: start the store over.
            return self.start_new(st, generation + 1);
        }
        if let Some(at) = self.later_batch(region, generation, pos)? {
            if !self.salvage {
                return Err(jerr(JournalError::Damaged(format!(
                    "the batch at byte {pos} is unreadable but a later one at byte {at} is intact"
                ))));
            }
            let mut later = 1;
            let mut from = at;
            while let Some(next) = self.later_batch(region, generation, from)? {
                later += 1;
                from = next;
            }
            st.lost = Some(format!(
                "the journal batch at byte {pos} (commit {seq} since the last checkpoint) is \
                 damaged: it and the commits after it are left out ({later} intact batches \
                 after it were not replayed)"
            ));
        }
        if replayed {
            self.inner.sync_data()?;
        }
        st.creating = header.creating;
        // A new generation voids every batch just replayed (and anything older).
        st.generation = generation;
        self.new_generation(st)?;
        st.phys = self.inner.len()?;
        st.len = st.phys - region;
        st.logged_len = st.len;
        st.min_len = st.len;
        Ok(())
    }

    /// For a salvage open whose header copies are both damaged (`fault`): the region is where
    /// the database's magic number lies on a page boundary. Nothing is replayed: without the
    /// header's generation, the batches at the head of the journal may be a voided
    /// generation's, whose pages later checkpoints have overwritten. The database is then as
    /// the last checkpoint (or write in place) left it.
    fn salvage_header(&self, phys: u64, st: &mut State, fault: JournalError) -> io::Result<Header> {
        let Some(magic) = self.db_magic else {
            return Err(jerr(fault));
        };
        let mut first = vec![0u8; magic.len()];
        let mut region = MIN_REGION;
        let found = loop {
            if region > MAX_REGION || region + magic.len() as u64 > phys {
                break None;
            }
            self.inner.read(region, &mut first)?;
            if first == magic {
                break Some(region);
            }
            region += PAGE;
        };
        let Some(region) = found else {
            return Err(jerr(fault));
        };
        st.lost = Some(format!(
            "both copies of the journal header are damaged ({fault}); the database was found at \
             byte {region}, and the commits made since its last checkpoint are left out"
        ));
        // Generations start at 1: no batch belongs to generation 0.
        Ok(Header {
            region,
            generation: 0,
            creating: false,
        })
    }

    /// Starts an empty database after the region: the region's length made durable first, then
    /// a header of `generation` (marked as being created when the journal carries a store).
    fn start_new(&self, st: &mut State, generation: u64) -> io::Result<()> {
        self.inner.set_len(st.region)?;
        self.inner.sync_data()?;
        st.creating = self.db_magic.is_some();
        st.generation = generation - 1;
        self.new_generation(st)?;
        st.phys = st.region;
        st.len = 0;
        st.logged_len = 0;
        st.min_len = 0;
        Ok(())
    }

    /// Writes a header of the next generation and syncs it, voiding every batch of the current
    /// one; the next batch goes first in the journal.
    fn new_generation(&self, st: &mut State) -> io::Result<()> {
        st.generation += 1;
        self.inner.write(
            0,
            &header_page(&Header {
                region: st.region,
                generation: st.generation,
                creating: st.creating,
            }),
        )?;
        self.inner.sync_data()?;
        st.tail = PAGE;
        st.seq = 0;
        Ok(())
    }

    /// Whether the database after `region` starts with the magic number its engine writes last
    /// when it creates it (always true for a journal that does not carry a store).
    fn database_created(&self, region: u64) -> io::Result<bool> {
        let Some(magic) = self.db_magic else {
            return Ok(true);
        };
        if self.inner.len()? < region + magic.len() as u64 {
            return Ok(false);
        }
        let mut first = vec![0u8; magic.len()];
        self.inner.read(region, &mut first)?;
        Ok(first == magic)
    }

    /// Whether the storage holds nothing but zeros (what a creation that was cut off before
    /// its header became durable leaves). Only a short storage is read through.
    fn all_zeros(&self, phys: u64) -> io::Result<bool> {
        const MOST: u64 = 64 * 1024 * 1024;
        if phys > MOST {
            return Ok(false);
        }
        let mut buf = vec![0u8; phys.min(1024 * 1024) as usize];
        let mut at = 0;
        while at < phys {
            let n = (phys - at).min(buf.len() as u64) as usize;
            self.inner.read(at, &mut buf[..n])?;
            if buf[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// The batch at `pos` if it is whole and belongs to `generation` (and has sequence `seq`,
    /// when given).
    fn read_batch(
        &self,
        region: u64,
        generation: u64,
        pos: u64,
        seq: Option<u64>,
    ) -> io::Result<Option<Batch>> {
        if pos + BATCH_HEADER > region {
            return Ok(None);
        }
        let mut head = [0u8; BATCH_HEADER as usize];
        self.inner.read(pos, &mut head)?;
        let Some(h) = BatchHeader::parse(&head) else {
            return Ok(None);
        };
        if h.generation != generation
            || seq.is_some_and(|s| s != h.seq)
            || pos + BATCH_HEADER + h.payload_len > region
        {
            return Ok(None);
        }
        let mut payload = vec![0u8; h.payload_len as usize];
        self.inner.read(pos + BATCH_HEADER, &mut payload)?;
        let sum = match h.summed_by {
            BatchSum::Crc32 => batch_crc(&head[..BATCH_SUMMED], &payload),
            BatchSum::Blake3 => checksum(&head[..BATCH_SUMMED], &payload),
        };
        if sum != head[BATCH_SUMMED..] {
            return Ok(None);
        }
        Ok(Batch::decode(h.count, (h.len, h.min_len), payload))
    }

    /// The position of an intact batch of `generation` after `from`, if there is one.
    fn later_batch(&self, region: u64, generation: u64, from: u64) -> io::Result<Option<u64>> {
        let mut pos = from + PAGE;
        while pos + BATCH_HEADER <= region {
            if self.read_batch(region, generation, pos, None)?.is_some() {
                return Ok(Some(pos));
            }
            pos += PAGE;
        }
        Ok(None)
    }

    // -----------------------------------------------------------------------------------------
    // Writing

    /// Appends the pages written since the last sync as one batch and syncs; checkpoints instead
    /// when the batch is large or the journal has no room for it.
    fn commit(&self, st: &mut State) -> io::Result<()> {
        if st.direct {
            // Everything is in place: the file's own length is the database's again. Direct
            // mode lasts while syncs come between large amounts of writing (redb syncs when it
            // grows the file, in the middle of a large upload); a small commit ends it.
            self.inner.sync_data()?;
            st.unsynced = false;
            st.direct = st.written >= self.big_commit(st);
            st.written = 0;
            st.logged_len = st.len;
            st.min_len = st.len;
            return Ok(());
        }
        st.written = 0;
        let length_changed = st.len != st.logged_len || st.min_len < st.len;
        if st.pending.is_empty() && (st.tail == PAGE || !length_changed) {
            // Nothing to log: without batches the file's own length is the database's.
            self.inner.sync_data()?;
            st.unsynced = false;
            return Ok(());
        }
        if st.pending.len() as u64 * PAGE > self.big_commit(st) {
            return self.checkpoint_locked(st);
        }
        self.settle_locked(st)?;
        let mut pages = std::mem::take(&mut st.pending);
        pages.sort_unstable();
        let mut batch = std::mem::take(&mut st.batch);
        encode_batch(
            (st.generation, st.seq),
            (st.len, st.min_len.min(st.len)),
            &pages,
            &st.overlay,
            &mut batch,
        );
        // Keep the list's and the batch's allocations for the next sync.
        pages.clear();
        st.pending = pages;
        st.epoch += 1;
        let batch_len = batch.len() as u64;
        let fits = st.tail + batch_len <= st.region;
        let written = if fits {
            self.inner.write(st.tail, &batch)
        } else {
            Ok(())
        };
        st.batch = batch;
        if !fits {
            return self.checkpoint_locked(st);
        }
        written?;
        st.batches += 1;
        if DEFER_SYNC.get() {
            self.start_writeback(st.tail, batch_len);
            st.unsynced = true;
        } else {
            self.inner.sync_data()?;
        }
        st.tail = next_batch_at(st.tail, batch_len - BATCH_HEADER);
        st.seq += 1;
        st.logged_len = st.len;
        st.min_len = st.len;
        Ok(())
    }

    /// Syncs the last batch if its commit deferred the sync ([`deferring_sync`]). Anything that
    /// changes the file other than appending a batch comes after this, so a batch is durable
    /// before any later change to the file can be.
    fn settle_locked(&self, st: &mut State) -> io::Result<()> {
        if st.unsynced {
            self.inner.sync_data()?;
            st.unsynced = false;
        }
        Ok(())
    }

    /// Asks the kernel to start writing `len` bytes of the file at `offset` to the disk (`len`
    /// 0: to the end), without waiting (Linux `sync_file_range`). A deferred sync starts its
    /// batch this way, so the disk works while the committing thread finishes; staged uploads
    /// start each batch, so the final sync finds little left to write. Only a hint, never a
    /// promise of durability: without a file handle, or elsewhere, it does nothing.
    fn start_writeback(&self, offset: u64, len: u64) {
        #[cfg(target_os = "linux")]
        if let Some(file) = &self.file {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor belongs to `file`, open for the whole call, and the call
            // touches no memory of ours. A failure only means no early start.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    offset as i64,
                    len as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (&self.file, offset, len);
    }

    /// Pages (in bytes) written since the last sync past which a commit goes in place instead
    /// of through the journal: [`BIG_COMMIT`], or a quarter of a smaller region.
    fn big_commit(&self, st: &State) -> u64 {
        ((st.region - PAGE) / 4).min(BIG_COMMIT)
    }

    /// Writes the overlay to its places, syncs, and starts a new (empty) generation.
    fn checkpoint_locked(&self, st: &mut State) -> io::Result<()> {
        self.settle_locked(st)?;
        st.pending.clear();
        st.epoch += 1;
        if st.overlay.is_empty() && st.tail == PAGE {
            return self.inner.sync_data();
        }
        let mut pages: Vec<u64> = st.overlay.keys().copied().collect();
        pages.sort_unstable();
        // The database's first page holds redb's header, which makes a commit current. Its
        // pages may not all be in a batch (a commit too big to log, a two-phase commit whose
        // first sync was folded), so the header goes in place only once everything else is
        // synced there: a crash never finds it ahead of the pages it names.
        let header_first = pages.first() == Some(&0);
        if header_first {
            pages.remove(0);
        }
        // Neighbouring pages go out as one write, none past the database's end.
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0;
        for (i, &p) in pages.iter().enumerate() {
            if i > 0 && p != pages[i - 1] + 1 {
                self.inner.write(st.region + run_start * PAGE, &run)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = p;
            }
            let keep = st.len.saturating_sub(p * PAGE).min(PAGE) as usize;
            run.extend_from_slice(&st.overlay[&p].buf[..keep]);
        }
        if !run.is_empty() {
            self.inner.write(st.region + run_start * PAGE, &run)?;
        }
        if header_first {
            self.inner.sync_data()?;
            let keep = st.len.min(PAGE) as usize;
            self.inner.write(st.region, &st.overlay[&0].buf[..keep])?;
        }
        self.inner.sync_data()?;
        self.new_generation(st)?;
        st.phys = st.phys.max(st.region + st.len);
        let keep = (st.region / PAGE) as usize;
        let State { overlay, spare, .. } = st;
        for (_, held) in overlay.drain() {
            if spare.len() < keep {
                spare.push(held.buf);
            }
        }
        st.logged_len = st.len;
        st.min_len = st.len;
        Ok(())
    }

    fn write_locked(&self, st: &mut State, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        if !st.direct {
            let (first, last) = (offset / PAGE, (end - 1) / PAGE);
            let (mut new_held, mut new_pending) = (0u64, 0u64);
            for p in first..=last {
                match st.overlay.get(&p) {
                    None => (new_held, new_pending) = (new_held + 1, new_pending + 1),
                    Some(h) if h.epoch != st.epoch => new_pending += 1,
                    Some(_) => {}
                }
            }
            // More held than the region holds, or a commit too big to log: straight to the
            // file from here on.
            if (st.overlay.len() as u64 + new_held) * PAGE > st.region
                || (st.pending.len() as u64 + new_pending) * PAGE > self.big_commit(st)
            {
                self.checkpoint_locked(st)?;
                st.direct = true;
            }
        }
        st.written += data.len() as u64;
        if st.direct {
            self.inner.write(st.region + offset, data)?;
            st.len = st.len.max(end);
            st.phys = st.phys.max(st.region + end);
            return Ok(());
        }
        let (region, phys, epoch) = (st.region, st.phys, st.epoch);
        let mut at = offset;
        while at < end {
            let page = at / PAGE;
            let in_page = (at % PAGE) as usize;
            let n = ((PAGE - at % PAGE).min(end - at)) as usize;
            let src = &data[(at - offset) as usize..][..n];
            match st.overlay.get_mut(&page) {
                Some(held) => {
                    held.buf[in_page..in_page + n].copy_from_slice(src);
                    if held.epoch != epoch {
                        held.epoch = epoch;
                        st.pending.push(page);
                    }
                }
                None => {
                    let mut buf = st
                        .spare
                        .pop()
                        .unwrap_or_else(|| vec![0u8; PAGE as usize].into_boxed_slice());
                    // A whole page overwrites the buffer; a part is laid over the file's page.
                    if n < PAGE as usize {
                        self.read_file((region, phys), page * PAGE, &mut buf)?;
                    }
                    buf[in_page..in_page + n].copy_from_slice(src);
                    st.overlay.insert(page, Held { buf, epoch });
                    st.pending.push(page);
                }
            }
            at += n as u64;
        }
        st.len = st.len.max(end);
        Ok(())
    }

    /// Reads database bytes from the file alone (no overlay); bytes past the file's end read as
    /// zeros.
    fn read_file(&self, (region, phys): (u64, u64), offset: u64, out: &mut [u8]) -> io::Result<()> {
        let have = phys.saturating_sub(region + offset).min(out.len() as u64) as usize;
        if have > 0 {
            self.inner.read(region + offset, &mut out[..have])?;
        }
        out[have..].fill(0);
        Ok(())
    }
}

/// What the store asks of its journal directly, not through redb (the store does not know the
/// backend's type).
pub(crate) trait JournalControl: std::fmt::Debug + Send + Sync {
    /// Writes the overlay in place and starts a new, empty generation.
    fn checkpoint(&self) -> io::Result<()>;

    /// Makes the last commit durable if it ran under [`deferring_sync`].
    fn settle(&self) -> io::Result<()>;

    /// Asks the kernel to start writing the file's dirty pages to disk, without waiting.
    fn start_writeback(&self);

    /// Records, durably, that the store's creation finished (its database and first tables
    /// are committed): from here on a database without its magic number is damage, not an
    /// unfinished creation. Does nothing for a store created earlier.
    fn finish_creation(&self) -> io::Result<()>;

    /// What a salvage open left out, if anything.
    fn lost(&self) -> Option<String>;
}

impl<B: StorageBackend> JournalControl for Journal<B> {
    fn checkpoint(&self) -> io::Result<()> {
        self.ready()?;
        let mut st = self.st.write();
        let r = if st.direct {
            // Everything is in place already; a sync makes it durable and ends direct mode.
            self.commit(&mut st)
        } else {
            self.checkpoint_locked(&mut st)
        };
        self.guard(r)
    }

    fn settle(&self) -> io::Result<()> {
        self.ready()?;
        if OWED_BATCH.replace(false) {
            let mut st = self.st.write();
            let r = deferring_sync(false, || self.commit(&mut st));
            self.guard(r)?;
        }
        let batch = {
            let st = self.st.read();
            if !st.unsynced {
                return Ok(());
            }
            st.batches
        };
        // The wait for the disk runs without the lock, so other writers keep writing into the
        // overlay (memory only) meanwhile. Whatever else would change the file first settles
        // under the lock (a second sync, harmless), so the batch is still durable before any
        // later change of the file; a sync covers every write completed before it began.
        let r = self.inner.sync_data();
        self.guard(r)?;
        let mut st = self.st.write();
        if st.unsynced && st.batches == batch {
            st.unsynced = false;
        }
        Ok(())
    }

    fn start_writeback(&self) {
        Journal::start_writeback(self, 0, 0);
    }

    fn lost(&self) -> Option<String> {
        self.st.read().lost.clone()
    }

    fn finish_creation(&self) -> io::Result<()> {
        self.ready()?;
        let mut st = self.st.write();
        if !st.creating {
            return Ok(());
        }
        // Everything logged goes to its place first: the new generation voids the journal.
        let r = if st.direct {
            self.commit(&mut st)
        } else {
            self.checkpoint_locked(&mut st)
        }
        .and_then(|()| {
            st.creating = false;
            self.new_generation(&mut st)
        });
        self.guard(r)
    }
}

impl<B: StorageBackend> std::fmt::Debug for Journal<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.st.read();
        f.debug_struct("Journal")
            .field("region", &st.region)
            .field("generation", &st.generation)
            .field("overlay_pages", &st.overlay.len())
            .finish()
    }
}

impl<B: StorageBackend> StorageBackend for Journal<B> {
    fn len(&self) -> Result<u64, io::Error> {
        self.ready()?;
        Ok(self.st.read().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.ready()?;
        let st = self.st.read();
        let end = offset + out.len() as u64;
        if end > st.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read of {}..{end} past the end ({})", offset, st.len),
            ));
        }
        if out.is_empty() {
            return Ok(());
        }
        let pages = offset / PAGE..=(end - 1) / PAGE;
        // A page redb wrote since the last checkpoint (often read back soon) needs no file read.
        let all_held = !st.overlay.is_empty() && pages.clone().all(|p| st.overlay.contains_key(&p));
        if !all_held {
            self.read_file((st.region, st.phys), offset, out)?;
        }
        if !st.overlay.is_empty() {
            for page in pages {
                if let Some(Held { buf, .. }) = st.overlay.get(&page) {
                    let from = (page * PAGE).max(offset);
                    let to = ((page + 1) * PAGE).min(end);
                    out[(from - offset) as usize..(to - offset) as usize].copy_from_slice(
                        &buf[(from - page * PAGE) as usize..(to - page * PAGE) as usize],
                    );
                }
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.ready()?;
        let mut st = self.st.write();
        let r = self
            .settle_locked(&mut st)
            .and_then(|()| self.set_storage_len(st.phys, st.region + len));
        self.guard(r)?;
        if len < st.len {
            let keep = len.div_ceil(PAGE);
            st.overlay.retain(|&p, _| p < keep);
            st.pending.retain(|&p| p < keep);
            // The page that now holds the end keeps zeros past it, as the file would.
            if !len.is_multiple_of(PAGE)
                && let Some(held) = st.overlay.get_mut(&(len / PAGE))
            {
                held.buf[(len % PAGE) as usize..].fill(0);
            }
        }
        st.len = len;
        st.min_len = st.min_len.min(len);
        st.phys = st.region + len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.ready()?;
        let mut st = self.st.write();
        // Folding is only sound while the pages go into a batch: in direct mode they are
        // written in place, where the first phase needs its own sync.
        if DEFER_SYNC.get() && FOLD_SYNCS.get() > 0 && !st.direct {
            FOLD_SYNCS.set(FOLD_SYNCS.get() - 1);
            OWED_BATCH.set(true);
            return Ok(());
        }
        let r = self.commit(&mut st);
        if r.is_ok() {
            OWED_BATCH.set(false);
        }
        self.guard(r)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.ready()?;
        if data.is_empty() {
            return Ok(());
        }
        let mut st = self.st.write();
        let r = self.write_locked(&mut st, offset, data);
        self.guard(r)
    }

    fn close(&self) -> Result<(), io::Error> {
        // A clean close leaves the journal empty, so the next open has nothing to replay.
        let done = if self.opened.load(Ordering::Acquire) && !self.failed.load(Ordering::Acquire) {
            let mut st = self.st.write();
            if st.direct {
                self.inner.sync_data()
            } else {
                st.pending.clear();
                self.checkpoint_locked(&mut st)
            }
        } else {
            Ok(())
        };
        let closed = self.inner.close();
        done.and(closed)
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

// ---------------------------------------------------------------------------------------------
// Encodings (little endian throughout; docs/FORMAT.md has the same tables)

/// What a header page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    region: u64,
    generation: u64,
    /// The [`CREATING`] flag.
    creating: bool,
}

/// The header page: two copies (at 0 and at [`HEADER_COPY`]) of magic, layout version, flags,
/// region bytes, generation, and a checksum of those 32 bytes.
fn header_page(h: &Header) -> Vec<u8> {
    let mut one = [0u8; HEADER];
    one[0..8].copy_from_slice(&HEADER_MAGIC);
    one[8..12].copy_from_slice(&LAYOUT.to_le_bytes());
    let flags = if h.creating { CREATING } else { 0 };
    one[12..16].copy_from_slice(&flags.to_le_bytes());
    one[16..24].copy_from_slice(&h.region.to_le_bytes());
    one[24..32].copy_from_slice(&h.generation.to_le_bytes());
    let sum = checksum(&one[..32], &[]);
    one[32..48].copy_from_slice(&sum);
    let mut page = vec![0u8; PAGE as usize];
    page[..HEADER].copy_from_slice(&one);
    page[HEADER_COPY..HEADER_COPY + HEADER].copy_from_slice(&one);
    page
}

/// The header from the head of the file (`head` holds its first bytes, up to the end of the
/// second copy): the intact copy, or of two intact copies the later generation (a torn header
/// write leaves one of each; the new one is only written once what it voids is in place). With
/// neither intact, the first copy's fault. Stores made before the second copy have only the
/// first.
fn read_header(head: &[u8]) -> Result<Header, JournalError> {
    let copy = |at: usize| -> Result<Header, JournalError> {
        let bytes: &[u8; HEADER] = head
            .get(at..at + HEADER)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| JournalError::Foreign("no recfiles header".into()))?;
        parse_header(bytes)
    };
    match (copy(0), copy(HEADER_COPY)) {
        (Ok(a), Ok(b)) => Ok(if b.generation > a.generation { b } else { a }),
        (Ok(h), Err(_)) | (Err(_), Ok(h)) => Ok(h),
        (Err(e), Err(_)) => Err(e),
    }
}

/// One header copy.
fn parse_header(head: &[u8; HEADER]) -> Result<Header, JournalError> {
    if head[..4] == *b"redb" {
        return Err(JournalError::PlainRedb);
    }
    if head[..8] != HEADER_MAGIC {
        return Err(JournalError::Foreign("no recfiles header".into()));
    }
    if checksum(&head[..32], &[]) != head[32..48] {
        return Err(JournalError::Damaged(
            "the header's checksum does not match".into(),
        ));
    }
    let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap_or_default());
    let layout = u32::from_le_bytes(head[8..12].try_into().unwrap_or_default());
    if layout != LAYOUT {
        return Err(JournalError::Foreign(format!(
            "journal layout {layout}, this build reads {LAYOUT}"
        )));
    }
    let flags = u32::from_le_bytes(head[12..16].try_into().unwrap_or_default());
    let (region, generation) = (word(16), word(24));
    if region < MIN_REGION || region % PAGE != 0 {
        return Err(JournalError::Damaged(format!(
            "journal region of {region} bytes"
        )));
    }
    Ok(Header {
        region,
        generation,
        creating: flags & CREATING != 0,
    })
}

fn checksum(head: &[u8], payload: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(head);
    h.update(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// A batch's checksum: CRC-32 of the summed header bytes and the payload, in the first 4 of the
/// 16 bytes the header keeps for it. A batch's sum tells a torn or stale tail from a written
/// one; generation, sequence and the entries' consistency are checked as well, and content
/// keeps its own blake3 hashes. CRC-32 costs about a twenty-fifth of blake3 per byte here.
fn batch_crc(head: &[u8], payload: &[u8]) -> [u8; 16] {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(payload);
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&h.finalize().to_le_bytes());
    out
}

/// How a batch is summed, told by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchSum {
    Crc32,
    Blake3,
}

/// Where the batch after one at `pos` with `payload` bytes starts: batches start on pages.
fn next_batch_at(pos: u64, payload: u64) -> u64 {
    (pos + BATCH_HEADER + payload).div_ceil(PAGE) * PAGE
}

struct BatchHeader {
    summed_by: BatchSum,
    generation: u64,
    seq: u64,
    len: u64,
    min_len: u64,
    count: u32,
    payload_len: u64,
}

impl BatchHeader {
    fn parse(b: &[u8; BATCH_HEADER as usize]) -> Option<BatchHeader> {
        let summed_by = match b[0..8].try_into().unwrap_or_default() {
            BATCH_MAGIC => BatchSum::Crc32,
            BATCH_MAGIC_BLAKE3 => BatchSum::Blake3,
            _ => return None,
        };
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        Some(BatchHeader {
            summed_by,
            generation: u64_at(8),
            seq: u64_at(16),
            len: u64_at(24),
            min_len: u64_at(32),
            count: u32_at(40),
            payload_len: u32_at(44) as u64,
        })
    }
}

/// A batch: the header, then `count` entries (page index, stored length), then each page's
/// stored bytes in entry order. A page's trailing zeros are not stored. Encoded into `out`
/// (cleared first), whose allocation the caller keeps from one batch to the next.
fn encode_batch(
    (generation, seq): (u64, u64),
    (len, min_len): (u64, u64),
    pages: &[u64],
    overlay: &HashMap<u64, Held>,
    out: &mut Vec<u8>,
) {
    let stored: Vec<(u64, &[u8])> = pages
        .iter()
        .filter_map(|p| overlay.get(p).map(|h| (*p, trim_zeros(&h.buf))))
        .collect();
    let payload_len: usize =
        stored.len() * ENTRY + stored.iter().map(|(_, b)| b.len()).sum::<usize>();
    // The checksum covers the header's first 48 bytes and the payload, which the stored batch
    // separates by the checksum itself. The summed bytes are laid out first, contiguous, with
    // `SUM_LEN` bytes of room in front, and moved into place after.
    const SUM_LEN: usize = BATCH_HEADER as usize - BATCH_SUMMED;
    out.clear();
    out.reserve(BATCH_HEADER as usize + payload_len);
    out.extend_from_slice(&[0u8; SUM_LEN]);
    out.extend_from_slice(&BATCH_MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&min_len.to_le_bytes());
    out.extend_from_slice(&(stored.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    for (p, b) in &stored {
        out.extend_from_slice(&p.to_le_bytes());
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    }
    for (_, b) in &stored {
        out.extend_from_slice(b);
    }
    let sum = batch_crc(&out[SUM_LEN..], &[]);
    out.copy_within(SUM_LEN..BATCH_HEADER as usize, 0);
    out[BATCH_SUMMED..BATCH_HEADER as usize].copy_from_slice(&sum);
}

/// `page` without its trailing zeros, found 64 bytes at a time (an OR over a block, which the
/// compiler vectorises; a word-at-a-time scan cost a tenth of a small durable commit's
/// instructions on pages that are mostly empty).
fn trim_zeros(page: &[u8]) -> &[u8] {
    let mut end = page.len();
    while end >= 64 && page[end - 64..end].iter().fold(0u8, |acc, &b| acc | b) == 0 {
        end -= 64;
    }
    while end > 0 && page[end - 1] == 0 {
        end -= 1;
    }
    &page[..end]
}

/// A batch read back from the journal.
struct Batch {
    count: usize,
    /// The database's length when the batch was written.
    len: u64,
    /// Its smallest length since the batch before.
    min_len: u64,
    payload: Vec<u8>,
}

impl Batch {
    /// Checks that the entries describe the payload exactly.
    fn decode(count: u32, (len, min_len): (u64, u64), payload: Vec<u8>) -> Option<Batch> {
        let count = count as usize;
        let entries = count.checked_mul(ENTRY)?;
        let mut total = entries;
        for i in 0..count {
            let e = payload.get(i * ENTRY..(i + 1) * ENTRY)?;
            let len = u16::from_le_bytes([e[8], e[9]]) as usize;
            if len as u64 > PAGE {
                return None;
            }
            total = total.checked_add(len)?;
        }
        (total == payload.len() && min_len <= len).then_some(Batch {
            count,
            len,
            min_len,
            payload,
        })
    }

    /// Each page index with its stored bytes.
    fn pages(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let mut data = self.count * ENTRY;
        (0..self.count).map(move |i| {
            let e = &self.payload[i * ENTRY..(i + 1) * ENTRY];
            let page = u64::from_le_bytes(e[..8].try_into().unwrap_or_default());
            let len = u16::from_le_bytes([e[8], e[9]]) as usize;
            let bytes = &self.payload[data..data + len];
            data += len;
            (page, bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimulatedDisk;
    use crate::storage::backend::Adapter;

    type Mem = SimulatedDisk;

    /// A journal over a simulated disk (which knows what each sync made durable).
    fn journal(disk: &Mem, region: u64) -> Journal<Adapter> {
        Journal::new(Adapter(Box::new(disk.clone())), region)
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// Equal byte strings, or a panic naming the first difference (not the whole strings).
    fn same(got: &[u8], want: &[u8], what: &str) {
        if got != want {
            let at = got.iter().zip(want).position(|(a, b)| a != b);
            panic!(
                "{what}: {} bytes, wanted {}; first difference at {at:?}",
                got.len(),
                want.len()
            );
        }
    }

    fn contents(j: &Journal<Adapter>) -> Vec<u8> {
        let mut out = vec![0u8; j.len().unwrap() as usize];
        j.read(0, &mut out).unwrap();
        out
    }

    /// The model's side of settling a deferred sync: the state it synced is now the oldest the
    /// file may show.
    fn settle_model(history: &mut Vec<Vec<u8>>, deferred: &mut Option<usize>) {
        if let Some(at) = deferred.take() {
            history.drain(..at);
        }
    }

    /// Random writes, length changes, syncs and checkpoints against a plain model of the bytes,
    /// with crashes at random moments: a power cut (only synced bytes survive), a dying process
    /// (every write survives) or a partial writeback (some unsynced pages survive). The store
    /// reopened on what survived holds, as a plain file would, the state of the last sync with
    /// at most some of the later writes: each byte and the length are as they were at the last
    /// sync or after some write since.
    #[test]
    fn reopening_after_a_crash_gives_back_what_was_synced() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut mem = Mem::new();
            let mut j = journal(&mem, MIN_REGION);
            let mut cur: Vec<u8> = Vec::new();
            // The state at the last sync, then after every change since.
            let mut history: Vec<Vec<u8>> = vec![Vec::new()];
            // Where in `history` a deferred sync happened that is not settled yet: until it is,
            // the file may hold that state or the one before.
            let mut deferred: Option<usize> = None;
            for step in 0..400u64 {
                match rng.below(22) {
                    0..=10 => {
                        // Mostly page-sized writes, as redb does; some spans and odd sizes.
                        let len = match rng.below(10) {
                            0 => 1 + rng.below(300),
                            1 => PAGE * (1 + rng.below(24)),
                            _ => PAGE,
                        } as usize;
                        let at = if rng.below(4) == 0 {
                            rng.below(cur.len() as u64 + 1)
                        } else {
                            rng.below(cur.len() as u64 / PAGE + 2) * PAGE
                        } as usize;
                        let data = vec![(step % 251 + 1) as u8; len];
                        if cur.len() < at + len {
                            cur.resize(at + len, 0);
                        }
                        cur[at..at + len].copy_from_slice(&data);
                        j.write(at as u64, &data).unwrap();
                        history.push(cur.clone());
                    }
                    11 => {
                        let len = rng.below(cur.len() as u64 + 3 * PAGE) as usize;
                        cur.resize(len, 0);
                        // A length change settles a deferred sync first.
                        settle_model(&mut history, &mut deferred);
                        j.set_len(len as u64).unwrap();
                        history.push(cur.clone());
                    }
                    12..=16 => {
                        j.sync_data().unwrap();
                        history = vec![cur.clone()];
                        deferred = None;
                    }
                    17 => {
                        JournalControl::checkpoint(&j).unwrap();
                        history = vec![cur.clone()];
                        deferred = None;
                    }
                    19 => {
                        // A commit whose caller settles later (`Store::write`): the batch is
                        // written, its sync waits. One still unsettled is settled first.
                        settle_model(&mut history, &mut deferred);
                        deferring_sync(false, || j.sync_data()).unwrap();
                        history.push(cur.clone());
                        deferred = Some(history.len() - 1);
                    }
                    20 => {
                        JournalControl::settle(&j).unwrap();
                        settle_model(&mut history, &mut deferred);
                    }
                    18 => same(
                        &contents(&j),
                        &cur,
                        &format!("seed {seed} step {step}: live"),
                    ),
                    _ => {
                        let (durable, written) = (mem.durable_image(), mem.written_image());
                        let how = rng.below(3);
                        let image = match how {
                            0 => durable,
                            1 => written,
                            _ => {
                                let mut torn = durable;
                                torn.resize(written.len(), 0);
                                for p in 0..written.len().div_ceil(PAGE as usize) {
                                    if rng.below(2) == 0 {
                                        let a = p * PAGE as usize;
                                        let b = (a + PAGE as usize).min(written.len());
                                        torn[a..b].copy_from_slice(&written[a..b]);
                                    }
                                }
                                torn
                            }
                        };
                        mem = Mem::from_image(image);
                        let j2 = journal(&mem, MIN_REGION);
                        let got = contents(&j2);
                        let what = format!("seed {seed} step {step}, crash of kind {how}");
                        assert!(
                            history.iter().any(|h| h.len() == got.len()),
                            "{what}: length {} is no length since the last sync ({:?})",
                            got.len(),
                            history.iter().map(Vec::len).collect::<Vec<_>>()
                        );
                        for (i, b) in got.iter().enumerate() {
                            assert!(
                                history.iter().any(|h| h.get(i).copied().unwrap_or(0) == *b),
                                "{what}: byte {i} is {b}, a value it never had since the sync"
                            );
                        }
                        // Carry on from the reopened state (recovery synced it).
                        j = j2;
                        cur = got;
                        history = vec![cur.clone()];
                        deferred = None;
                    }
                }
            }
        }
    }

    fn batch_positions(image: &[u8]) -> Vec<usize> {
        (1..image.len() / PAGE as usize)
            .map(|p| p * PAGE as usize)
            .filter(|&at| {
                matches!(
                    image[at..at + 8].try_into(),
                    Ok(BATCH_MAGIC | BATCH_MAGIC_BLAKE3)
                )
            })
            .collect()
    }

    /// Three synced commits, the process dies: (image, what the commits wrote).
    fn three_commits() -> (Vec<u8>, Vec<u8>) {
        let mem = Mem::new();
        let j = journal(&mem, MIN_REGION * 4);
        for i in 0..3u8 {
            j.write(u64::from(i) * PAGE, &vec![i + 1; PAGE as usize])
                .unwrap();
            j.sync_data().unwrap();
        }
        let want = contents(&j);
        (mem.durable_image(), want)
    }

    #[test]
    fn a_torn_last_batch_is_ignored_and_the_ones_before_replayed() {
        let (mut image, want) = three_commits();
        let at = batch_positions(&image)[2];
        image[at + 60] ^= 0xFF;
        let j = journal(&Mem::from_image(image), MIN_REGION);
        let got = contents(&j);
        // The third commit is gone, the two before it are back, length included.
        same(&got, &want[..2 * PAGE as usize], "after a torn third batch");
    }

    #[test]
    fn trailing_zeros_are_trimmed_and_nothing_else() {
        for last in [
            None,
            Some(0),
            Some(7),
            Some(8),
            Some(63),
            Some(64),
            Some(65),
            Some(4095),
        ] {
            for filler in [0u8, 0xAB] {
                let mut page = vec![0u8; PAGE as usize];
                if let Some(at) = last {
                    // Zeros inside the kept part stay: only the tail goes.
                    page[..at].fill(filler);
                    page[at] = 1;
                }
                let want = last.map_or(0, |at| at + 1);
                assert_eq!(trim_zeros(&page).len(), want, "last byte at {last:?}");
            }
        }
    }

    /// Rewrites every batch of `image` as an earlier build wrote it: blake3-summed.
    fn as_blake3_batches(image: &mut [u8]) {
        for at in batch_positions(image) {
            let head: [u8; BATCH_HEADER as usize] =
                image[at..at + BATCH_HEADER as usize].try_into().unwrap();
            let h = BatchHeader::parse(&head).unwrap();
            let start = at + BATCH_HEADER as usize;
            let payload = image[start..start + h.payload_len as usize].to_vec();
            image[at..at + 8].copy_from_slice(&BATCH_MAGIC_BLAKE3);
            let sum = checksum(&image[at..at + BATCH_SUMMED], &payload);
            image[at + BATCH_SUMMED..at + BATCH_HEADER as usize].copy_from_slice(&sum);
        }
    }

    #[test]
    fn batches_summed_with_blake3_by_earlier_builds_are_replayed() {
        let (mut image, want) = three_commits();
        as_blake3_batches(&mut image);
        let j = journal(&Mem::from_image(image.clone()), MIN_REGION);
        same(&contents(&j), &want, "blake3 batches");
        // Their damage is still told apart: a torn last one is dropped.
        let at = batch_positions(&image).last().copied().unwrap();
        image[at + 60] ^= 0xFF;
        let j = journal(&Mem::from_image(image), MIN_REGION);
        same(
            &contents(&j),
            &want[..2 * PAGE as usize],
            "a torn blake3 batch",
        );
    }

    #[test]
    fn a_damaged_batch_before_an_intact_one_refuses_the_open() {
        let (mut image, _) = three_commits();
        let at = batch_positions(&image)[1];
        image[at + 60] ^= 0xFF;
        let j = journal(&Mem::from_image(image), MIN_REGION);
        let err = j.len().unwrap_err();
        assert!(
            matches!(JournalError::of(&err), Some(JournalError::Damaged(_))),
            "{err:?}"
        );
    }

    #[test]
    fn a_damaged_header_refuses_the_open_and_foreign_files_are_left_alone() {
        let (mut image, want) = three_commits();
        // One damaged copy: the other one opens the store, with every commit.
        for at in [20, HEADER_COPY + 20] {
            let mut one = image.clone();
            one[at] ^= 1;
            let j = journal(&Mem::from_image(one), MIN_REGION);
            same(&contents(&j), &want, "opened through the other header copy");
        }
        image[20] ^= 1;
        image[HEADER_COPY + 20] ^= 1;
        let err = journal(&Mem::from_image(image), MIN_REGION)
            .len()
            .unwrap_err();
        assert!(matches!(
            JournalError::of(&err),
            Some(JournalError::Damaged(_))
        ));
        for (junk, plain) in [
            (b"redb\x1a\n\xa9\r".to_vec(), true),
            (vec![7u8; 9000], false),
        ] {
            let mem = Mem::from_image(junk.clone());
            let err = journal(&mem, MIN_REGION).len().unwrap_err();
            let e = JournalError::of(&err);
            if plain {
                assert!(matches!(e, Some(JournalError::PlainRedb)), "{err:?}");
            } else {
                assert!(matches!(e, Some(JournalError::Foreign(_))), "{err:?}");
            }
            assert_eq!(
                mem.written_image(),
                junk,
                "nothing written to a foreign file"
            );
        }
    }

    #[test]
    fn of_two_intact_header_copies_the_later_generation_counts() {
        let at = |generation| Header {
            region: MIN_REGION,
            generation,
            creating: false,
        };
        let (old, new) = (header_page(&at(5)), header_page(&at(6)));
        // A header write torn between its sectors leaves one copy of each.
        let mut torn = old.clone();
        torn[..HEADER].copy_from_slice(&new[..HEADER]);
        assert_eq!(read_header(&torn).unwrap(), at(6));
        let mut torn = new.clone();
        torn[..HEADER].copy_from_slice(&old[..HEADER]);
        assert_eq!(read_header(&torn).unwrap(), at(6));
        // A header of before the second copy: the first alone.
        let mut single = old.clone();
        single[HEADER_COPY..].fill(0);
        assert_eq!(read_header(&single).unwrap(), at(5));
    }

    #[test]
    fn a_creation_cut_off_before_its_header_was_durable_starts_over() {
        // Only the region's length reached the disk: the storage is all zeros.
        let mem = Mem::from_image(vec![0u8; MIN_REGION as usize]);
        let j = journal(&mem, MIN_REGION * 2);
        assert_eq!(j.len().unwrap(), 0);
        j.write(0, &[9u8; 100]).unwrap();
        j.sync_data().unwrap();
        let reopened = journal(&Mem::from_image(mem.durable_image()), MIN_REGION);
        same(&contents(&reopened), &[9u8; 100], "reopened");
        // A header never appears without its region: a short file with a header is damaged.
        let mut short = mem.durable_image();
        short.truncate(PAGE as usize * 2);
        let err = journal(&Mem::from_image(short), MIN_REGION)
            .len()
            .unwrap_err();
        assert!(matches!(
            JournalError::of(&err),
            Some(JournalError::Damaged(_))
        ));
    }

    #[test]
    fn small_commits_append_to_the_journal_and_leave_the_database_pages_alone() {
        let mem = Mem::new();
        let j = journal(&mem, MIN_REGION * 4);
        j.set_len(8 * PAGE).unwrap();
        j.sync_data().unwrap();
        let region = (MIN_REGION * 4) as usize;
        let before = mem.durable_image()[region..].to_vec();
        for i in 0..5u8 {
            j.write(PAGE, &[i + 1; 100]).unwrap();
            j.sync_data().unwrap();
        }
        let durable = mem.durable_image();
        same(&durable[region..], &before, "database pages untouched");
        assert_eq!(batch_positions(&durable).len(), 5);
        // Trailing zeros are not stored: five batches of one 100-byte page fit in five pages.
        assert_eq!(batch_positions(&durable)[4], 5 * PAGE as usize);
        JournalControl::checkpoint(&j).unwrap();
        let durable = mem.durable_image();
        assert_eq!(durable[region + PAGE as usize..][..100], [5u8; 100]);
        let reopened = journal(&Mem::from_image(durable), MIN_REGION);
        same(
            &contents(&reopened),
            &contents(&j),
            "reopened after a checkpoint",
        );
    }
}
