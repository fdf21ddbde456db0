//! Test machinery, behind the `testing` feature: a store file on disk as a plain [`Backend`], a
//! disk in memory that knows what each sync made durable (crash tests), and a fault-injecting
//! wrapper that proves a failed write, read or sync loses nothing committed. Applications may
//! use them for crash tests of their own; they are not part of the store itself.

use super::backend::Backend;
use redb::StorageBackend;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A store file on disk.
#[derive(Debug)]
pub struct FileBackend(redb::backends::FileBackend);

impl FileBackend {
    /// Opens (creating if missing) the file at `path` for reading and writing.
    pub fn open(path: impl AsRef<std::path::Path>) -> io::Result<FileBackend> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        redb::backends::FileBackend::new(file)
            .map(FileBackend)
            .map_err(io::Error::other)
    }
}

impl Backend for FileBackend {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
}

/// A disk in memory that knows which bytes a sync made durable, for crash tests: a store on it
/// can be "crashed" by opening a new store on [`SimulatedDisk::durable_image`] (a power cut:
/// only what was synced survives) or on [`SimulatedDisk::written_image`] (a killed process:
/// every completed write survives). Clones share the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimulatedDisk(Arc<parking_lot::Mutex<DiskImages>>);

#[derive(Debug, Default)]
struct DiskImages {
    written: Vec<u8>,
    durable: Vec<u8>,
    /// The byte ranges of `written` changed since the last sync, in the order they were
    /// changed; `None` when there were too many to note, and the next sync copies everything.
    /// Every byte of `written` outside these ranges lies within `durable` and equals it there,
    /// so a sync copies only these ranges (a store commits often; copying the whole image on
    /// each sync made the image's size, not the commit's, the cost of a durable commit).
    dirty: Option<Vec<(usize, usize)>>,
}

/// Most changed ranges noted between two syncs before a sync copies the whole image instead.
const MAX_DIRTY_RANGES: usize = 1024;

impl DiskImages {
    /// Notes that `written[from..to]` changed.
    fn touch(&mut self, from: usize, to: usize) {
        let Some(ranges) = &mut self.dirty else {
            return;
        };
        if let Some(last) = ranges.last_mut()
            && last.1 == from
        {
            // Pages are often written one after the other.
            last.1 = to;
        } else if ranges.len() < MAX_DIRTY_RANGES {
            ranges.push((from, to));
        } else {
            self.dirty = None;
        }
    }

    /// Makes every byte written so far durable.
    fn sync(&mut self) {
        match self.dirty.replace(Vec::new()) {
            None => self.durable.clone_from(&self.written),
            Some(ranges) => {
                self.durable.resize(self.written.len(), 0);
                let len = self.written.len();
                for (from, to) in ranges {
                    let (from, to) = (from.min(len), to.min(len));
                    self.durable[from..to].copy_from_slice(&self.written[from..to]);
                }
            }
        }
    }
}

impl SimulatedDisk {
    /// An empty disk.
    pub fn new() -> SimulatedDisk {
        SimulatedDisk::from_image(Vec::new())
    }

    /// A disk holding `image`, all of it durable.
    pub fn from_image(image: Vec<u8>) -> SimulatedDisk {
        SimulatedDisk(Arc::new(parking_lot::Mutex::new(DiskImages {
            written: image.clone(),
            durable: image,
            dirty: Some(Vec::new()),
        })))
    }

    /// The bytes the last sync made durable.
    pub fn durable_image(&self) -> Vec<u8> {
        self.0.lock().durable.clone()
    }

    /// Every byte written so far, synced or not.
    pub fn written_image(&self) -> Vec<u8> {
        self.0.lock().written.clone()
    }

    /// Both images at one instant: `(durable, written)`. A partial writeback (some unsynced
    /// pages on top of the synced bytes) must be built from such a pair: images taken one
    /// after the other while another thread writes can straddle a sync, and mixing them can
    /// give a state no crash could leave.
    pub fn images(&self) -> (Vec<u8>, Vec<u8>) {
        let d = self.0.lock();
        (d.durable.clone(), d.written.clone())
    }
}

impl Backend for SimulatedDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().written.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let d = self.0.lock();
        let src = usize::try_from(offset)
            .ok()
            .and_then(|at| d.written.get(at..at.checked_add(out.len())?))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let mut d = self.0.lock();
        let old = d.written.len();
        d.written.resize(len, 0);
        if len > old {
            d.touch(old, len);
        }
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.lock().sync();
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let at = usize::try_from(offset).map_err(io::Error::other)?;
        let end = at
            .checked_add(data.len())
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        let mut d = self.0.lock();
        let old = d.written.len();
        if old < end {
            d.written.resize(end, 0);
            // The zeros between the old end and `at` are new bytes too.
            d.touch(old, end);
        }
        d.written[at..end].copy_from_slice(data);
        d.touch(at, end);
        Ok(())
    }
}

/// Which operations a [`FaultPlan`] may fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `read`
    Read,
    /// `write` and `set_len`
    Write,
    /// `sync_data`
    Sync,
}

