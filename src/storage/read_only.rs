//! A store file opened for reading only: reads come from the file, and whatever the open
//! itself writes (the journal's replay after a crash, the engine's repair of its allocator
//! state) stays in memory. The file is never written, so a store that refuses to open normally
//! can be looked at, and a running store's file can be read by a second process without
//! touching it... once the writer has closed it: a shared lock on the file keeps a read-only
//! open and a writer apart.

use super::backend::Backend;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::io;

const PAGE: u64 = 4096;

/// The file, with writes held in memory by 4 KiB page.
#[derive(Debug)]
pub(crate) struct ReadOnlyFile {
    file: std::fs::File,
    st: RwLock<Overlay>,
}

#[derive(Debug)]
struct Overlay {
    /// The length as written through this backend.
    len: u64,
    /// Bytes of the file at or past this offset read as zeros: what a shortening cut off is
    /// gone, even if the storage grows again.
    file_end: u64,
    pages: HashMap<u64, Box<[u8]>>,
}

impl ReadOnlyFile {
    /// Opens `path` for reading, with a shared lock: `Error::AlreadyOpen`-style refusal (an
    /// `io::ErrorKind::WouldBlock` error) while a writer holds the file.
    pub(crate) fn open(path: &std::path::Path) -> io::Result<ReadOnlyFile> {
        let file = std::fs::File::open(path)?;
        lock_shared(&file)?;
        let len = file.metadata()?.len();
        Ok(ReadOnlyFile {
            file,
            st: RwLock::new(Overlay {
                len,
                file_end: len,
                pages: HashMap::new(),
            }),
        })
    }

    /// Reads file bytes (zeros past `file_end`) into `out`.
    fn read_file(&self, file_end: u64, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let have = file_end.saturating_sub(offset).min(out.len() as u64) as usize;
        if have > 0 {
            read_exact_at(&self.file, &mut out[..have], offset)?;
        }
        out[have..].fill(0);
        Ok(())
    }
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, out: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, out, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut out: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !out.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, out, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                out = &mut out[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn lock_shared(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor belongs to `file`, open for the whole call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn lock_shared(_file: &std::fs::File) -> io::Result<()> {
    Ok(())
}

impl Backend for ReadOnlyFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.st.read().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let st = self.st.read();
        let end = offset + out.len() as u64;
        if end > st.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        let mut at = offset;
        while at < end {
            let page = at / PAGE;
            let in_page = (at % PAGE) as usize;
            let n = (PAGE - at % PAGE).min(end - at) as usize;
            let dst = &mut out[(at - offset) as usize..][..n];
            match st.pages.get(&page) {
                Some(buf) => dst.copy_from_slice(&buf[in_page..in_page + n]),
                None => self.read_file(st.file_end, at, dst)?,
            }
            at += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.st.write();
        if len < st.len {
            st.file_end = st.file_end.min(len);
            let keep = len.div_ceil(PAGE);
            st.pages.retain(|&p, _| p < keep);
            if let Some(buf) = st.pages.get_mut(&(len / PAGE)) {
                buf[(len % PAGE) as usize..].fill(0);
            }
        }
        st.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.st.write();
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let page = at / PAGE;
            let in_page = (at % PAGE) as usize;
            let n = (PAGE - at % PAGE).min(end - at) as usize;
            if !st.pages.contains_key(&page) {
                let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
                self.read_file(st.file_end, page * PAGE, &mut buf)?;
                st.pages.insert(page, buf);
            }
            if let Some(buf) = st.pages.get_mut(&page) {
                buf[in_page..in_page + n].copy_from_slice(&data[(at - offset) as usize..][..n]);
            }
            at += n as u64;
        }
        st.len = st.len.max(end);
        Ok(())
    }
}
