//! Bytes between the async edge and the synchronous engine: a request body read as
//! `std::io::Read` on a blocking thread, and a file streamed out as a response body.

use axum::body::Body;
use bytes::Bytes;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// How many body frames may wait between the network and the store, in each direction.
/// Frames are at most [`DOWNLOAD_CHUNK`] going out and hyper's read size coming in, so this
/// bounds a transfer's memory to a few hundred KiB whatever the file size.
const QUEUE: usize = 8;

/// Bytes read from the store per response frame.
pub(crate) const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// A request body as a blocking reader. An async task pulls frames from the connection and
/// hands them over a bounded channel; the reader blocks (on a blocking-pool thread) until the
/// next one arrives. A body that fails or ends before its `Content-Length` (a client that
/// disconnects or half-closes) is an `io::Error`, so the engine stores nothing.
pub(crate) struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BodyReader {
    /// Starts pulling `body`; must be called inside the runtime.
    pub(crate) fn new(mut body: Body) -> BodyReader {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            loop {
                let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
                let item = match frame {
                    None => break,
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => Ok(data),
                        Err(_) => continue, // trailers
                    },
                    Some(Err(e)) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("request body: {e}"),
                    )),
                };
                let failed = item.is_err();
                // A reader that stopped (the store refused the upload) closes the channel.
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        BodyReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

use axum::body::HttpBody;

/// A response body fed by a blocking task through a bounded channel, with its exact length.
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(http_body::Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// Streams `len` bytes from `offset` of `reader` as a response body: a blocking task reads
/// chunk after chunk and waits while the client is slower than the store. A read error ends
/// the body early (the client sees a truncated response); a client that goes away stops the
/// task.
pub(crate) fn stream_file(mut reader: crate::FileReader, offset: u64, len: u64) -> Body {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let want = (end - pos).min(DOWNLOAD_CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            let item = match reader.read_range_into(pos, &mut buf) {
                Ok(n) if n == want => Ok(Bytes::from(buf)),
                Ok(n) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ended at {} of {end} bytes", pos + n as u64),
                )),
                Err(e) => Err(io::Error::other(e.to_string())),
            };
            let failed = item.is_err();
            if let Err(e) = &item {
                tracing::error!("download of file {} failed: {e}", reader.file_id());
            }
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
            pos += want as u64;
        }
    });
    Body::new(ChannelBody { rx, remaining: len })
}
