//! Files-REST (spec §4): the location, bucket and object resources, and the same bucket and
//! object calls on a record's bucket (spec §6.7), plus the download view.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::body::{BodyReader, FormError, read_form};
use super::error::ApiError;
use super::json::{
    ObjectExtras, Query, bucket_json, empty_json, encode_key, json_response, multipart_json,
    negotiate, object_json, origin, part_json,
};
use super::records::pid_error;
use super::send::send_file;
use super::{AppState, blocking};
use crate::records_files::list_in_files;
use crate::{
    Bucket, BucketId, Error, FilesQuery, ListOptions, ObjectVersion, PartOptions, PutOptions,
    RECID, RecordId, RecordsQuery, UploadId, VersionId, WriteTx,
};

type St = State<Arc<AppState>>;

/// Where a Files-REST call lands: a bucket and the absolute URL its links start from; through
/// a record's URL, the record too, whose `_files` every change keeps true.
pub(crate) struct Target {
    bucket: Bucket,
    base: String,
    record: Option<RecordId>,
}

async fn bucket_target(st: &AppState, id: &str, headers: &HeaderMap) -> Result<Target, ApiError> {
    let id: BucketId = id.parse().map_err(|_| ApiError::not_found())?;
    let store = st.store.clone();
    // A malformed id is werkzeug's plain 404; a missing or deleted bucket is Invenio's own.
    let bucket = blocking(move || store.bucket(id))
        .await?
        .ok_or(Error::BucketNotFound { bucket: id })?;
    Ok(Target {
        bucket,
        base: format!("{}{}/files/{id}", origin(headers), st.api),
        record: None,
    })
}

async fn record_target(
    st: &AppState,
    pid: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Target, ApiError> {
    let store = st.store.clone();
    let value = pid.to_string();
    let found = blocking(move || {
        Ok((|| {
            let record = store.resolve_pid(RECID, &value)?;
            let bucket = match store.record_bucket(record.id())? {
                Some(b) => store.bucket(b)?,
                None => None,
            };
            Ok((record.id(), bucket))
        })())
    })
    .await?;
    let (record, bucket) = found.map_err(|e| pid_error(headers, uri, e))?;
    Ok(Target {
        // A record without a bucket has no files resource (Invenio: 404).
        bucket: bucket.ok_or_else(ApiError::not_found)?,
        base: format!(
            "{}{}/records/{}/files",
            origin(headers),
            st.api,
            encode_key(pid)
        ),
        record: Some(record),
    })
}

/// Where an upload goes: like [`Target`], without the bucket's row (a PUT to a bucket URL
/// needs no lookup first: the store refuses a missing or deleted bucket itself).
pub(crate) struct Dest {
    id: BucketId,
    base: String,
    record: Option<RecordId>,
}

impl From<Target> for Dest {
    fn from(t: Target) -> Dest {
        Dest {
            id: t.bucket.id,
            base: t.base,
            record: t.record,
        }
    }
}

fn bucket_dest(st: &AppState, id: &str, headers: &HeaderMap) -> Result<Dest, ApiError> {
    let id: BucketId = id.parse().map_err(|_| ApiError::not_found())?;
    Ok(Dest {
        id,
        base: format!("{}{}/files/{id}", origin(headers), st.api),
        record: None,
    })
}

fn not_found_object() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Object does not exists.")
}

fn not_found_upload() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "uploadId does not exists.")
}

fn extras_of(r: &impl FilesQuery, v: &ObjectVersion) -> crate::Result<ObjectExtras> {
    let checksum = match v.file_id {
        Some(f) => r.file(f)?.map(|fi| fi.md5.unwrap_or(fi.checksum)),
        None => None,
    };
    Ok(ObjectExtras {
        checksum,
        tags: r.object_tags(v.version_id)?,
    })
}

/// Listings stop at 1000 entries, as Invenio's do.
const LISTING_MAX: usize = 1000;

// ---- /files --------------------------------------------------------------------------------

/// `POST /files`: a bucket in the default location, or the server's configured one (200, as
/// Invenio; the body is ignored).
pub(crate) async fn create_bucket(State(st): St, req: Request) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    let store = st.store.clone();
    let opts = st.new_bucket();
    let b = blocking(move || store.create_bucket(&opts)).await?;
    let base = format!("{}{}/files/{}", origin(req.headers()), st.api, b.id);
    Ok(json_response(
        StatusCode::OK,
        &Value::Object(bucket_json(&b, &base)),
        q.pretty(),
    ))
}

