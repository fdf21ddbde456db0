//! Bytes between the async edge and the synchronous engine: a request body read as
//! `std::io::Read` on a blocking thread, and a file streamed out as a response body.

use axum::body::{Body, HttpBody};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

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
///
/// (Polling the body straight from the blocking thread, through the runtime's handle, was
/// measured slower for 1 KiB uploads at 8 clients: 5-18% fewer per second, 4-5% more CPU
/// each; the task reads ahead while the thread works.)
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
        BodyReader::from_channel(rx)
    }

    fn from_channel(rx: mpsc::Receiver<io::Result<Bytes>>) -> BodyReader {
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

/// The leading text fields of a `multipart/form-data` body, and its `file` field as a reader.
pub(crate) struct Form {
    /// The fields before the file (ng-file-upload sends `_totalSize`, `_chunkNumber`, ...
    /// there), by name; a repeated name keeps its last value.
    pub fields: BTreeMap<String, String>,
    /// The bytes of the field named `file`, or `None` when the form has no such field.
    pub file: Option<BodyReader>,
}

/// Longest text field read before the file, and how many of them: ng-file-upload's fields
/// are short numbers; anything bigger is not a form this API understands.
const FORM_FIELD_MAX: usize = 4096;
const FORM_FIELDS_MAX: usize = 64;

/// Why a form could not be read up to its file.
#[derive(Debug)]
pub(crate) enum FormError {
    /// The body is not a well-formed multipart body (or it ended early).
    Malformed(String),
    /// A text field before the file is longer than [`FORM_FIELD_MAX`], there are more than
    /// [`FORM_FIELDS_MAX`] of them, or everything before the file is over [`FORM_HEAD_MAX`].
    TooLarge,
}

/// Bytes a form may send before its file starts (its preamble, the fields, the part
/// headers). The parser keeps what it has not matched yet, so without a cap a part header
/// that never ends would grow its buffer as long as the client sends. Hyper hands the parser
/// one read (at most a few hundred KiB) per poll, so a well-formed form whose file starts in
/// the first reads stays far below it.
const FORM_HEAD_MAX: u64 = 1 << 20;

/// Whether a form's head is over: set once the file field is reached (`lifted`), or when the
/// head went past [`FORM_HEAD_MAX`] (`tripped`).
#[derive(Default)]
struct HeadCap {
    lifted: AtomicBool,
    tripped: AtomicBool,
}

/// A form's body, which fails once more than [`FORM_HEAD_MAX`] bytes have passed before the
/// cap is lifted.
struct CappedHead {
    body: Body,
    seen: u64,
    cap: Arc<HeadCap>,
}

impl HttpBody for CappedHead {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        let frame = match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(io::Error::other(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            self.seen += data.len() as u64;
            if self.seen > FORM_HEAD_MAX && !self.cap.lifted.load(Ordering::Relaxed) {
                self.cap.tripped.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(io::Error::other("the form's head is too large"))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

/// Reads a `multipart/form-data` body with this boundary up to its `file` field, then streams
/// that field's bytes as a reader, like a plain body (a body that ends inside the file is an
/// `io::Error`). Nothing is buffered but the short text fields before the file; fields after
/// it are not read. Must be called inside the runtime.
pub(crate) async fn read_form(body: Body, boundary: String) -> Result<Form, FormError> {
    let (head_tx, head_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel(QUEUE);
    // One task owns the parser: a field borrows it, so the fields and the file's bytes are
    // read in the same place; the fields go back first, then the file's chunks.
    let head = Arc::new(HeadCap::default());
    let capped = Body::new(CappedHead {
        body,
        seen: 0,
        cap: head.clone(),
    });
    tokio::spawn(async move {
        let mut form = multer::Multipart::new(capped.into_data_stream(), boundary);
        let mut fields = BTreeMap::new();
        let mut count = 0;
        let failed = |e: multer::Error| {
            if head.tripped.load(Ordering::Relaxed) {
                FormError::TooLarge
            } else {
                FormError::Malformed(e.to_string())
            }
        };
        loop {
            let mut field = match form.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => {
                    let _ = head_tx.send(Ok((fields, false)));
                    return;
                }
                Err(e) => {
                    let _ = head_tx.send(Err(failed(e)));
                    return;
                }
            };
            if field.name() == Some("file") {
                head.lifted.store(true, Ordering::Relaxed);
                if head_tx.send(Ok((fields, true))).is_err() {
                    return;
                }
                loop {
                    let item = match field.chunk().await {
                        Ok(None) => return,
                        Ok(Some(b)) if b.is_empty() => continue,
                        Ok(Some(b)) => Ok(b),
                        Err(e) => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("form upload: {e}"),
                        )),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            }
            let name = field.name().unwrap_or("").to_string();
            let mut text = Vec::new();
            loop {
                match field.chunk().await {
                    Ok(None) => break,
                    Ok(Some(b)) if text.len() + b.len() <= FORM_FIELD_MAX => {
                        text.extend_from_slice(&b)
                    }
                    Ok(Some(_)) => {
                        let _ = head_tx.send(Err(FormError::TooLarge));
                        return;
                    }
                    Err(e) => {
                        let _ = head_tx.send(Err(failed(e)));
                        return;
                    }
                }
            }
            fields.insert(name, String::from_utf8_lossy(&text).into_owned());
            count += 1;
            if count > FORM_FIELDS_MAX {
                let _ = head_tx.send(Err(FormError::TooLarge));
                return;
            }
        }
    });
    let (fields, has_file) = head_rx
        .await
        .map_err(|_| FormError::Malformed("the form reader stopped".into()))??;
    Ok(Form {
        fields,
        file: has_file.then(|| BodyReader::from_channel(rx)),
    })
}

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
