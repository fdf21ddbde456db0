//! The object-store content backend (the `s3` feature): [`super::ContentBackend`] over the
//! `object_store` crate, so S3 and anything that speaks its protocol (Garage, MinIO, Ceph)
//! can hold a location's content, and with them any other store that crate supports.

use super::remote::{ContentBackend, ContentUpload};
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

/// Parts of a streamed upload: S3 needs at least 5 MiB for every part but the last.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once (memory: about this many parts).
const PARTS_IN_FLIGHT: usize = 4;

/// How to reach an S3-compatible service, for [`ObjectStoreBackend::s3`]. Anything left
/// `None` is taken from the environment (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, as the `object_store` crate reads them).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// The service's URL, e.g. `http://127.0.0.1:3900` for a local Garage.
    pub endpoint: Option<String>,
    /// The region the service expects (Garage: its `s3_region`, often `garage`).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
}

/// Content kept in an `object_store` store (an S3 bucket, for locations with an `s3://` URI),
/// under a key prefix. Requests run on a small runtime of the backend's own, so the store's
/// blocking API may be called from any thread, inside an async runtime or not.
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ObjectStoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreBackend")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ObjectStoreBackend {
    /// A backend over any `object_store` store, with keys under `prefix` (no leading or
    /// trailing slash; empty for the store's root).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> io::Result<ObjectStoreBackend> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("recfiles-content")
            .enable_all()
            .build()?;
        Ok(ObjectStoreBackend {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            runtime,
        })
    }

    /// A backend for `s3://bucket/prefix`, configured by `settings` and, for what they leave
    /// out, the environment.
    pub fn s3(uri: &str, settings: &S3Settings) -> io::Result<ObjectStoreBackend> {
        let (bucket, prefix) = parse_s3_uri(uri)?;
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(e) = &settings.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = &settings.region {
            b = b.with_region(r);
        }
        if let Some(k) = &settings.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &settings.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let store = b.build().map_err(io::Error::other)?;
        ObjectStoreBackend::new(Arc::new(store), prefix)
    }

    fn path(&self, key: &str) -> Path {
        match self.prefix.is_empty() {
            true => Path::from(key),
            false => Path::from(format!("{}/{key}", self.prefix)),
        }
    }

    /// Runs `fut` on the backend's runtime and waits for it on this thread.
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .expect("a task of the content backend's runtime ended without an answer")
    }
}

/// `s3://bucket/prefix` → (bucket, prefix).
fn parse_s3_uri(uri: &str) -> io::Result<(&str, &str)> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{uri:?} is not s3://…"),
        )
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{uri:?} names no bucket"),
        ));
    }
    Ok((bucket, prefix))
}

/// The backend of an `s3://` location without one given to the builder: configured from the
/// environment alone.
pub(crate) fn backend_from_uri(uri: &str) -> io::Result<Arc<dyn ContentBackend>> {
    Ok(Arc::new(ObjectStoreBackend::s3(
        uri,
        &S3Settings::default(),
    )?))
}

impl ContentBackend for ObjectStoreBackend {
    fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        let (store, path) = (Arc::clone(&self.store), self.path(key));
        self.run(async move { store.put(&path, bytes.into()).await })?;
        Ok(())
    }

    fn start_upload(&self, key: &str) -> io::Result<Box<dyn ContentUpload>> {
        let (store, path) = (Arc::clone(&self.store), self.path(key));
        let upload = self.run(async move { store.put_multipart(&path).await })?;
        Ok(Box::new(Upload {
            writer: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
            handle: self.runtime.handle().clone(),
        }))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> io::Result<Vec<u8>> {
        let (store, path) = (Arc::clone(&self.store), self.path(key));
        let bytes = self.run(async move { store.get_range(&path, range).await })?;
        // The response's buffer becomes the vector without a copy when nothing else holds it.
        Ok(Vec::from(bytes))
    }

    fn size(&self, key: &str) -> io::Result<Option<u64>> {
        let (store, path) = (Arc::clone(&self.store), self.path(key));
        match self.run(async move { store.head(&path).await }) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        let (store, from, to) = (Arc::clone(&self.store), self.path(from), self.path(to));
        self.run(async move { store.copy(&from, &to).await })?;
        Ok(())
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        let (store, path) = (Arc::clone(&self.store), self.path(key));
        match self.run(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<(String, SystemTime)>> {
        let store = Arc::clone(&self.store);
        let root = self.path("");
        let under = self.path(prefix.trim_end_matches('/'));
        let listed = self.run(async move {
            store
                .list(Some(&under))
                .map_ok(|m| (m.location, m.last_modified))
                .try_collect::<Vec<_>>()
                .await
        })?;
        let root = root.as_ref().trim_end_matches('/');
        Ok(listed
            .into_iter()
            .map(|(path, modified)| {
                let full = path.as_ref();
                let key = match root.is_empty() {
                    true => full,
                    false => full
                        .strip_prefix(root)
                        .map_or(full, |k| k.trim_start_matches('/')),
                };
                (key.to_string(), SystemTime::from(modified))
            })
            .collect())
    }
}

/// A streamed upload: parts go out on the backend's runtime, a few at a time.
struct Upload {
    writer: Option<WriteMultipart>,
    handle: tokio::runtime::Handle,
}

impl Upload {
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .expect("a task of the content backend's runtime ended without an answer")
    }
}

impl ContentUpload for Upload {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("the upload failed before"))?;
        let bytes = bytes::Bytes::copy_from_slice(bytes);
        let (writer, waited) = self.run(async move {
            let waited = writer.wait_for_capacity(PARTS_IN_FLIGHT).await;
            if waited.is_ok() {
                writer.put(bytes);
            }
            (writer, waited)
        });
        match waited {
            Ok(()) => {
                self.writer = Some(writer);
                Ok(())
            }
            Err(e) => {
                // The upload is over: give it up on the server too.
                let _ = self.run(writer.abort());
                Err(e.into())
            }
        }
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("the upload failed before"))?;
        self.run(writer.finish())?;
        Ok(())
    }

    fn abort(mut self: Box<Self>) {
        if let Some(writer) = self.writer.take() {
            let _ = self.run(writer.abort());
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = self.run(writer.abort());
        }
    }
}
