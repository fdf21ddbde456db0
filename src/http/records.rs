//! Records (the Invenio-Records-REST shapes): create with a minted `recid`, read, replace and
//! delete with the revision as ETag, and a listing in recid order, a page at a time.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use super::error::ApiError;
use super::json::{Query, empty_json, encode_key, json_response, negotiate, origin};
use super::{AppState, blocking};
use crate::{
    BUCKET_FIELD, Error, FILES_FIELD, RECID, Record, RecordListOptions, RecordOptions, RecordsQuery,
};

type St = State<Arc<AppState>>;

/// A PID that did not resolve: 404, 410, or 301 to the same URL with the PID it redirects to
/// (the record, its files, one of its files), as Invenio-Records-REST redirects.
pub(crate) fn pid_error(headers: &HeaderMap, uri: &Uri, e: Error) -> ApiError {
    match &e {
        Error::PidRedirected {
            to_type, to_value, ..
        } if to_type == RECID => match moved_to(headers, uri, to_value) {
            Some(to) => ApiError::from(e).with_header(header::LOCATION, &to),
            None => e.into(),
        },
        _ => e.into(),
    }
}

/// `uri` with the PID segment after `/records/` replaced by `to`, as an absolute URL.
fn moved_to(headers: &HeaderMap, uri: &Uri, to: &str) -> Option<String> {
    let path = uri.path();
    let start = path.find("/records/")? + "/records/".len();
    let end = path[start..].find('/').map_or(path.len(), |i| start + i);
    let mut url = format!(
        "{}{}{}{}",
        origin(headers),
        &path[..start],
        encode_key(to),
        &path[end..]
    );
    if let Some(q) = uri.query() {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

fn record_url(st: &AppState, headers: &HeaderMap, recid: &str) -> String {
    format!(
        "{}{}/records/{}",
        origin(headers),
        st.api,
        encode_key(recid)
    )
}

fn record_json(st: &AppState, headers: &HeaderMap, recid: &str, rec: &Record) -> Value {
    let url = record_url(st, headers, recid);
    let mut links = Map::new();
    if rec.bucket_id().is_some() {
        links.insert("files".into(), json!(format!("{url}/files")));
    }
    links.insert("self".into(), json!(url));
    json!({
        "id": recid,
        "metadata": rec.body(),
        "links": links,
        "created": rec.created().to_rfc3339(),
        "updated": rec.updated().to_rfc3339(),
        "revision": rec.revision_id(),
    })
}

fn etag(rec: &Record) -> String {
    format!("\"{}\"", rec.revision_id())
}

fn record_response(
    st: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    recid: &str,
    rec: &Record,
    pretty: bool,
) -> Response {
    let mut resp = json_response(status, &record_json(st, headers, recid, rec), pretty);
    if let Ok(v) = HeaderValue::from_str(&etag(rec)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The revision an `If-Match` header asks for: `None` without one or for `*`.
fn if_match(headers: &HeaderMap) -> Result<Option<Vec<String>>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("").trim();
    if v == "*" {
        return Ok(None);
    }
    Ok(Some(
        v.split(',')
            .map(|t| t.trim().trim_start_matches("W/").to_string())
            .collect(),
    ))
}

fn precondition_failed() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "The precondition on the request for the URL failed positive evaluation.",
    )
}

async fn body_object(req: Request) -> Result<Map<String, Value>, ApiError> {
    let bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .map_err(|_| {
            ApiError::bad_request("The request body could not be read (at most 16 MiB).")
        })?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("The record must be a JSON object.")),
        Err(e) => Err(ApiError::bad_request(format!(
            "The request body is not valid JSON: {e}."
        ))),
    }
}