/// Shared control of a [`FaultyBackend`]: once armed, the n-th matching operation fails, and so
/// does every operation after it (a disk that has gone bad stays bad until the store is
/// reopened on a fresh backend). [`FaultPlan::arm_once`] fails that one operation only (a
/// transient error).
#[derive(Debug, Clone, Default)]
pub struct FaultPlan(Arc<FaultState>);

#[derive(Debug, Default)]
struct FaultState {
    armed: AtomicBool,
    kind: AtomicU64,
    countdown: AtomicU64,
    tripped: AtomicBool,
    once: AtomicBool,
    seen: AtomicU64,
}

impl FaultPlan {
    /// A disarmed plan.
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// Fails the operation of `kind` that comes after `after` successful ones of that kind.
    pub fn arm(&self, kind: FaultKind, after: u64) {
        let s = &self.0;
        s.kind.store(kind as u64, Ordering::SeqCst);
        s.countdown.store(after, Ordering::SeqCst);
        s.tripped.store(false, Ordering::SeqCst);
        s.once.store(false, Ordering::SeqCst);
        s.armed.store(true, Ordering::SeqCst);
    }

    /// Like [`FaultPlan::arm`], but only that one operation fails; later ones succeed.
    pub fn arm_once(&self, kind: FaultKind, after: u64) {
        self.arm(kind, after);
        self.0.once.store(true, Ordering::SeqCst);
    }

    /// Stops injecting faults.
    pub fn disarm(&self) {
        self.0.armed.store(false, Ordering::SeqCst);
        self.0.tripped.store(false, Ordering::SeqCst);
    }

    /// Whether a fault has been injected since the plan was last armed.
    pub fn tripped(&self) -> bool {
        self.0.tripped.load(Ordering::SeqCst)
    }

    /// How many operations of each kind have passed through the backend in total.
    pub fn operations(&self) -> u64 {
        self.0.seen.load(Ordering::SeqCst)
    }

    fn check(&self, kind: FaultKind) -> io::Result<()> {
        let s = &self.0;
        s.seen.fetch_add(1, Ordering::Relaxed);
        if !s.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if s.tripped.load(Ordering::SeqCst) {
            if s.once.load(Ordering::SeqCst) {
                return Ok(());
            }
            return Err(io::Error::other("injected fault (disk already failed)"));
        }
        if s.kind.load(Ordering::SeqCst) != kind as u64 {
            return Ok(());
        }
        let left = s.countdown.load(Ordering::SeqCst);
        if left == 0 {
            s.tripped.store(true, Ordering::SeqCst);
            return Err(io::Error::other(format!("injected {kind:?} fault")));
        }
        s.countdown.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

/// A backend wrapper that fails operations as its [`FaultPlan`] says.
#[derive(Debug)]
pub struct FaultyBackend<B: Backend> {
    inner: B,
    plan: FaultPlan,
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner`; `plan` controls the faults.
    pub fn new(inner: B, plan: FaultPlan) -> Self {
        FaultyBackend { inner, plan }
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.plan.check(FaultKind::Read)?;
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.plan.check(FaultKind::Write)?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.plan.check(FaultKind::Sync)?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.plan.check(FaultKind::Write)?;
        self.inner.write(offset, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulated disk's durable image after each sync equals every byte written before it,
    /// whatever mix of writes (overlapping, past the end, leaving gaps) and length changes came
    /// first, including more changes than it notes one by one; between syncs it stays as the
    /// last sync left it.
    #[test]
    fn sync_makes_exactly_the_written_bytes_durable() {
        let disk = SimulatedDisk::new();
        // The plain model: a full copy at each sync.
        let (mut written, mut durable) = (Vec::<u8>::new(), Vec::<u8>::new());
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..20_000u32 {
            match next(10) {
                0 => {
                    let len = next(9000) as usize;
                    disk.set_len(len as u64).unwrap();
                    written.resize(len, 0);
                }
                1 => {
                    disk.sync_data().unwrap();
                    durable.clone_from(&written);
                }
                _ => {
                    let at = next(8000) as usize;
                    let data = vec![step as u8 | 1; next(300) as usize];
                    disk.write(at as u64, &data).unwrap();
                    if written.len() < at + data.len() {
                        written.resize(at + data.len(), 0);
                    }
                    written[at..at + data.len()].copy_from_slice(&data);
                }
            }
            let (d, w) = disk.images();
            assert_eq!(w, written, "written image after step {step}");
            assert_eq!(d, durable, "durable image after step {step}");
        }
        // More changes than are noted one by one.
        disk.set_len(8000).unwrap();
        written.resize(8000, 0);
        for i in 0..3 * MAX_DIRTY_RANGES {
            let at = (i * 7) % 8000;
            disk.write(at as u64, &[i as u8]).unwrap();
            written[at] = i as u8;
        }
        disk.sync_data().unwrap();
        assert_eq!(disk.durable_image(), written);
    }
}
