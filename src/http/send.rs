//! Sending a file (spec §3.4): MIME sanitisation, security headers, content disposition,
//! ETag and Content-MD5, conditional requests and single byte ranges.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use unicode_normalization::UnicodeNormalization;

use super::body::stream_file;
use super::error::ApiError;
use super::{AppState, blocking};
use crate::{FileInstance, ObjectVersion, Timestamp};

const CONTENT_MD5: header::HeaderName = header::HeaderName::from_static("content-md5");

/// Types sent as they are.
const PASS: &[&str] = &[
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/tiff",
    "text/plain",
];

/// Types a browser would run or render, sent as plain text instead.
const AS_TEXT: &[&str] = &[
    "application/javascript",
    "application/json",
    "application/xhtml+xml",
    "application/xml",
    "text/css",
    "text/csv",
    "text/html",
    "image/svg+xml",
];

/// Invenio's `sanitize_mimetype` for untrusted content.
pub(crate) fn sanitize_mimetype(mimetype: &str, filename: &str) -> &'static str {
    let m = mimetype.to_ascii_lowercase();
    if filename.eq_ignore_ascii_case("readme") || AS_TEXT.contains(&m.as_str()) {
        return "text/plain";
    }
    PASS.iter()
        .find(|p| **p == m)
        .copied()
        .unwrap_or("application/octet-stream")
}

/// Escaped in `filename*`: everything but RFC 5987's `attr-char`.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// `Content-Disposition` for an attachment named `name` (RFC 6266): an ASCII name as it is
/// (quoted when it is not a token), a non-ASCII one folded to ASCII plus `filename*`.
pub(crate) fn attachment(name: &str) -> String {
    fn param(v: &str) -> String {
        if !v.is_empty() && v.chars().all(is_token_char) {
            v.to_string()
        } else {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"")
        }
    }
    if name.is_ascii() && !name.chars().any(|c| c.is_ascii_control()) {
        return format!("attachment; filename={}", param(name));
    }
    let folded: String = name
        .nfkd()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, ATTR_CHAR).to_string();
    format!(
        "attachment; filename={}; filename*=UTF-8''{encoded}",
        param(&folded)
    )
}

fn system_time(t: Timestamp) -> SystemTime {
    let secs = u64::try_from(t.as_micros().div_euclid(1_000_000)).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A `Range` header resolved against a file's size.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// No usable range: the whole file.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range as werkzeug does: an end past
/// the file is clamped; several ranges, a malformed value, a start past the end or an empty
/// suffix are unsatisfiable.
pub(crate) fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Unsatisfiable;
    };
    if spec.contains(',') {
        return RangeAsk::Unsatisfiable;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, false) => match num(b) {
            Some(n) if n > 0 && size > 0 => (size.saturating_sub(n), size - 1),
            _ => return RangeAsk::Unsatisfiable,
        },
        (false, true) => match num(a) {
            Some(s) => (s, size.saturating_sub(1)),
            None => return RangeAsk::Unsatisfiable,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
            _ => return RangeAsk::Unsatisfiable,
        },
        (true, true) => return RangeAsk::Unsatisfiable,
    };
    if start >= size {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(start, end)
}

fn etag_matches(list: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    list.split(',').any(|t| t.trim() == "*" || bare(t) == etag)
}

/// Whether the request's validators say the client's copy is current (304).
fn not_modified(req: &HeaderMap, etag: Option<&str>, modified: SystemTime) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return etag.is_some_and(|e| etag_matches(inm, e));
    }
    if let Some(ims) = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        return modified <= ims;
    }
    false
}