/// `POST /records`: a record with its bucket (`?with_bucket=false`: without) and a minted
/// recid → 201.
pub(crate) async fn create(State(st): St, req: Request) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    let headers = req.headers().clone();
    let with_bucket = !matches!(q.get("with_bucket"), Some("false" | "False" | "0"));
    let mut body = body_object(req).await?;
    // The record's bucket and files list are the server's to keep.
    body.remove(BUCKET_FIELD);
    body.remove(FILES_FIELD);
    let opts = if with_bucket {
        RecordOptions {
            bucket: Some(st.new_bucket()),
            ..RecordOptions::default()
        }
    } else {
        RecordOptions::without_bucket()
    };
    let store = st.store.clone();
    let (rec, recid) = blocking(move || {
        store.write(|tx| {
            let rec = tx.create_record_with(Value::Object(body), &opts)?;
            let pid = tx.mint_recid(rec.id())?;
            Ok((rec, pid.pid_value))
        })
    })
    .await?;
    let mut resp = record_response(&st, &headers, StatusCode::CREATED, &recid, &rec, q.pretty());
    if let Ok(v) = HeaderValue::from_str(&record_url(&st, &headers, &recid)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /records/<pid>`: 200 with the revision as ETag (304 for a matching If-None-Match),
/// 404 unknown, 410 deleted, 301 redirected.
pub(crate) async fn read(
    State(st): St,
    Path(pid): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    let store = st.store.clone();
    let value = pid.clone();
    let rec = blocking(move || Ok(store.resolve_pid(RECID, &value)))
        .await?
        .map_err(|e| pid_error(req.headers(), req.uri(), e))?;
    if let Some(inm) = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let tag = etag(&rec);
        if inm
            .split(',')
            .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == tag)
        {
            let mut resp = empty_json(StatusCode::NOT_MODIFIED);
            if let Ok(v) = HeaderValue::from_str(&tag) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            return Ok(resp);
        }
    }
    Ok(record_response(
        &st,
        req.headers(),
        StatusCode::OK,
        &pid,
        &rec,
        q.pretty(),
    ))
}

/// `PUT /records/<pid>`: replaces the metadata (the server keeps `_bucket` and `_files`);
/// `If-Match` with a stale revision → 412.
pub(crate) async fn replace(
    State(st): St,
    Path(pid): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    let headers = req.headers().clone();
    let uri = req.uri().clone();
    let wanted = if_match(&headers)?;
    let mut body = body_object(req).await?;
    let store = st.store.clone();
    let value = pid.clone();
    let done = blocking(move || {
        Ok(store.write(|tx| {
            let mut rec = tx.resolve_pid(RECID, &value)?;
            if let Some(w) = &wanted
                && !w.contains(&etag(&rec))
            {
                return Ok(None);
            }
            for field in [BUCKET_FIELD, FILES_FIELD] {
                match rec.body().get(field) {
                    Some(v) => {
                        body.insert(field.into(), v.clone());
                    }
                    None => {
                        body.remove(field);
                    }
                }
            }
            *rec.body_mut() = body;
            tx.commit_record(&mut rec)?;
            Ok(Some(rec))
        }))
    })
    .await?
    .map_err(|e| pid_error(&headers, &uri, e))?;
    let rec = done.ok_or_else(precondition_failed)?;
    Ok(record_response(
        &st,
        &headers,
        StatusCode::OK,
        &pid,
        &rec,
        q.pretty(),
    ))
}

/// `DELETE /records/<pid>`: soft-deletes the record (and its bucket) and its PID → 204; the
/// record then answers 410.
pub(crate) async fn delete(
    State(st): St,
    Path(pid): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let headers = req.headers().clone();
    let uri = req.uri().clone();
    let wanted = if_match(&headers)?;
    let store = st.store.clone();
    let value = pid.clone();
    let done = blocking(move || {
        Ok(store.write(|tx| {
            let mut rec = tx.resolve_pid(RECID, &value)?;
            if let Some(w) = &wanted
                && !w.contains(&etag(&rec))
            {
                return Ok(false);
            }
            tx.delete_record(&mut rec)?;
            tx.delete_pid(RECID, &value)?;
            Ok(true)
        }))
    })
    .await?
    .map_err(|e| pid_error(&headers, &uri, e))?;
    if !done {
        return Err(precondition_failed());
    }
    Ok(empty_json(StatusCode::NO_CONTENT))
}

/// Largest page of `GET /records`.
const MAX_PAGE: u64 = 1000;

/// `GET /records?size=N&after=R`: live records in recid order; `links.next` continues and
/// `hits.total` counts every page's records.
pub(crate) async fn list(State(st): St, req: Request) -> Result<Response, ApiError> {
    negotiate(req.headers())?;
    let q = Query::parse(req.uri().query());
    let size = q.int("size")?.unwrap_or(10).clamp(1, MAX_PAGE);
    let after = q.int("after")?;
    let store = st.store.clone();
    let opts = RecordListOptions {
        after,
        limit: size as usize,
        with_deleted: false,
    };
    // The page and the total from one snapshot, so they agree.
    let (page, total) =
        blocking(move || store.read(|r| Ok((r.list_records(&opts)?, r.count_records(false)?))))
            .await?;
    let headers = req.headers();
    let hits: Vec<Value> = page
        .records
        .iter()
        .map(|r| record_json(&st, headers, &r.recid.to_string(), &r.record))
        .collect();
    let base = format!("{}{}/records", origin(headers), st.api);
    let mut links = Map::new();
    links.insert(
        "self".into(),
        json!(match after {
            Some(a) => format!("{base}?size={size}&after={a}"),
            None => format!("{base}?size={size}"),
        }),
    );
    if let Some(next) = page.next {
        links.insert(
            "next".into(),
            json!(format!("{base}?size={size}&after={next}")),
        );
    }
    // Invenio-Records-REST's search shape; no facets are configured, so no aggregations.
    let body = json!({
        "aggregations": {},
        "hits": {"hits": hits, "total": total},
        "links": links,
    });
    Ok(json_response(StatusCode::OK, &body, q.pretty()))
}
