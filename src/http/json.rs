//! Invenio's JSON shapes (spec §4.8), links, query strings and content negotiation.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::{Bucket, MultipartUpload, ObjectVersion, Part};

/// The query string as (name, value) pairs, in order; a name may appear without a value
/// (`?versions`), which Invenio treats as present.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A UUID argument: `None` when absent, a 422 field error when malformed.
    pub(crate) fn uuid<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::field(name, "Not a valid UUID.")),
        }
    }

    /// An integer argument: `None` when absent, a 422 field error when malformed.
    pub(crate) fn int(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::field(name, "Not a valid integer.")),
        }
    }

    /// `?prettyprint=1` (any value but `0`, `false` or empty).
    pub(crate) fn pretty(&self) -> bool {
        matches!(self.get("prettyprint"), Some(v) if !matches!(v, "" | "0" | "false" | "False"))
    }
}

/// Invenio's views answer only `application/json`: an `Accept` header that allows neither it
/// nor a wildcard gives 406.
pub(crate) fn negotiate(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    if accept.trim().is_empty() {
        return Ok(());
    }
    let acceptable = accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !refused && matches!(media.as_str(), "application/json" | "application/*" | "*/*")
    });
    if acceptable {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "The resource identified by the request is only capable of generating response \
             entities which have content characteristics not acceptable according to the \
             accept headers sent in the request.",
        ))
    }
}

/// A JSON success body: compact (`,` and `:`), or indented by 2 with `?prettyprint=1`.
pub(crate) fn json_response(status: StatusCode, body: &Value, pretty: bool) -> Response {
    let text = if pretty {
        serde_json::to_string_pretty(body)
    } else {
        serde_json::to_string(body)
    }
    .unwrap_or_default();
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An empty answer with Invenio's `Content-Type: application/json` (HEAD of a bucket, 204s).
pub(crate) fn empty_json(status: StatusCode) -> Response {
    let mut resp = status.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Characters escaped in a key placed in a URL path: everything but unreserved ones and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

pub(crate) fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, PATH).to_string()
}

/// `http://<host>` from the request's `Host` header, for Invenio's absolute links.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The bucket's JSON (`id`, `size`, `quota_size`, `max_file_size`, `locked`, `created`,
/// `updated`, `links`); `base` is the absolute URL of the bucket resource.
pub(crate) fn bucket_json(b: &Bucket, base: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(b.id.to_string()));
    m.insert("size".into(), json!(b.size));
    m.insert("quota_size".into(), json!(b.quota_size));
    m.insert("max_file_size".into(), json!(b.max_file_size));
    m.insert("locked".into(), json!(b.locked));
    m.insert("created".into(), json!(b.created.to_rfc3339()));
    m.insert("updated".into(), json!(b.updated.to_rfc3339()));
    m.insert(
        "links".into(),
        json!({
            "self": base,
            "versions": format!("{base}?versions"),
            "uploads": format!("{base}?uploads"),
        }),
    );
    m
}

/// What the object JSON needs beyond the version row: its checksum in Invenio's form (md5
/// when the store keeps it) and its tags.
pub(crate) struct ObjectExtras {
    pub checksum: Option<String>,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// An object version's JSON (spec §4.8); `base` is the bucket resource's absolute URL.
pub(crate) fn object_json(v: &ObjectVersion, extras: &ObjectExtras, base: &str) -> Value {
    let url = format!("{base}/{}", encode_key(&v.key));
    let version = format!("{url}?versionId={}", v.version_id);
    let live_head = v.is_head && !v.is_delete_marker();
    let mut links = Map::new();
    links.insert(
        "self".into(),
        json!(if live_head {
            url.clone()
        } else {
            version.clone()
        }),
    );
    links.insert("version".into(), json!(version));
    if live_head {
        links.insert("uploads".into(), json!(format!("{url}?uploads")));
    }
    let mut m = Map::new();
    m.insert("key".into(), json!(v.key));
    m.insert("version_id".into(), json!(v.version_id.to_string()));
    m.insert("is_head".into(), json!(v.is_head));
    m.insert("mimetype".into(), json!(v.mimetype));
    if !v.is_delete_marker() {
        m.insert("size".into(), json!(v.size));
        m.insert("checksum".into(), json!(extras.checksum));
    }
    m.insert("delete_marker".into(), json!(v.is_delete_marker()));
    m.insert("tags".into(), json!(extras.tags));
    m.insert("created".into(), json!(v.created.to_rfc3339()));
    m.insert("updated".into(), json!(v.updated.to_rfc3339()));
    m.insert("links".into(), Value::Object(links));
    Value::Object(m)
}

/// A multipart upload's JSON; `completed` and `object_version` describe a completion.
pub(crate) fn multipart_json(
    mp: &MultipartUpload,
    base: &str,
    with_bucket_link: bool,
    completed_as: Option<&str>,
) -> Map<String, Value> {
    let url = format!("{base}/{}", encode_key(&mp.key));
    let mut links = Map::new();
    links.insert("self".into(), json!(format!("{url}?uploadId={}", mp.id)));
    links.insert("object".into(), json!(url));
    if with_bucket_link {
        links.insert("bucket".into(), json!(base));
    }
    if let Some(vid) = completed_as {
        links.insert(
            "object_version".into(),
            json!(format!("{url}?versionId={vid}")),
        );
    }
    let mut m = Map::new();
    m.insert("id".into(), json!(mp.id.to_string()));
    m.insert("bucket".into(), json!(mp.bucket.to_string()));
    m.insert("key".into(), json!(mp.key));
    m.insert("completed".into(), json!(completed_as.is_some()));
    m.insert("size".into(), json!(mp.size));
    m.insert("part_size".into(), json!(mp.part_size));
    m.insert("last_part_number".into(), json!(mp.last_part_number()));
    // Invenio's value (size modulo part size, 0 for an exact multiple), kept as it reports it;
    // the part itself is expected at its real size (see README).
    m.insert(
        "last_part_size".into(),
        json!(mp.size % mp.part_size.max(1)),
    );
    m.insert("created".into(), json!(mp.created.to_rfc3339()));
    m.insert("updated".into(), json!(mp.updated.to_rfc3339()));
    m.insert("links".into(), Value::Object(links));
    m
}

/// A part's JSON (no links).
pub(crate) fn part_json(p: &Part) -> Value {
    json!({
        "part_number": p.part_number,
        "start_byte": p.start_byte,
        "end_byte": p.end_byte,
        "checksum": p.md5.as_ref().unwrap_or(&p.checksum),
        "created": p.created.to_rfc3339(),
        "updated": p.updated.to_rfc3339(),
    })
}
