//! Turning a byte stream into chunks, with size limits enforced while reading.

use super::{
    ContentDigest, Digests, FileRow, Hash, Written, register_file, release_chunk, store_chunk,
};
use crate::error::{Error, Result, SizeLimit};
use crate::ids::{BucketId, FileId, Timestamp};
use crate::storage::WTables;
use std::io::Read;

/// What a stream may contain: an exact declared size and/or a byte cap from the bucket.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamLimits {
    pub declared: Option<u64>,
    pub cap: Option<Cap>,
}

/// The smallest bucket limit that applies to an upload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cap {
    pub bucket: BucketId,
    pub kind: SizeLimit,
    pub bytes: u64,
}

impl StreamLimits {
    /// Checks the running total; called after every read so a stream is cut off at the first
    /// byte over a limit rather than stored and then refused.
    pub(crate) fn check_running(&self, total: u64) -> Result<()> {
        if let Some(d) = self.declared
            && total > d
        {
            return Err(Error::UnexpectedFileSize {
                expected: d,
                actual: total,
            });
        }
        if let Some(c) = self.cap
            && total > c.bytes
        {
            return Err(Error::FileSize {
                bucket: c.bucket,
                limit: c.kind,
                limit_bytes: c.bytes,
                attempted: total,
            });
        }
        Ok(())
    }

    pub(crate) fn check_end(&self, total: u64) -> Result<()> {
        match self.declared {
            Some(d) if total != d => Err(Error::UnexpectedFileSize {
                expected: d,
                actual: total,
            }),
            _ => Ok(()),
        }
    }
}

/// Reads a stream in chunk-sized pieces, enforcing the limits as it goes.
pub(crate) struct ChunkSource<'r> {
    reader: &'r mut dyn Read,
    limits: StreamLimits,
    chunk_size: usize,
    pub(crate) total: u64,
    done: bool,
}

impl<'r> ChunkSource<'r> {
    pub(crate) fn new(reader: &'r mut dyn Read, limits: StreamLimits, chunk_size: usize) -> Self {
        ChunkSource {
            reader,
            limits,
            chunk_size,
            total: 0,
            done: false,
        }
    }

    /// Fills `buf` with the next chunk (up to `chunk_size` bytes). Returns false at the end of
    /// the stream, after checking the declared size.
    pub(crate) fn next_chunk(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        if self.done {
            buf.clear();
            return Ok(false);
        }
        // Never read more than one byte past what the limits allow, so a huge stream over a
        // small quota is refused after reading little of it.
        let mut want = self.chunk_size as u64;
        if let Some(d) = self.limits.declared {
            want = want.min(d.saturating_sub(self.total).saturating_add(1));
        }
        if let Some(c) = self.limits.cap {
            want = want.min(c.bytes.saturating_sub(self.total).saturating_add(1));
        }
        let want_len = want as usize;
        // A reused buffer has its bytes initialised already: read straight into them. A fresh
        // one starts small and doubles as the stream proves longer, so a 1 KiB file neither
        // zeroes a whole chunk (which once dominated small puts) nor grows byte by byte.
        if buf.len() < want_len {
            buf.resize(want_len.min(FIRST_READ).max(buf.len()), 0);
        }
        let mut filled = 0;
        loop {
            let room = buf.len().min(want_len);
            if filled == room {
                if room >= want_len {
                    break;
                }
                buf.resize((room * 2).min(want_len), 0);
                continue;
            }
            match Clamped(&mut *self.reader).read(&mut buf[filled..room]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(Error::UploadStream { source }),
            }
        }
        buf.truncate(filled);
        self.total += filled as u64;
        self.limits.check_running(self.total)?;
        if filled < want as usize {
            self.done = true;
            self.limits.check_end(self.total)?;
        }
        Ok(!buf.is_empty() || !self.done)
    }
}

/// The size of a fresh buffer's first read: a small file fits at once, and a large stream's
/// buffer doubles from there.
const FIRST_READ: usize = 4 * 1024;

/// A reader that cannot claim more bytes than it was given room for: std's `read_to_end`
/// panics on such a (broken) reader, and no input may make the engine panic.
pub(crate) struct Clamped<'a>(pub(crate) &'a mut dyn Read);

impl Read for Clamped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        Ok(n.min(buf.len()))
    }
}

/// Writes a whole stream inside the current transaction and registers it as a file (or finds
/// the identical file already stored). Content that fits in one chunk is stored inline; longer
/// content as chunks. `check` sees the content's digests before anything is registered. The
/// returned row counts the caller's reference (see [`register_file`]).
///
/// A stream that fails (or is refused by `check`) leaves nothing behind: the chunks it wrote
/// are given back before the error is returned, so a caller that catches the error and goes
/// on to commit the transaction commits no trace of it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_stream(
    t: &mut WTables<'_>,
    chunk_size: usize,
    with_md5: bool,
    reader: &mut dyn Read,
    limits: StreamLimits,
    check: &dyn Fn(&ContentDigest) -> Result<()>,
    storage_class: &str,
    now: Timestamp,
) -> Result<(FileId, FileRow)> {
    let mut src = ChunkSource::new(reader, limits, chunk_size);
    let mut digests = Digests::new(with_md5);
    let mut chunks: Vec<(u64, Hash)> = Vec::new();
    // The first piece is held back until the stream shows whether another follows: alone, it
    // is stored inline. Buffers grow to the content's size rather than a chunk up front.
    let mut first: Vec<u8> = Vec::new();
    let mut buf = Vec::new();
    let streamed = (|| -> Result<ContentDigest> {
        while src.next_chunk(&mut buf)? {
            if buf.is_empty() {
                continue;
            }
            digests.update(&buf);
            let at = src.total - buf.len() as u64;
            if at == 0 {
                std::mem::swap(&mut first, &mut buf);
            } else {
                if chunks.is_empty() {
                    store_piece(t, &first, 0, &mut chunks)?;
                }
                store_piece(t, &buf, at, &mut chunks)?;
            }
        }
        let digest = digests.finish();
        check(&digest)?;
        Ok(digest)
    })();
    let digest = match streamed {
        Ok(digest) => digest,
        Err(e) => {
            for (_, h) in &chunks {
                release_chunk(t, h)?;
            }
            return Err(e);
        }
    };
    let size = src.total;
    let content = if chunks.is_empty() && !first.is_empty() {
        Written::Inline(&first)
    } else {
        Written::Chunks(&chunks)
    };
    register_file(
        t,
        size,
        digest,
        chunk_size as u32,
        content,
        storage_class,
        now,
    )
}

fn store_piece(
    t: &mut WTables<'_>,
    bytes: &[u8],
    offset: u64,
    chunks: &mut Vec<(u64, Hash)>,
) -> Result<()> {
    let h = *blake3::hash(bytes).as_bytes();
    store_chunk(t, &h, bytes)?;
    chunks.push((offset, h));
    Ok(())
}
