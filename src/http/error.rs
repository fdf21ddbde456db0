//! The one error type of the HTTP layer, rendered as Invenio's JSON error body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{Error, KeyProblem, SizeLimit};

/// An error answer: Invenio's body `{"status": <code>, "message": "<text>"}`, plus an
/// `"errors"` list when there are field errors.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message, as Invenio words it where it has one.
    pub message: String,
    /// Field errors (`[{"field": ..., "message": ...}]`), if any.
    pub errors: Option<Value>,
    /// Extra response headers (`WWW-Authenticate`, `Location`, `Content-Range`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// The message of a plain 404 (werkzeug's text, which invenio-rest returns as JSON too).
pub(crate) const NOT_FOUND: &str = "The requested URL was not found on the server. If you \
entered the URL manually please check your spelling and try again.";

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            errors: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, NOT_FOUND)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 422 with one field error, as webargs reports a query argument of the wrong type.
    pub(crate) fn field(field: &str, message: &str) -> ApiError {
        ApiError {
            errors: Some(json!([{"field": field, "message": message}])),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation error.")
        }
    }

    pub(crate) fn with_header(mut self, name: header::HeaderName, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub(crate) fn internal(what: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {what}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Built by hand so the keys come in Invenio's order: status, message, errors.
        let mut text = format!(
            "{{\"status\": {}, \"message\": {}",
            self.status.as_u16(),
            Value::String(self.message)
        );
        if let Some(e) = &self.errors {
            text.push_str(", \"errors\": ");
            python_json(e, &mut text);
        }
        text.push('}');
        let mut resp = (self.status, text).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

/// Writes JSON the way Python's `json.dumps` does by default (`", "` and `": "` separators),
/// which is how Invenio's error bodies look.
fn python_json(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                python_json(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        use StatusCode as S;
        let (status, message): (StatusCode, String) = match &e {
            Error::BucketNotFound { .. } | Error::BucketDeleted { .. } => {
                (S::NOT_FOUND, "Bucket does not exist.".into())
            }
            Error::BucketLocked { .. } => {
                (S::FORBIDDEN, "Bucket is locked for modifications.".into())
            }
            Error::InvalidKey { problem, .. } => (
                S::BAD_REQUEST,
                match problem {
                    KeyProblem::TooLong { .. } => "Filename is too long.".into(),
                    other => format!("Invalid filename: {other}."),
                },
            ),
            Error::FileSize { limit, .. } => (
                S::BAD_REQUEST,
                match limit {
                    SizeLimit::Quota => "Bucket quota exceeded.".into(),
                    SizeLimit::MaxFileSize => "Maximum file size exceeded.".into(),
                },
            ),
            Error::UnexpectedFileSize { expected, actual } => (
                S::BAD_REQUEST,
                if actual > expected {
                    "File is bigger than expected.".into()
                } else {
                    "File is smaller than expected.".into()
                },
            ),
            Error::UploadStream { .. } => (
                S::BAD_REQUEST,
                "File is smaller than expected: the request body ended early.".into(),
            ),
            Error::ChecksumMismatch { expected, actual } => (
                S::BAD_REQUEST,
                format!("Content-MD5 does not match the content: sent {expected}, got {actual}."),
            ),
            Error::ObjectNotFound { .. } | Error::VersionNotFound { .. } => {
                (S::NOT_FOUND, "Object does not exists.".into())
            }
            Error::FileUnreadable { .. } => {
                (S::SERVICE_UNAVAILABLE, "File storage is offline.".into())
            }
            Error::FileAlreadySet { .. } => (S::FORBIDDEN, "File instance already set.".into()),
            Error::InvalidTag { .. } => (
                S::BAD_REQUEST,
                "Too long/short tag key or tag value.".into(),
            ),
            Error::InvalidOperation { reason } => (S::FORBIDDEN, (*reason).into()),
            Error::MultipartNotFound { .. } => (S::NOT_FOUND, "uploadId does not exists.".into()),
            Error::MultipartInvalidPartSize { .. } | Error::MultipartPartSize { .. } => {
                (S::BAD_REQUEST, "Invalid part size.".into())
            }
            Error::MultipartInvalidSize { .. } => (S::BAD_REQUEST, "Invalid file size.".into()),
            Error::MultipartInvalidPartNumber { .. } => {
                (S::BAD_REQUEST, "Invalid part number.".into())
            }
            Error::MultipartMissingParts { .. } => {
                (S::BAD_REQUEST, "Not all parts have been uploaded.".into())
            }
            Error::RecordNotFound { .. } | Error::PidNotFound { .. } => {
                (S::NOT_FOUND, "PID does not exist.".into())
            }
            Error::PidDeleted { .. } | Error::RecordDeleted { .. } => {
                (S::GONE, "PID has been deleted.".into())
            }
            Error::PidRedirected { .. } => {
                (S::MOVED_PERMANENTLY, "PID has been redirected.".into())
            }
            Error::NoBucket { .. } => (S::NOT_FOUND, NOT_FOUND.into()),
            Error::RevisionConflict { .. } => (
                S::PRECONDITION_FAILED,
                "The record changed since it was read: revision mismatch.".into(),
            ),
            Error::NotAnObject { found } => (
                S::BAD_REQUEST,
                format!("The record must be a JSON object, got {found}."),
            ),
            Error::SchemaValidation { errors, .. } => {
                let list: Vec<Value> = errors
                    .iter()
                    .map(|v| json!({"field": v.pointer, "message": v.message}))
                    .collect();
                return ApiError {
                    errors: Some(Value::Array(list)),
                    ..ApiError::new(S::BAD_REQUEST, "Validation error.")
                };
            }
            Error::SchemaNotFound { schema } => (
                S::BAD_REQUEST,
                format!("Schema {schema} is not registered."),
            ),
            Error::InvalidPid { reason, .. } => (S::BAD_REQUEST, format!("Invalid PID: {reason}.")),
            Error::ReservedKey { key } => (
                S::BAD_REQUEST,
                format!("{key} is a reserved file attribute."),
            ),
            Error::RecordFile { reason, .. } => (S::FORBIDDEN, (*reason).into()),
            Error::FilesExist { .. } => (S::FORBIDDEN, "Can not update existing files.".into()),
            _ => return ApiError::internal(&e),
        };
        ApiError::new(status, message)
    }
}