fn put(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The response for downloading `version` (whose file is `file`): headers, then the bytes
/// streamed from the store unless the request is a HEAD or a 304.
pub(crate) async fn send_file(
    st: &AppState,
    req: &HeaderMap,
    is_head: bool,
    version: &ObjectVersion,
    file: &FileInstance,
    as_attachment: bool,
) -> Result<Response, ApiError> {
    if !file.readable {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "File storage is offline.",
        ));
    }
    let name = version.basename();
    let mimetype = sanitize_mimetype(&version.mimetype, name);
    let checksum = file.md5.as_ref().unwrap_or(&file.checksum);
    let etag = format!("\"{checksum}\"");
    let modified = system_time(file.updated);

    let mut h = HeaderMap::new();
    let content_type = if mimetype.starts_with("text/") {
        format!("{mimetype}; charset=utf-8")
    } else {
        mimetype.to_string()
    };
    put(&mut h, header::CONTENT_TYPE, &content_type);
    let disposition = if as_attachment || mimetype == "application/octet-stream" {
        attachment(name)
    } else {
        "inline".to_string()
    };
    put(&mut h, header::CONTENT_DISPOSITION, &disposition);
    put(&mut h, header::ETAG, &etag);
    if let Some(md5) = &file.md5 {
        put(&mut h, CONTENT_MD5, md5.trim_start_matches("md5:"));
    }
    put(
        &mut h,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(modified),
    );
    put(&mut h, header::CACHE_CONTROL, "no-cache");
    put(&mut h, header::ACCEPT_RANGES, "bytes");
    put(
        &mut h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none';",
    );
    put(&mut h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(
        &mut h,
        header::HeaderName::from_static("x-download-options"),
        "noopen",
    );
    put(
        &mut h,
        header::HeaderName::from_static("x-permitted-cross-domain-policies"),
        "none",
    );
    put(&mut h, header::X_FRAME_OPTIONS, "deny");
    put(&mut h, header::X_XSS_PROTECTION, "1; mode=block");

    let size = file.size;
    if not_modified(req, Some(&etag), modified) {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_DISPOSITION,
            CONTENT_MD5,
        ] {
            h.remove(name);
        }
        *resp.headers_mut() = h;
        return Ok(resp);
    }
    let range = match req.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => parse_range(v, size),
        None => RangeAsk::Whole,
    };
    let (status, start, len) = match range {
        RangeAsk::Whole => (StatusCode::OK, 0, size),
        RangeAsk::Part(s, e) => {
            put(
                &mut h,
                header::CONTENT_RANGE,
                &format!("bytes {s}-{e}/{size}"),
            );
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        RangeAsk::Unsatisfiable => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The server cannot provide the requested range.",
            )
            .with_header(header::CONTENT_RANGE, &format!("bytes */{size}")));
        }
    };
    put(&mut h, header::CONTENT_LENGTH, &len.to_string());
    let body = if is_head || len == 0 {
        Body::empty()
    } else {
        let store = st.store.clone();
        let vid = version.version_id;
        let reader = blocking(move || store.open_version(vid)).await?;
        stream_file(reader, start, len)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = h;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_werkzeug() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAsk::Part(0, 9));
        assert_eq!(parse_range("bytes=90-200", 100), RangeAsk::Part(90, 99));
        assert_eq!(parse_range("bytes=10-", 100), RangeAsk::Part(10, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeAsk::Part(90, 99));
        assert_eq!(parse_range("bytes=-200", 100), RangeAsk::Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=invalid", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsk::Unsatisfiable);
    }

    #[test]
    fn mimetypes_are_sanitised_as_invenio_does() {
        assert_eq!(sanitize_mimetype("text/html", "a.html"), "text/plain");
        assert_eq!(sanitize_mimetype("image/png", "a.png"), "image/png");
        assert_eq!(
            sanitize_mimetype("application/octet-stream", "README"),
            "text/plain"
        );
        assert_eq!(
            sanitize_mimetype("application/pdf", "doc.pdf"),
            "application/octet-stream"
        );
    }

    #[test]
    fn non_ascii_names_get_a_folded_name_and_an_encoded_one() {
        assert_eq!(
            attachment("żółć.dat"),
            "attachment; filename=zoc.dat; filename*=UTF-8''%C5%BC%C3%B3%C5%82%C4%87.dat"
        );
        assert_eq!(
            attachment("archive.zip"),
            "attachment; filename=archive.zip"
        );
        assert_eq!(
            attachment("my file.txt"),
            "attachment; filename=\"my file.txt\""
        );
    }
}