// ---- buckets -------------------------------------------------------------------------------

/// `GET`/`HEAD /files/<bucket>`.
pub(crate) async fn get_bucket(
    State(st): St,
    Path(bucket): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = bucket_target(&st, &bucket, req.headers()).await?;
    bucket_listing(&st, t, req).await
}

/// `GET`/`HEAD /records/<pid>/files`.
pub(crate) async fn get_record_bucket(
    State(st): St,
    Path(pid): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = record_target(&st, &pid, req.headers(), req.uri()).await?;
    bucket_listing(&st, t, req).await
}

async fn bucket_listing(st: &AppState, t: Target, req: Request) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    if req.method() == Method::HEAD {
        return Ok(empty_json(StatusCode::OK));
    }
    let store = st.store.clone();
    let id = t.bucket.id;
    if q.has("uploads") {
        let uploads = blocking(move || store.read(|r| r.multipart_uploads(id))).await?;
        let list: Vec<Value> = uploads
            .iter()
            .take(LISTING_MAX)
            .map(|mp| Value::Object(multipart_json(mp, &t.base, true, None)))
            .collect();
        return Ok(json_response(
            StatusCode::OK,
            &Value::Array(list),
            q.pretty(),
        ));
    }
    let versions = q.has("versions");
    let with_deleted = versions && q.has("with_deleted");
    let items = blocking(move || {
        store.read(|r| {
            let list = if versions {
                let mut all = r.bucket_versions(id, with_deleted)?;
                all.truncate(LISTING_MAX);
                all
            } else {
                let opts = ListOptions {
                    limit: Some(LISTING_MAX),
                    ..ListOptions::default()
                };
                r.list_objects(id, &opts)?
            };
            list.into_iter()
                .map(|v| {
                    let extras = extras_of(r, &v)?;
                    Ok((v, extras))
                })
                .collect::<crate::Result<Vec<_>>>()
        })
    })
    .await?;
    let mut body = bucket_json(&t.bucket, &t.base);
    body.insert(
        "contents".into(),
        Value::Array(
            items
                .iter()
                .map(|(v, e)| object_json(v, e, &t.base))
                .collect(),
        ),
    );
    Ok(json_response(
        StatusCode::OK,
        &Value::Object(body),
        q.pretty(),
    ))
}

async fn json_body(req: Request) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|_| {
            ApiError::bad_request("The request body could not be read (at most 1 MiB).")
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}.")))
}

/// A limit in a PATCH body: absent (keep), `null` (no limit) or a non-negative integer.
fn limit_field(body: &Map<String, Value>, name: &str) -> Result<Option<Option<u64>>, ApiError> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v
            .as_u64()
            .map(|n| Some(Some(n)))
            .ok_or_else(|| ApiError::field(name, "Not a valid integer.")),
    }
}

/// `PATCH /files/<bucket>` (a recfiles extension): `locked`, `quota_size`, `max_file_size`.
pub(crate) async fn patch_bucket(
    State(st): St,
    Path(bucket): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    let t = bucket_target(&st, &bucket, req.headers()).await?;
    let body = json_body(req).await?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let locked = match body.get("locked") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::field("locked", "Not a valid boolean.")),
    };
    let quota = limit_field(&body, "quota_size")?;
    let max = limit_field(&body, "max_file_size")?;
    let store = st.store.clone();
    let id = t.bucket.id;
    let b = blocking(move || {
        store.write(|tx| {
            if quota.is_some() || max.is_some() {
                let cur = tx.bucket(id)?.ok_or(Error::BucketNotFound { bucket: id })?;
                tx.set_bucket_limits(
                    id,
                    quota.unwrap_or(cur.quota_size),
                    max.unwrap_or(cur.max_file_size),
                )?;
            }
            if let Some(l) = locked {
                tx.set_bucket_locked(id, l)?;
            }
            tx.bucket(id)?.ok_or(Error::BucketNotFound { bucket: id })
        })
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Object(bucket_json(&b, &t.base)),
        q.pretty(),
    ))
}

