//! The route table: every operation of the API, with what the OpenAPI document says about it
//! and the handler it is mounted with. The router and `GET <api>/openapi.json` are both built
//! from this one table, so the document cannot drift from the routes.

use axum::routing::MethodRouter;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use super::{AppState, files, records};

type Mr = MethodRouter<Arc<AppState>>;

/// Where a route is mounted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    Api,
    Ui,
}

/// What an operation's request body is.
#[derive(Clone, Copy)]
pub(crate) enum BodyKind {
    None,
    /// File bytes (`application/octet-stream`), or an ng-file-upload form.
    Bytes,
    /// A JSON object; the value is its schema.
    Json(fn() -> Value),
}

pub(crate) struct Op {
    pub method: &'static str,
    pub summary: &'static str,
    /// Query arguments: (name, schema type, description).
    pub query: &'static [(&'static str, &'static str, &'static str)],
    pub body: BodyKind,
    pub responses: &'static [(u16, &'static str)],
    pub mount: fn(Mr) -> Mr,
}

pub(crate) struct Route {
    pub prefix: Prefix,
    /// The path after the prefix, in axum's syntax (`{bucket}`, `{*key}` for the rest).
    pub path: &'static str,
    /// Also mounted with a trailing slash (the seed's `.../files/`), not documented twice.
    pub slash_alias: bool,
    pub ops: Vec<Op>,
}

const Q_VERSION: (&str, &str, &str) = ("versionId", "string", "a version of the object (UUID)");
const Q_UPLOAD: (&str, &str, &str) = ("uploadId", "string", "a multipart upload (UUID)");
const Q_PRETTY: (&str, &str, &str) = ("prettyprint", "string", "`1` indents the JSON");

fn bucket_patch_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "locked": {"type": "boolean"},
            "quota_size": {"type": "integer", "minimum": 0, "nullable": true},
            "max_file_size": {"type": "integer", "minimum": 0, "nullable": true},
        }
    })
}

fn multipart_init_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "size": {"type": "integer", "minimum": 0},
            "partSize": {"type": "integer", "minimum": 1},
        }
    })
}

fn record_schema() -> Value {
    json!({"type": "object"})
}

/// The object operations, shared by bucket URLs and record URLs.
fn object_ops(record: bool) -> Vec<Op> {
    vec![
        Op {
            method: "get",
            summary: "Download the object (or a version of it), or list a multipart upload's parts",
            query: &[
                Q_VERSION,
                Q_UPLOAD,
                ("download", "string", "send as an attachment"),
                Q_PRETTY,
            ],
            body: BodyKind::None,
            responses: &[
                (200, "the file, or the upload with its parts"),
                (206, "a byte range"),
                (304, "not modified"),
                (404, "no such object, version or upload"),
                (405, "?uploads"),
                (406, "not acceptable"),
                (416, "range not satisfiable"),
                (422, "malformed versionId or uploadId"),
            ],
            mount: if record {
                |m| m.get(files::get_record_object)
            } else {
                |m| m.get(files::get_object)
            },
        },
        Op {
            method: "put",
            summary: "Upload the object (a new version), or one part of a multipart upload",
            query: &[
                Q_UPLOAD,
                ("partNumber", "integer", "the part's number, from 0"),
                Q_PRETTY,
            ],
            body: BodyKind::Bytes,
            responses: &[
                (200, "the new version, or the part"),
                (400, "size, quota, key, tag, checksum or part problem"),
                (403, "the bucket is locked"),
                (404, "no such bucket or upload"),
                (413, "a form with more than 1 MiB before its file"),
                (422, "malformed uploadId"),
            ],
            mount: if record {
                |m| m.put(files::put_record_object)
            } else {
                |m| m.put(files::put_object)
            },
        },
        Op {
            method: "post",
            summary: "Start (`?uploads&size=&partSize=`) or complete (`?uploadId=`) a multipart upload",
            query: &[
                ("uploads", "string", "start an upload"),
                ("size", "integer", "the file's total size"),
                ("partSize", "integer", "the size of every part but the last"),
                Q_UPLOAD,
                Q_PRETTY,
            ],
            body: BodyKind::Json(multipart_init_schema),
            responses: &[
                (200, "the multipart upload"),
                (400, "missing or invalid size or part size, missing parts"),
                (403, "locked bucket, or neither ?uploads nor ?uploadId"),
                (404, "no such bucket or upload"),
                (422, "malformed arguments"),
            ],
            mount: if record {
                |m| m.post(files::post_record_object)
            } else {
                |m| m.post(files::post_object)
            },
        },
        Op {
            method: "delete",
            summary: "Delete the object (a delete marker), remove one version, or abort an upload",
            query: &[Q_VERSION, Q_UPLOAD],
            body: BodyKind::None,
            responses: &[
                (204, "done"),
                (403, "the bucket is locked"),
                (404, "no such object, version or upload"),
                (405, "?uploads"),
                (422, "malformed versionId or uploadId"),
            ],
            mount: if record {
                |m| m.delete(files::delete_record_object)
            } else {
                |m| m.delete(files::delete_object)
            },
        },
    ]
}