/// `DELETE /files/<bucket>` (a recfiles extension): a soft delete; the bucket then answers 404.
pub(crate) async fn delete_bucket(
    State(st): St,
    Path(bucket): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let t = bucket_target(&st, &bucket, req.headers()).await?;
    let store = st.store.clone();
    let id = t.bucket.id;
    if !blocking(move || store.delete_bucket(id)).await? {
        return Err(ApiError::not_found());
    }
    Ok(empty_json(StatusCode::NO_CONTENT))
}

// ---- objects -------------------------------------------------------------------------------

/// `GET`/`HEAD /files/<bucket>/<key>`.
pub(crate) async fn get_object(
    State(st): St,
    Path((bucket, key)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = bucket_target(&st, &bucket, req.headers()).await?;
    object_get(&st, t, key, req).await
}

/// `GET`/`HEAD /records/<pid>/files/<key>`.
pub(crate) async fn get_record_object(
    State(st): St,
    Path((pid, key)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = record_target(&st, &pid, req.headers(), req.uri()).await?;
    object_get(&st, t, key, req).await
}

/// `<ui>/records/<pid>/files/<filename>`: the record's file, inline or (`?download`) as an
/// attachment (Invenio-Records-Files' `file_download_ui`).
pub(crate) async fn download_view(
    State(st): St,
    Path((pid, filename)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = record_target(&st, &pid, req.headers(), req.uri()).await?;
    let q = Query::parse(req.uri().query());
    let (version, file) = find_file(&st, &t, filename, None).await?;
    send_file(
        &st,
        req.headers(),
        req.method() == Method::HEAD,
        &version,
        &file,
        q.has("download"),
    )
    .await
}

/// The head of `key`, or the version `vid` of it, with its file; delete markers are not found.
async fn find_file(
    st: &AppState,
    t: &Target,
    key: String,
    vid: Option<VersionId>,
) -> Result<(ObjectVersion, crate::FileInstance), ApiError> {
    let store = st.store.clone();
    let id = t.bucket.id;
    blocking(move || {
        store.read(|r| {
            let v = match vid {
                Some(vid) => r.version(vid)?.filter(|v| v.bucket == id && v.key == key),
                None => r.object(id, &key)?,
            };
            let not_found = || Error::ObjectNotFound {
                bucket: id,
                key: key.clone(),
            };
            let v = v.ok_or_else(not_found)?;
            let file = match v.file_id {
                Some(f) => r.file(f)?.ok_or_else(not_found)?,
                None => return Err(not_found()),
            };
            Ok((v, file))
        })
    })
    .await
}

async fn object_get(
    st: &AppState,
    t: Target,
    key: String,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    if q.has("uploads") {
        return Err(method_not_allowed());
    }
    if let Some(upload) = q.uuid::<UploadId>("uploadId")? {
        let store = st.store.clone();
        let id = t.bucket.id;
        let (mp, parts) = blocking(move || {
            store.read(|r| {
                let mp = r
                    .multipart(upload)?
                    .filter(|m| m.bucket == id && m.key == key)
                    .ok_or(Error::MultipartNotFound { upload })?;
                Ok((mp, r.parts(upload)?))
            })
        })
        .await?;
        let mut body = multipart_json(&mp, &t.base, false, None);
        body.insert(
            "parts".into(),
            Value::Array(parts.iter().take(LISTING_MAX).map(part_json).collect()),
        );
        return Ok(json_response(
            StatusCode::OK,
            &Value::Object(body),
            q.pretty(),
        ));
    }
    let vid = q.uuid::<VersionId>("versionId")?;
    let (version, file) = find_file(st, &t, key, vid).await?;
    send_file(
        st,
        req.headers(),
        req.method() == Method::HEAD,
        &version,
        &file,
        q.has("download"),
    )
    .await
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for the requested URL.",
    )
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `Content-MD5` as hex: RFC 1864's base64 of the digest, or 32 hex digits.
fn content_md5(h: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = h.get("content-md5") else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("").trim();
    let v = v.strip_prefix("md5:").unwrap_or(v);
    if v.len() == 32 && v.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Ok(Some(v.to_ascii_lowercase()));
    }
    match base64::engine::general_purpose::STANDARD.decode(v) {
        Ok(d) if d.len() == 16 => Ok(Some(d.iter().map(|b| format!("{b:02x}")).collect())),
        _ => Err(ApiError::bad_request(
            "Invalid Content-MD5 header: base64 or hex of a 16-byte digest expected.",
        )),
    }
}

/// Tags from the `X-Invenio-File-Tags` header (`k1=v1&k2=v2`; empty values dropped).
fn header_tags(h: &HeaderMap) -> Result<BTreeMap<String, String>, ApiError> {
    let mut tags = BTreeMap::new();
    let Some(v) = h.get("x-invenio-file-tags") else {
        return Ok(tags);
    };
    for (k, val) in form_urlencoded::parse(v.as_bytes()) {
        if val.is_empty() {
            continue;
        }
        let ok = |s: &str| (1..=crate::files::MAX_TAG_LEN).contains(&s.chars().count());
        if !ok(&k) || !ok(&val) {
            return Err(ApiError::bad_request(
                "Too long/short tag key or tag value.",
            ));
        }
        if tags.insert(k.into_owned(), val.into_owned()).is_some() {
            return Err(ApiError::bad_request("Duplicate tag key"));
        }
    }
    Ok(tags)
}

/// The boundary of a `multipart/form-data` body, `None` for any other body.
fn form_boundary(h: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(ct) = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let is_form = ct
        .get(..19)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/form-data"));
    if !is_form {
        return Ok(None);
    }
    multer::parse_boundary(ct)
        .map(Some)
        .map_err(|_| ApiError::bad_request(BAD_REQUEST))
}

fn form_error(e: FormError) -> ApiError {
    match e {
        FormError::Malformed(why) => {
            ApiError::bad_request(format!("The form upload could not be read: {why}."))
        }
        FormError::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form's fields and headers before the file are too large.",
        ),
    }
}

/// A single upload's options: its size (at least one byte, as Invenio's minimum file size)
/// and the md5 to check, if the client sent one.
fn upload_options(len: u64, md5: Option<String>) -> Result<PutOptions, ApiError> {
    if len == 0 {
        return Err(ApiError::bad_request("Empty files are not allowed."));
    }
    Ok(PutOptions {
        size: Some(len),
        md5,
        ..PutOptions::default()
    })
}

/// werkzeug's text for a request no upload factory could read.
const BAD_REQUEST: &str =
    "The browser (or proxy) sent a request that this server could not understand.";

/// `PUT /files/<bucket>/<key>`.
pub(crate) async fn put_object(
    State(st): St,
    Path((bucket, key)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let dest = bucket_dest(&st, &bucket, req.headers())?;
    object_put(&st, dest, key, req).await
}

/// `PUT /records/<pid>/files/<key>`.
pub(crate) async fn put_record_object(
    State(st): St,
    Path((pid, key)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = record_target(&st, &pid, req.headers(), req.uri()).await?;
    object_put(&st, t.into(), key, req).await
}

/// In a write transaction: the record's current revision, with `version` listed in `_files`.
fn keep_files_true(
    tx: &mut WriteTx<'_>,
    record: Option<RecordId>,
    version: &ObjectVersion,
) -> crate::Result<()> {
    if let Some(id) = record {
        let mut rec = tx.record(id)?.ok_or(Error::RecordNotFound { record: id })?;
        list_in_files(tx, &mut rec, version.clone())?;
    }
    Ok(())
}

async fn object_put(
    st: &AppState,
    t: Dest,
    key: String,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    if let Some(upload) = q.uuid::<UploadId>("uploadId")? {
        return part_put(st, t, key, upload, &q, req).await;
    }
    let headers = req.headers();
    let tags = header_tags(headers)?;
    let (reader, opts) = match form_boundary(headers)? {
        // ng-file-upload (spec §4.7): `_totalSize` is the file's size, the `file` field its
        // bytes; no Content-MD5 (the header would be the whole form's).
        Some(boundary) => {
            let form = read_form(req.into_body(), boundary)
                .await
                .map_err(form_error)?;
            let len = form
                .fields
                .get("_totalSize")
                .and_then(|v| v.trim().parse::<u64>().ok());
            let (Some(len), Some(file)) = (len, form.file) else {
                return Err(ApiError::bad_request(BAD_REQUEST));
            };
            (file, upload_options(len, None)?)
        }
        None => {
            let Some(len) = content_length(headers) else {
                return Err(ApiError::bad_request(BAD_REQUEST));
            };
            let md5 = content_md5(headers)?;
            let opts = upload_options(len, md5)?;
            (BodyReader::new(req.into_body()), opts)
        }
    };
    let store = st.store.clone();
    let (id, record) = (t.id, t.record);
    // The answer's md5 and tags are read in the put's own transaction.
    let (version, extras) = blocking(move || {
        store.put_object_then(id, &key, reader, &opts, |tx, v| {
            for (k, val) in &tags {
                tx.set_object_tag(v.version_id, k, val)?;
            }
            keep_files_true(tx, record, &v)?;
            let extras = extras_of(tx, &v)?;
            Ok((v, extras))
        })
    })
    .await?;
    let mut resp = json_response(
        StatusCode::OK,
        &object_json(&version, &extras, &t.base),
        q.pretty(),
    );
    if let Some(c) = &extras.checksum
        && let Ok(v) = format!("\"{c}\"").parse()
    {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn part_put(
    st: &AppState,
    t: Dest,
    key: String,
    upload: UploadId,
    q: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let no_part = || ApiError::bad_request("No upload part detected in request.");
    let int = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u64>().ok());
    // The part's number and length, its bytes and its md5: from the query and the headers, or
    // from ng-file-upload's form (`_chunkNumber`, `_currentChunkSize`, `file`; spec §4.7).
    let (n, len, reader, md5) = match form_boundary(req.headers())? {
        Some(boundary) => {
            let form = read_form(req.into_body(), boundary)
                .await
                .map_err(form_error)?;
            let n = int(form.fields.get("_chunkNumber").map(String::as_str));
            let len = int(form.fields.get("_currentChunkSize").map(String::as_str));
            let (Some(n), Some(len), Some(file)) = (n, len, form.file) else {
                return Err(no_part());
            };
            (n, len, file, None)
        }
        None => {
            let n = int(q.get("partNumber")).ok_or_else(no_part)?;
            let len = content_length(req.headers()).ok_or_else(no_part)?;
            let md5 = content_md5(req.headers())?;
            (n, len, BodyReader::new(req.into_body()), md5)
        }
    };
    // Below Invenio's minimum file size the part factories do not match.
    if len == 0 {
        return Err(no_part());
    }
    let store = st.store.clone();
    let id = t.id;
    let mp = blocking(move || {
        store.read(|r| {
            r.multipart(upload)?
                .filter(|m| m.bucket == id && m.key == key)
                .ok_or(Error::MultipartNotFound { upload })
        })
    })
    .await?;
    let last = mp.last_part_number();
    let n = match u32::try_from(n) {
        Ok(n) if n <= last => n,
        _ => {
            return Err(Error::MultipartInvalidPartNumber {
                part: u32::try_from(n).unwrap_or(u32::MAX),
                last,
            }
            .into());
        }
    };
    if len != mp.expected_part_size(n) {
        return Err(ApiError::bad_request("Invalid part size."));
    }
    let store = st.store.clone();
    let opts = PartOptions { md5 };
    let part = blocking(move || store.upload_part_with(upload, n, reader, &opts)).await?;
    let mut resp = json_response(StatusCode::OK, &part_json(&part), q.pretty());
    let etag = part.md5.as_ref().unwrap_or(&part.checksum);
    if let Ok(v) = format!("\"{etag}\"").parse() {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `POST /files/<bucket>/<key>`: `?uploads` starts a multipart upload, `?uploadId` completes one.
pub(crate) async fn post_object(
    State(st): St,
    Path((bucket, key)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = bucket_target(&st, &bucket, req.headers()).await?;
    object_post(&st, t, key, req).await
}

/// `POST /records/<pid>/files/<key>`: multipart through the record's URL (Invenio: a 500).
pub(crate) async fn post_record_object(
    State(st): St,
    Path((pid, key)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = record_target(&st, &pid, req.headers(), req.uri()).await?;
    object_post(&st, t, key, req).await
}

/// `size` or `partSize` of a multipart init: the query string first, then the JSON body.
fn init_arg(q: &Query, body: &Value, name: &str) -> Result<u64, ApiError> {
    if let Some(v) = q.int(name)? {
        return Ok(v);
    }
    match body.get(name) {
        None | Some(Value::Null) => Err(ApiError::bad_request(format!(
            "Missing required query argument '{name}'"
        ))),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| ApiError::field(name, "Not a valid integer.")),
    }
}

async fn object_post(
    st: &AppState,
    t: Target,
    key: String,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    let store = st.store.clone();
    let id = t.bucket.id;
    if q.has("uploads") {
        let body = if q.has("size") && q.has("partSize") {
            Value::Null
        } else {
            json_body(req).await?
        };
        let size = init_arg(&q, &body, "size")?;
        let part_size = init_arg(&q, &body, "partSize")?;
        let mp = blocking(move || store.init_multipart(id, &key, size, part_size)).await?;
        return Ok(json_response(
            StatusCode::OK,
            &Value::Object(multipart_json(&mp, &t.base, true, None)),
            q.pretty(),
        ));
    }
    if let Some(upload) = q.uuid::<UploadId>("uploadId")? {
        let record = t.record;
        let (mp, version) = blocking(move || {
            let mp = store
                .read(|r| r.multipart(upload))?
                .filter(|m| m.bucket == id && m.key == key)
                .ok_or(Error::MultipartNotFound { upload })?;
            let v = store.complete_multipart_then(upload, |tx, v| {
                keep_files_true(tx, record, &v)?;
                Ok(v)
            })?;
            Ok((mp, v))
        })
        .await?;
        let vid = version.version_id.to_string();
        return Ok(json_response(
            StatusCode::OK,
            &Value::Object(multipart_json(&mp, &t.base, true, Some(&vid))),
            q.pretty(),
        ));
    }
    // Invenio's bare `abort(403)`: werkzeug's text.
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "You don't have the permission to access the requested resource. It is either \
         read-protected or not readable by the server.",
    ))
}

/// `DELETE /files/<bucket>/<key>`: a delete marker, `?versionId` removes one version,
/// `?uploadId` aborts a multipart upload.
pub(crate) async fn delete_object(
    State(st): St,
    Path((bucket, key)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = bucket_target(&st, &bucket, req.headers()).await?;
    object_delete(&st, t, key, req).await
}

/// `DELETE /records/<pid>/files/<key>`.
pub(crate) async fn delete_record_object(
    State(st): St,
    Path((pid, key)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = record_target(&st, &pid, req.headers(), req.uri()).await?;
    object_delete(&st, t, key, req).await
}

async fn object_delete(
    st: &AppState,
    t: Target,
    key: String,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    if q.has("uploads") {
        return Err(method_not_allowed());
    }
    let store = st.store.clone();
    let (id, record) = (t.bucket.id, t.record);
    if let Some(upload) = q.uuid::<UploadId>("uploadId")? {
        blocking(move || {
            store
                .read(|r| r.multipart(upload))?
                .filter(|m| m.bucket == id && m.key == key)
                .ok_or(Error::MultipartNotFound { upload })?;
            store.abort_multipart(upload)
        })
        .await
        .map_err(|e| match e.status {
            StatusCode::NOT_FOUND => not_found_upload(),
            _ => e,
        })?;
        return Ok(empty_json(StatusCode::NO_CONTENT));
    }
    if let Some(vid) = q.uuid::<VersionId>("versionId")? {
        blocking(move || {
            store.write(|tx| {
                tx.version(vid)?
                    .filter(|v| v.bucket == id && v.key == key)
                    .ok_or(Error::VersionNotFound { version: vid })?;
                tx.remove_version(vid)?;
                if let Some(rid) = record {
                    let mut rec = tx
                        .record(rid)?
                        .ok_or(Error::RecordNotFound { record: rid })?;
                    let mut files = tx.record_files(&mut rec)?;
                    files.flush()?;
                    files.commit()?;
                }
                Ok(())
            })
        })
        .await?;
        return Ok(empty_json(StatusCode::NO_CONTENT));
    }
    blocking(move || {
        store.write(|tx| {
            match record {
                Some(rid) => {
                    let mut rec = tx
                        .record(rid)?
                        .ok_or(Error::RecordNotFound { record: rid })?;
                    let mut files = tx.record_files(&mut rec)?;
                    files.delete(&key)?;
                    files.commit()?;
                }
                None => {
                    tx.delete_object(id, &key)?.ok_or(Error::ObjectNotFound {
                        bucket: id,
                        key: key.clone(),
                    })?;
                }
            }
            Ok(())
        })
    })
    .await
    .map_err(|e| match e.status {
        StatusCode::NOT_FOUND => not_found_object(),
        _ => e,
    })?;
    Ok(empty_json(StatusCode::NO_CONTENT))
}