fn bucket_get(record: bool) -> Op {
    Op {
        method: "get",
        summary: "The bucket with its live objects, its versions (`?versions`, `&with_deleted`) or its multipart uploads (`?uploads`)",
        query: &[
            ("versions", "string", "list every version"),
            (
                "with_deleted",
                "string",
                "with ?versions: delete markers too",
            ),
            ("uploads", "string", "list multipart uploads"),
            Q_PRETTY,
        ],
        body: BodyKind::None,
        responses: &[
            (200, "the listing"),
            (404, "no such bucket"),
            (406, "not acceptable"),
        ],
        mount: if record {
            |m| m.get(files::get_record_bucket)
        } else {
            |m| m.get(files::get_bucket)
        },
    }
}

pub(crate) fn table() -> Vec<Route> {
    vec![
        Route {
            prefix: Prefix::Api,
            path: "/files",
            slash_alias: false,
            ops: vec![Op {
                method: "post",
                summary: "Create a bucket in the default location",
                query: &[Q_PRETTY],
                body: BodyKind::None,
                responses: &[(200, "the bucket")],
                mount: |m| m.post(files::create_bucket),
            }],
        },
        Route {
            prefix: Prefix::Api,
            path: "/files/{bucket}",
            slash_alias: true,
            ops: vec![
                bucket_get(false),
                Op {
                    method: "patch",
                    summary: "Lock or unlock the bucket, set its quota or file size limit (recfiles extension)",
                    query: &[Q_PRETTY],
                    body: BodyKind::Json(bucket_patch_schema),
                    responses: &[
                        (200, "the bucket"),
                        (400, "not a JSON object"),
                        (404, "no such bucket"),
                        (422, "a field of the wrong type"),
                    ],
                    mount: |m| m.patch(files::patch_bucket),
                },
                Op {
                    method: "delete",
                    summary: "Soft-delete the bucket (recfiles extension)",
                    query: &[],
                    body: BodyKind::None,
                    responses: &[(204, "deleted"), (404, "no such bucket")],
                    mount: |m| m.delete(files::delete_bucket),
                },
            ],
        },
        Route {
            prefix: Prefix::Api,
            path: "/files/{bucket}/{*key}",
            slash_alias: false,
            ops: object_ops(false),
        },
        Route {
            prefix: Prefix::Api,
            path: "/records",
            slash_alias: false,
            ops: vec![
                Op {
                    method: "get",
                    summary: "Records in recid order, a page at a time",
                    query: &[
                        (
                            "size",
                            "integer",
                            "records per page (1 to 1000, default 10)",
                        ),
                        ("after", "integer", "the last recid of the previous page"),
                        Q_PRETTY,
                    ],
                    body: BodyKind::None,
                    responses: &[
                        (200, "a page: hits.hits and links.next"),
                        (422, "malformed arguments"),
                    ],
                    mount: |m| m.get(records::list),
                },
                Op {
                    method: "post",
                    summary: "Create a record (with a bucket unless ?with_bucket=false) and mint its recid",
                    query: &[
                        (
                            "with_bucket",
                            "string",
                            "`false` for a record without files",
                        ),
                        Q_PRETTY,
                    ],
                    body: BodyKind::Json(record_schema),
                    responses: &[
                        (201, "the record"),
                        (400, "not a JSON object, or invalid for its schema"),
                    ],
                    mount: |m| m.post(records::create),
                },
            ],
        },
        Route {
            prefix: Prefix::Api,
            path: "/records/{pid}",
            slash_alias: false,
            ops: vec![
                Op {
                    method: "get",
                    summary: "The record; its revision is the ETag",
                    query: &[Q_PRETTY],
                    body: BodyKind::None,
                    responses: &[
                        (200, "the record"),
                        (301, "the PID redirects"),
                        (304, "not modified"),
                        (404, "no such PID"),
                        (410, "deleted"),
                    ],
                    mount: |m| m.get(records::read),
                },
                Op {
                    method: "put",
                    summary: "Replace the record's metadata (If-Match checked)",
                    query: &[Q_PRETTY],
                    body: BodyKind::Json(record_schema),
                    responses: &[
                        (200, "the record"),
                        (400, "not a JSON object"),
                        (404, "no such PID"),
                        (410, "deleted"),
                        (412, "stale If-Match"),
                    ],
                    mount: |m| m.put(records::replace),
                },
                Op {
                    method: "delete",
                    summary: "Delete the record and its PID (If-Match checked)",
                    query: &[],
                    body: BodyKind::None,
                    responses: &[
                        (204, "deleted"),
                        (404, "no such PID"),
                        (410, "already deleted"),
                        (412, "stale If-Match"),
                    ],
                    mount: |m| m.delete(records::delete),
                },
            ],
        },
        Route {
            prefix: Prefix::Api,
            path: "/records/{pid}/files",
            slash_alias: true,
            ops: vec![bucket_get(true)],
        },
        Route {
            prefix: Prefix::Api,
            path: "/records/{pid}/files/{*key}",
            slash_alias: false,
            ops: object_ops(true),
        },
        Route {
            prefix: Prefix::Api,
            path: "/openapi.json",
            slash_alias: false,
            ops: vec![Op {
                method: "get",
                summary: "This document",
                query: &[],
                body: BodyKind::None,
                responses: &[(200, "the OpenAPI document")],
                mount: |m| m.get(super::openapi_json),
            }],
        },
        Route {
            prefix: Prefix::Ui,
            path: "/records/{pid}/files/{*filename}",
            slash_alias: false,
            ops: vec![Op {
                method: "get",
                summary: "Download a record's file (the download view; ?download for an attachment)",
                query: &[("download", "string", "send as an attachment")],
                body: BodyKind::None,
                responses: &[
                    (200, "the file"),
                    (206, "a byte range"),
                    (304, "not modified"),
                    (404, "no such file"),
                    (410, "deleted record"),
                ],
                mount: |m| m.get(files::download_view),
            }],
        },
    ]
}

/// The OpenAPI 3 document of `routes` as mounted with these prefixes.
pub(crate) fn openapi(routes: &[Route], api: &str, ui: &str) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let prefix = match route.prefix {
            Prefix::Api => api,
            Prefix::Ui if ui == api => continue,
            Prefix::Ui => ui,
        };
        let path = format!("{prefix}{}", route.path.replace("{*", "{"));
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let name = name.trim_start_matches('*');
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        let mut item = Map::new();
        for op in &route.ops {
            let mut parameters = params.clone();
            for (name, ty, description) in op.query {
                parameters.push(json!({
                    "name": name, "in": "query", "required": false,
                    "description": description, "schema": {"type": ty},
                }));
            }
            let responses: Map<String, Value> = op
                .responses
                .iter()
                .map(|(code, d)| (code.to_string(), json!({"description": d})))
                .collect();
            let mut o = json!({
                "summary": op.summary,
                "operationId": format!("{}{}", op.method, path.replace(['/', '{', '}', '.'], "_")),
                "parameters": parameters,
                "responses": responses,
            });
            match op.body {
                BodyKind::None => {}
                BodyKind::Bytes => {
                    o["requestBody"] = json!({"content": {
                        "application/octet-stream":
                            {"schema": {"type": "string", "format": "binary"}},
                        // ng-file-upload's form (spec §4.7): the fields come before the file.
                        "multipart/form-data": {"schema": {
                            "type": "object",
                            "properties": {
                                "_totalSize": {"type": "integer", "minimum": 1,
                                    "description": "the file's size (single upload)"},
                                "_chunkNumber": {"type": "integer", "minimum": 0,
                                    "description": "the part's number (with ?uploadId)"},
                                "_currentChunkSize": {"type": "integer", "minimum": 1,
                                    "description": "the part's size (with ?uploadId)"},
                                "file": {"type": "string", "format": "binary"},
                            },
                            "required": ["file"],
                        }},
                    }});
                }
                BodyKind::Json(schema) => {
                    o["requestBody"] =
                        json!({"content": {"application/json": {"schema": schema()}}});
                }
            }
            item.insert(op.method.to_string(), o);
        }
        paths.insert(path, Value::Object(item));
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "recfiles",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Invenio-Files-REST, Invenio-Records-REST and Invenio-Records-Files \
                endpoints served from one recfiles store.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}
