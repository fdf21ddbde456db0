//! The REST API over real HTTP: a server on 127.0.0.1:0 in this process (or the `recfiles`
//! binary), a real client (ureq) or a raw socket.
#![cfg(feature = "http")]

mod http_support;
use recfiles::http::{Access, Config, ServeOptions, router};
use recfiles::prelude::*;
use recfiles::{MultipartLimits, TokenScope};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

// ---- harness ---------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

fn limits() -> MultipartLimits {
    MultipartLimits {
        min_part_size: 4,
        max_part_size: 1 << 20,
        max_parts: 100,
        ..MultipartLimits::default()
    }
}

fn open_store(dir: &tempfile::TempDir) -> Store {
    StoreBuilder::new()
        .md5(true)
        .multipart_limits(limits())
        .open(dir.path().join("store.redb"))
        .unwrap()
}

impl Server {
    fn start() -> Server {
        Server::with(|_| Config::default())
    }

    fn with(config: impl FnOnce(&Store) -> Config) -> Server {
        Server::with_options(config, 512)
    }

    fn with_options(config: impl FnOnce(&Store) -> Config, max_connections: usize) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir);
        let app = router(store.clone(), config(&store));
        let running = http_support::spawn(
            app,
            ServeOptions {
                shutdown_grace: Duration::from_secs(5),
                header_read_timeout: Duration::from_secs(1),
                max_connections,
            },
        );
        Server {
            addr: running.addr,
            store,
            stop: Some(running.stop),
            thread: Some(running.thread),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let (status, headers, body) = http_support::call(self.addr, method, path, headers, body);
        Resp {
            status,
            headers,
            body,
        }
    }

    fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[], b"")
    }

    fn put(&self, path: &str, body: &[u8]) -> Resp {
        self.call("PUT", path, &[], body)
    }

    fn post(&self, path: &str, body: &[u8]) -> Resp {
        self.call("POST", path, &[("content-type", "application/json")], body)
    }

    fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, &[], b"")
    }

    fn bucket(&self) -> String {
        let r = self.post("/api/files", b"");
        assert_eq!(r.status, 200);
        r.json()["id"].as_str().unwrap().to_string()
    }

    fn record(&self, body: Value) -> Value {
        let r = self.post("/api/records", body.to_string().as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()
    }
}

impl Server {
    /// Stops accepting, waits for the requests in flight and for the server thread.
    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Resp {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sends raw bytes on a fresh connection, optionally half-closes, and reads the status line.
fn raw_status(addr: SocketAddr, request: &[u8], half_close: bool) -> Option<u16> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    if half_close {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split(' ').nth(1)?.parse().ok()
}

const OBJECT_KEYS: [&str; 11] = [
    "checksum",
    "created",
    "delete_marker",
    "is_head",
    "key",
    "links",
    "mimetype",
    "size",
    "tags",
    "updated",
    "version_id",
];

// ---- the seed walkthrough ----------------------------------------------------------------------

#[test]
fn seed_curl_walkthrough_uploads_lists_and_downloads_a_record_file() {
    let s = Server::start();
    let rec = s.record(json!({"title": "seed"}));
    assert_eq!(rec["id"], "1");
    let put = s.call(
        "PUT",
        "/api/records/1/files/example.txt",
        &[("content-type", "application/octet-stream")],
        b"example content\n",
    );
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(keys(&put.json()), OBJECT_KEYS);
    let list = s.get("/api/records/1/files/");
    assert_eq!(list.status, 200);
    let contents = &list.json()["contents"];
    assert_eq!(contents[0]["key"], "example.txt");
    assert_eq!(
        contents[0]["links"]["self"],
        s.url("/api/records/1/files/example.txt")
    );
    let get = s.get("/api/records/1/files/example.txt");
    assert_eq!(get.status, 200);
    assert_eq!(get.body, b"example content\n");
    // The record's _files lists the file.
    let rec = s.get("/api/records/1").json();
    assert_eq!(rec["metadata"]["_files"][0]["key"], "example.txt");
    assert_eq!(rec["revision"], 1);
}

#[test]
fn the_openapi_document_describes_every_route_as_mounted() {
    let s = Server::start();
    let doc = s.get("/api/openapi.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let methods = |p: &str| keys(&paths[p]).join(",");
    assert_eq!(methods("/api/files"), "post");
    assert_eq!(methods("/api/files/{bucket}"), "delete,get,patch");
    assert_eq!(methods("/api/files/{bucket}/{key}"), "delete,get,post,put");
    assert_eq!(methods("/api/records"), "get,post");
    assert_eq!(methods("/api/records/{pid}"), "delete,get,put");
    assert_eq!(methods("/api/records/{pid}/files"), "get");
    assert_eq!(
        methods("/api/records/{pid}/files/{key}"),
        "delete,get,post,put"
    );
    assert_eq!(methods("/records/{pid}/files/{filename}"), "get");
    assert_eq!(paths.len(), 9);
    // Every documented path is routed: an unknown id gives Invenio's 404 JSON, never the
    // router's fallback for an unknown path (which would be the same 404 but for any URL).
    for p in paths.keys() {
        let concrete = p
            .replace("{bucket}", &BucketId::new().to_string())
            .replace("{pid}", "1")
            .replace("{key}", "k")
            .replace("{filename}", "f");
        let method = keys(&paths[p])[0].to_uppercase();
        let r = s.call(&method, &concrete, &[], b"");
        assert_ne!(r.status, 405, "{method} {concrete}");
        assert!(r.status < 500, "{method} {concrete}: {}", r.status);
    }
}

// ---- location and buckets ----------------------------------------------------------------------

#[test]
fn post_files_creates_a_bucket_with_invenio_keys_and_other_methods_are_405() {
    let s = Server::start();
    let r = s.post("/api/files", b"");
    assert_eq!(r.status, 200);
    let b = r.json();
    assert_eq!(
        keys(&b),
        [
            "created",
            "id",
            "links",
            "locked",
            "max_file_size",
            "quota_size",
            "size",
            "updated"
        ]
    );
    let id = b["id"].as_str().unwrap();
    assert_eq!(
        b["links"]["versions"],
        s.url(&format!("/api/files/{id}?versions"))
    );
    assert_eq!(s.get("/api/files").status, 405);
}

#[test]
fn a_bucket_lists_live_heads_and_versions_with_and_without_delete_markers() {
    let s = Server::start();
    let b = s.bucket();
    assert_eq!(s.put(&format!("/api/files/{b}/b.txt"), b"one").status, 200);
    assert_eq!(s.put(&format!("/api/files/{b}/b.txt"), b"two").status, 200);
    assert_eq!(s.put(&format!("/api/files/{b}/a.txt"), b"aaa").status, 200);
    assert_eq!(s.delete(&format!("/api/files/{b}/a.txt")).status, 204);

    let list = s.get(&format!("/api/files/{b}")).json();
    assert_eq!(
        keys(&list),
        [
            "contents",
            "created",
            "id",
            "links",
            "locked",
            "max_file_size",
            "quota_size",
            "size",
            "updated"
        ]
    );
    let contents = list["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 1);
    assert_eq!(contents[0]["key"], "b.txt");

    let versions = s.get(&format!("/api/files/{b}?versions")).json();
    let v: Vec<(&str, bool)> = versions["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["key"].as_str().unwrap(), o["is_head"].as_bool().unwrap()))
        .collect();
    assert_eq!(v, [("a.txt", false), ("b.txt", true), ("b.txt", false)]);

    let all = s
        .get(&format!("/api/files/{b}?versions&with_deleted"))
        .json();
    let markers: Vec<bool> = all["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["delete_marker"].as_bool().unwrap())
        .collect();
    assert_eq!(markers, [true, false, false, false]);
    let marker = &all["contents"][0];
    assert!(marker.get("size").is_none() && marker.get("checksum").is_none());
    assert_eq!(keys(&marker["links"]), ["self", "version"]);
}

#[test]
fn bucket_head_is_empty_and_bad_or_unknown_ids_are_404() {
    let s = Server::start();
    let b = s.bucket();
    let h = s.call("HEAD", &format!("/api/files/{b}"), &[], b"");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-type"), Some("application/json"));
    let bad = s.get("/api/files/not-a-uuid");
    assert_eq!(bad.status, 404);
    assert_eq!(keys(&bad.json()), ["message", "status"]);
    let unknown = format!("/api/files/{}", BucketId::new());
    let r = s.get(&unknown);
    assert_eq!(
        r.text(),
        r#"{"status": 404, "message": "Bucket does not exist."}"#
    );
    let put = s.put(&format!("{unknown}/k"), b"x");
    assert_eq!(
        put.text(),
        r#"{"status": 404, "message": "Bucket does not exist."}"#
    );
}

#[test]
fn patch_locks_and_limits_a_bucket_and_delete_hides_it() {
    let s = Server::start();
    let b = s.bucket();
    let patch = |body: Value| {
        s.call(
            "PATCH",
            &format!("/api/files/{b}"),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let r = patch(json!({"quota_size": 10, "max_file_size": 6}));
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            r.json()["quota_size"].clone(),
            r.json()["max_file_size"].clone()
        ),
        (json!(10), json!(6))
    );
    let too_big = s.put(&format!("/api/files/{b}/x"), b"1234567");
    assert_eq!(too_big.status, 400);
    assert_eq!(too_big.json()["message"], "Maximum file size exceeded.");
    assert_eq!(
        patch(json!({"max_file_size": null})).json()["max_file_size"],
        Value::Null
    );
    let over_quota = s.put(&format!("/api/files/{b}/x"), b"12345678901");
    assert_eq!(over_quota.json()["message"], "Bucket quota exceeded.");

    assert_eq!(patch(json!({"locked": true})).json()["locked"], true);
    let locked = s.put(&format!("/api/files/{b}/x"), b"123");
    assert_eq!(locked.status, 403);
    assert_eq!(
        locked.text(),
        r#"{"status": 403, "message": "Bucket is locked for modifications."}"#
    );
    assert_eq!(patch(json!({"locked": "yes"})).status, 422);
    assert_eq!(patch(json!({"locked": false})).status, 200);
    assert_eq!(s.put(&format!("/api/files/{b}/x"), b"123").status, 200);

    assert_eq!(s.delete(&format!("/api/files/{b}")).status, 204);
    assert_eq!(s.get(&format!("/api/files/{b}")).status, 404);
    assert_eq!(s.get(&format!("/api/files/{b}/x")).status, 404);
    assert_eq!(s.put(&format!("/api/files/{b}/y"), b"123").status, 404);
}

// ---- objects ------------------------------------------------------------------------------------

#[test]
fn put_answers_the_object_with_an_md5_etag_and_get_head_send_the_file() {
    let s = Server::start();
    let b = s.bucket();
    let data = b"Hello, World";
    let put = s.put(&format!("/api/files/{b}/dir/hello.txt"), data);
    assert_eq!(put.status, 200);
    let md5 = md5_hex(data);
    assert_eq!(put.header("etag"), Some(format!("\"md5:{md5}\"").as_str()));
    let o = put.json();
    assert_eq!(o["checksum"], format!("md5:{md5}"));
    assert_eq!(
        (o["size"].clone(), o["is_head"].clone()),
        (json!(12), json!(true))
    );

    let get = s.get(&format!("/api/files/{b}/dir/hello.txt"));
    assert_eq!(get.status, 200);
    assert_eq!(get.body, data);
    assert_eq!(get.header("content-md5"), Some(md5.as_str()));
    assert_eq!(get.header("etag"), Some(format!("\"md5:{md5}\"").as_str()));
    assert_eq!(
        get.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(get.header("content-disposition"), Some("inline"));
    assert_eq!(get.header("cache-control"), Some("no-cache"));
    assert_eq!(get.header("accept-ranges"), Some("bytes"));
    assert_eq!(get.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        get.header("content-security-policy"),
        Some("default-src 'none';")
    );
    assert!(get.header("last-modified").is_some());

    let head = s.call("HEAD", &format!("/api/files/{b}/dir/hello.txt"), &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("12"));
    assert_eq!(head.header("etag"), get.header("etag"));

    let missing = s.get(&format!("/api/files/{b}/nope"));
    assert_eq!(
        missing.text(),
        r#"{"status": 404, "message": "Object does not exists."}"#
    );
}

#[test]
fn a_new_put_makes_a_version_and_version_id_reads_the_old_one() {
    let s = Server::start();
    let b = s.bucket();
    let v1 = s.put(&format!("/api/files/{b}/k"), b"first").json();
    s.put(&format!("/api/files/{b}/k"), b"second");
    let vid = v1["version_id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/api/files/{b}/k")).body, b"second");
    assert_eq!(
        s.get(&format!("/api/files/{b}/k?versionId={vid}")).body,
        b"first"
    );
    let bad = s.get(&format!("/api/files/{b}/k?versionId=nope"));
    assert_eq!(bad.status, 422);
    assert_eq!(
        bad.text(),
        r#"{"status": 422, "message": "Validation error.", "errors": [{"field": "versionId", "message": "Not a valid UUID."}]}"#
    );
    let other = s.get(&format!("/api/files/{b}/k?versionId={}", VersionId::new()));
    assert_eq!(other.status, 404);
}

#[test]
fn delete_makes_a_marker_and_version_id_delete_removes_one_version() {
    let s = Server::start();
    let b = s.bucket();
    let v1 = s.put(&format!("/api/files/{b}/k"), b"first").json();
    let d = s.delete(&format!("/api/files/{b}/k"));
    assert_eq!(d.status, 204);
    assert_eq!(d.header("content-type"), Some("application/json"));
    assert_eq!(s.get(&format!("/api/files/{b}/k")).status, 404);
    assert_eq!(s.delete(&format!("/api/files/{b}/k")).status, 404);
    // The marker by its version id: a clean 404, not Invenio's 500.
    let versions = s
        .get(&format!("/api/files/{b}?versions&with_deleted"))
        .json();
    let marker = versions["contents"][0]["version_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.get(&format!("/api/files/{b}/k?versionId={marker}"))
            .status,
        404
    );
    // Removing the marker brings the file back (Invenio's undelete).
    assert_eq!(
        s.delete(&format!("/api/files/{b}/k?versionId={marker}"))
            .status,
        204
    );
    assert_eq!(s.get(&format!("/api/files/{b}/k")).body, b"first");
    let vid = v1["version_id"].as_str().unwrap();
    assert_eq!(
        s.delete(&format!("/api/files/{b}/k?versionId={vid}"))
            .status,
        204
    );
    assert_eq!(s.get(&format!("/api/files/{b}/k")).status, 404);
    assert_eq!(s.get(&format!("/api/files/{b}")).json()["size"], 0);
}

#[test]
fn uploads_that_cannot_be_stored_are_refused_with_invenio_messages() {
    let s = Server::start();
    let b = s.bucket();
    assert_eq!(s.put(&format!("/api/files/{b}/empty"), b"").status, 400);
    let long = "k".repeat(2000);
    let r = s.put(&format!("/api/files/{b}/{long}"), b"x");
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (400, json!("Filename is too long."))
    );
    assert_eq!(s.post(&format!("/api/files/{b}/k"), b"").status, 403);
    assert_eq!(
        s.call("GET", &format!("/api/files/{b}/k?uploads"), &[], b"")
            .status,
        405
    );
    assert!(
        s.get(&format!("/api/files/{b}")).json()["contents"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn content_md5_is_verified_and_a_mismatch_stores_nothing() {
    let s = Server::start();
    let b = s.bucket();
    let data = b"checked bytes";
    let hex = md5_hex(data);
    let ok = s.call(
        "PUT",
        &format!("/api/files/{b}/hex"),
        &[("content-md5", &hex)],
        data,
    );
    assert_eq!(ok.status, 200);
    // RFC 1864: base64 of the digest.
    let raw: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let ok = s.call(
        "PUT",
        &format!("/api/files/{b}/b64"),
        &[("content-md5", &b64)],
        data,
    );
    assert_eq!(ok.status, 200);
    let bad = s.call(
        "PUT",
        &format!("/api/files/{b}/bad"),
        &[("content-md5", "00000000000000000000000000000000")],
        data,
    );
    assert_eq!(bad.status, 400);
    assert_eq!(s.get(&format!("/api/files/{b}/bad")).status, 404);
    assert!(s.store.check().unwrap().is_ok());
}

#[test]
fn tags_come_from_the_invenio_header_and_duplicates_are_refused() {
    let s = Server::start();
    let b = s.bucket();
    let r = s.call(
        "PUT",
        &format!("/api/files/{b}/t"),
        &[("x-invenio-file-tags", "a=1&b=two&empty=")],
        b"tagged",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["tags"], json!({"a": "1", "b": "two"}));
    let dup = s.call(
        "PUT",
        &format!("/api/files/{b}/d"),
        &[("x-invenio-file-tags", "a=1&a=2")],
        b"x",
    );
    assert_eq!(
        (dup.status, dup.json()["message"].clone()),
        (400, json!("Duplicate tag key"))
    );
}

/// A `multipart/form-data` body as a browser (ng-file-upload) sends it: text fields, then the
/// file as the field `file`.
fn form_body(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----recfilesFormBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn a_form_upload_stores_the_file_field_sized_by_total_size() {
    let s = Server::start();
    let b = s.bucket();
    // Invenio's test: ng-file-upload's chunk fields, `_totalSize=100` and a 100-byte file.
    let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(7)).collect();
    let (ct, body) = form_body(
        &[
            ("_chunkNumber", "0"),
            ("_currentChunkSize", "100"),
            ("_chunkSize", "100"),
            ("_totalSize", "100"),
        ],
        &data,
    );
    let r = s.call(
        "PUT",
        &format!("/api/files/{b}/form.bin"),
        &[("content-type", &ct)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["size"], 100);
    assert_eq!(r.json()["checksum"], format!("md5:{}", md5_hex(&data)));
    assert_eq!(s.get(&format!("/api/files/{b}/form.bin")).body, data);
}

#[test]
fn form_uploads_without_total_size_or_file_or_of_the_wrong_size_store_nothing() {
    let s = Server::start();
    let b = s.bucket();
    let form = |fields: &[(&str, &str)], file: &[u8]| {
        let (ct, body) = form_body(fields, file);
        s.call(
            "PUT",
            &format!("/api/files/{b}/f"),
            &[("content-type", &ct)],
            &body,
        )
    };
    assert_eq!(form(&[], b"abc").status, 400);
    let short = form(&[("_totalSize", "10")], b"abc");
    assert_eq!(
        (short.status, short.json()["message"].clone()),
        (400, json!("File is smaller than expected."))
    );
    let long = form(&[("_totalSize", "2")], b"abc");
    assert_eq!(
        (long.status, long.json()["message"].clone()),
        (400, json!("File is bigger than expected."))
    );
    // A form with no `file` field.
    let (ct, _) = form_body(&[], b"");
    let no_file = s.call(
        "PUT",
        &format!("/api/files/{b}/f"),
        &[("content-type", &ct)],
        b"------recfilesFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; \
          name=\"_totalSize\"\r\n\r\n3\r\n------recfilesFormBoundary7MA4YWxkTrZu0gW--\r\n",
    );
    assert_eq!(no_file.status, 400, "{}", no_file.text());
    // A body cut inside the file.
    let (ct, body) = form_body(&[("_totalSize", "3")], b"abc");
    let cut = s.call(
        "PUT",
        &format!("/api/files/{b}/f"),
        &[("content-type", &ct)],
        &body[..body.len() - 50],
    );
    assert_eq!(cut.status, 400, "{}", cut.text());
    // The quota is checked against `_totalSize` before the file is read.
    s.call(
        "PATCH",
        &format!("/api/files/{b}"),
        &[("content-type", "application/json")],
        br#"{"quota_size": 5}"#,
    );
    let over = form(&[("_totalSize", "6")], b"abcdef");
    assert_eq!(over.json()["message"], "Bucket quota exceeded.");
    assert_eq!(s.get(&format!("/api/files/{b}/f")).status, 404);
    assert_eq!(s.store.bucket(b.parse().unwrap()).unwrap().unwrap().size, 0);
    assert!(s.store.check().unwrap().is_ok());
}

#[test]
fn a_form_head_that_never_ends_is_refused_while_a_large_file_after_it_streams() {
    let s = Server::start();
    let b = s.bucket();
    // A part header with no end: the parser would keep it all waiting for its blank line.
    let boundary = "xyzzy";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ")
            .into_bytes();
    body.resize(body.len() + (3 << 20), b'a');
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "PUT /api/files/{b}/endless HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; \
         boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    let mut writer = c.try_clone().unwrap();
    // The server may answer and close before the body is all sent.
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let mut line = String::new();
    BufReader::new(c).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");
    let _ = sender.join();
    // A file of many MiB after short fields goes through: the cap ends where the file starts.
    let data: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 251) as u8).collect();
    let (ct, body) = form_body(&[("_totalSize", &data.len().to_string())], &data);
    let r = s.call(
        "PUT",
        &format!("/api/files/{b}/large"),
        &[("content-type", &ct)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["checksum"], format!("md5:{}", md5_hex(&data)));
    assert!(s.store.check().unwrap().is_ok());
}

#[test]
fn multipart_parts_can_be_sent_as_ng_file_upload_forms() {
    let s = Server::start();
    let b = s.bucket();
    let data: Vec<u8> = (0..25u8).collect();
    let mp = s
        .post(
            &format!("/api/files/{b}/chunked?uploads&size=25&partSize=10"),
            b"",
        )
        .json();
    let id = mp["id"].as_str().unwrap();
    let url = format!("/api/files/{b}/chunked?uploadId={id}");
    for n in 0..3usize {
        let chunk = &data[n * 10..(n * 10 + 10).min(25)];
        let (ct, body) = form_body(
            &[
                ("_chunkNumber", &n.to_string()),
                ("_currentChunkSize", &chunk.len().to_string()),
                ("_chunkSize", "10"),
                ("_totalSize", "25"),
            ],
            chunk,
        );
        let r = s.call("PUT", &url, &[("content-type", &ct)], &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["part_number"], n);
    }
    // A chunk size that is not the part's, or no chunk number: Invenio's messages.
    let (ct, body) = form_body(
        &[("_chunkNumber", "0"), ("_currentChunkSize", "9")],
        &data[..9],
    );
    let r = s.call("PUT", &url, &[("content-type", &ct)], &body);
    assert_eq!(r.json()["message"], "Invalid part size.");
    let (ct, body) = form_body(&[("_currentChunkSize", "10")], &data[..10]);
    let r = s.call("PUT", &url, &[("content-type", &ct)], &body);
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (400, json!("No upload part detected in request."))
    );
    assert_eq!(s.post(&url, b"").status, 200);
    assert_eq!(s.get(&format!("/api/files/{b}/chunked")).body, data);
}

#[test]
fn a_part_whose_content_md5_differs_is_refused_and_the_earlier_copy_stays() {
    let s = Server::start();
    let b = s.bucket();
    let mp = s
        .post(&format!("/api/files/{b}/p?uploads&size=8&partSize=4"), b"")
        .json();
    let id = mp["id"].as_str().unwrap();
    let part0 = format!("/api/files/{b}/p?uploadId={id}&partNumber=0");
    let ok = s.call(
        "PUT",
        &part0,
        &[("content-md5", &md5_hex(b"abcd"))],
        b"abcd",
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bad = s.call(
        "PUT",
        &part0,
        &[("content-md5", &md5_hex(b"abcd"))],
        b"wxyz",
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    let parts = s.get(&format!("/api/files/{b}/p?uploadId={id}")).json();
    assert_eq!(
        parts["parts"][0]["checksum"],
        format!("md5:{}", md5_hex(b"abcd"))
    );
    let part1 = format!("/api/files/{b}/p?uploadId={id}&partNumber=1");
    let bad = s.call(
        "PUT",
        &part1,
        &[("content-md5", &md5_hex(b"abcd"))],
        b"efgh",
    );
    assert_eq!(bad.status, 400);
    assert_eq!(
        s.get(&format!("/api/files/{b}/p?uploadId={id}")).json()["parts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(s.store.check().unwrap().is_ok());
}

// ---- downloads ----------------------------------------------------------------------------------

#[test]
fn single_ranges_give_206_and_unsatisfiable_ones_416() {
    let s = Server::start();
    let b = s.bucket();
    let data: Vec<u8> = (0..100u8).collect();
    s.put(&format!("/api/files/{b}/r.bin"), &data);
    let path = format!("/api/files/{b}/r.bin");
    let range = |v: &str| s.call("GET", &path, &[("range", v)], b"");
    let r = range("bytes=10-19");
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 10-19/100"))
    );
    assert_eq!(r.body, &data[10..20]);
    let r = range("bytes=-5");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[95..]));
    let r = range("bytes=90-1000");
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 90-99/100"))
    );
    for bad in ["bytes=100-", "bytes=invalid", "bytes=5-1"] {
        let r = range(bad);
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(r.header("content-range"), Some("bytes */100"));
    }
}

#[test]
fn conditional_requests_answer_304() {
    let s = Server::start();
    let b = s.bucket();
    let put = s.put(&format!("/api/files/{b}/c.txt"), b"cached");
    let etag = put.header("etag").unwrap().to_string();
    let path = format!("/api/files/{b}/c.txt");
    let r = s.call("GET", &path, &[("if-none-match", &etag)], b"");
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(
        s.call("GET", &path, &[("if-none-match", "\"md5:0\"")], b"")
            .status,
        200
    );
    let modified = s.get(&path).header("last-modified").unwrap().to_string();
    assert_eq!(
        s.call("GET", &path, &[("if-modified-since", &modified)], b"")
            .status,
        304
    );
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    assert_eq!(
        s.call("GET", &path, &[("if-modified-since", old)], b"")
            .status,
        200
    );
}

#[test]
fn mimetypes_are_sanitised_and_attachments_are_named_per_rfc_6266() {
    let s = Server::start();
    let b = s.bucket();
    for key in ["page.html", "doc.pdf", "README", "żółć.dat", "img.png"] {
        s.put(
            &format!(
                "/api/files/{b}/{}",
                key.replace('ż', "%C5%BC")
                    .replace('ó', "%C3%B3")
                    .replace('ł', "%C5%82")
                    .replace('ć', "%C4%87")
            ),
            b"<b>x</b>",
        );
    }
    let get = |k: &str| s.get(&format!("/api/files/{b}/{k}"));
    let html = get("page.html");
    assert_eq!(
        html.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(html.header("content-disposition"), Some("inline"));
    let pdf = get("doc.pdf");
    assert_eq!(pdf.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        pdf.header("content-disposition"),
        Some("attachment; filename=doc.pdf")
    );
    assert_eq!(
        get("README").header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(get("img.png").header("content-type"), Some("image/png"));
    let folded = get("%C5%BC%C3%B3%C5%82%C4%87.dat");
    assert_eq!(
        folded.header("content-disposition"),
        Some("attachment; filename=zoc.dat; filename*=UTF-8''%C5%BC%C3%B3%C5%82%C4%87.dat")
    );
    let forced = s.get(&format!("/api/files/{b}/img.png?download"));
    assert_eq!(
        forced.header("content-disposition"),
        Some("attachment; filename=img.png")
    );
}

#[test]
fn accept_is_negotiated_and_prettyprint_indents() {
    let s = Server::start();
    let b = s.bucket();
    let r = s.call(
        "GET",
        &format!("/api/files/{b}"),
        &[("accept", "text/html")],
        b"",
    );
    assert_eq!(r.status, 406);
    let ok = s.call(
        "GET",
        &format!("/api/files/{b}"),
        &[("accept", "application/json")],
        b"",
    );
    assert_eq!(ok.status, 200);
    assert!(!ok.text().contains('\n'));
    let pretty = s.get(&format!("/api/files/{b}?prettyprint=1"));
    assert!(pretty.text().starts_with("{\n  \""), "{}", pretty.text());
}

// ---- multipart -----------------------------------------------------------------------------------

fn multipart_roundtrip(s: &Server, base: &str) {
    let data: Vec<u8> = (0..40u8).collect();
    // Missing size: Invenio's message.
    let missing = s.post(&format!("{base}/big.bin?uploads&partSize=10"), b"");
    assert_eq!(
        missing.text(),
        r#"{"status": 400, "message": "Missing required query argument 'size'"}"#
    );
    // An exact multiple of the part size completes (Invenio cannot).
    let init = s.post(&format!("{base}/big.bin?uploads&size=40&partSize=10"), b"");
    assert_eq!(init.status, 200, "{}", init.text());
    let mp = init.json();
    assert_eq!(
        keys(&mp),
        [
            "bucket",
            "completed",
            "created",
            "id",
            "key",
            "last_part_number",
            "last_part_size",
            "links",
            "part_size",
            "size",
            "updated"
        ]
    );
    assert!(mp["links"].get("bucket").is_some());
    let id = mp["id"].as_str().unwrap();
    let wrong = s.put(
        &format!("{base}/big.bin?uploadId={id}&partNumber=0"),
        &data[..5],
    );
    assert_eq!(
        (wrong.status, wrong.json()["message"].clone()),
        (400, json!("Invalid part size."))
    );
    let past = s.put(
        &format!("{base}/big.bin?uploadId={id}&partNumber=9"),
        &data[..10],
    );
    assert_eq!(past.json()["message"], "Invalid part number.");
    for n in [3usize, 0, 2, 1] {
        let p = s.put(
            &format!("{base}/big.bin?uploadId={id}&partNumber={n}"),
            &data[n * 10..n * 10 + 10],
        );
        assert_eq!(p.status, 200, "{}", p.text());
        assert_eq!(
            keys(&p.json()),
            [
                "checksum",
                "created",
                "end_byte",
                "part_number",
                "start_byte",
                "updated"
            ]
        );
        assert_eq!(
            p.header("etag"),
            Some(format!("\"md5:{}\"", md5_hex(&data[n * 10..n * 10 + 10])).as_str())
        );
    }
    let parts = s.get(&format!("{base}/big.bin?uploadId={id}")).json();
    assert_eq!(parts["parts"].as_array().unwrap().len(), 4);
    let uploads = s.get(&format!("{base}?uploads")).json();
    assert_eq!(uploads.as_array().unwrap().len(), 1);
    let done = s.post(&format!("{base}/big.bin?uploadId={id}"), b"");
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["completed"], true);
    assert!(
        done.json()["links"]["object_version"]
            .as_str()
            .unwrap()
            .contains("versionId=")
    );
    assert_eq!(s.get(&format!("{base}/big.bin")).body, data);
    assert_eq!(
        s.get(&format!("{base}/big.bin")).header("etag"),
        Some(format!("\"md5:{}\"", md5_hex(&data)).as_str())
    );
    // Abort: the session and its reservation go.
    let mp = s
        .post(
            &format!("{base}/gone.bin?uploads"),
            br#"{"size": 12, "partSize": 8}"#,
        )
        .json();
    let id = mp["id"].as_str().unwrap();
    assert_eq!(
        s.delete(&format!("{base}/gone.bin?uploadId={id}")).status,
        204
    );
    assert_eq!(s.get(&format!("{base}/gone.bin?uploadId={id}")).status, 404);
    assert_eq!(s.get(&format!("{base}/gone.bin?uploadId=x")).status, 422);
}

#[test]
fn the_multipart_protocol_works_through_bucket_urls() {
    let s = Server::start();
    let b = s.bucket();
    multipart_roundtrip(&s, &format!("/api/files/{b}"));
    assert!(s.store.check().unwrap().is_ok());
}

#[test]
fn the_multipart_protocol_works_through_record_urls_and_keeps_files_true() {
    let s = Server::start();
    s.record(json!({}));
    multipart_roundtrip(&s, "/api/records/1/files");
    let rec = s.get("/api/records/1").json();
    let files: Vec<&str> = rec["metadata"]["_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["big.bin"]);
    assert!(s.store.check().unwrap().is_ok());
}

// ---- records ----------------------------------------------------------------------------------

#[test]
fn records_are_created_read_replaced_and_deleted_with_revision_etags() {
    let s = Server::start();
    let rec = s.record(json!({"title": "a"}));
    assert_eq!(
        keys(&rec),
        ["created", "id", "links", "metadata", "revision", "updated"]
    );
    let bucket = rec["metadata"]["_bucket"].as_str().unwrap().to_string();
    let get = s.get("/api/records/1");
    assert_eq!(get.header("etag"), Some("\"0\""));
    assert_eq!(
        s.call("GET", "/api/records/1", &[("if-none-match", "\"0\"")], b"")
            .status,
        304
    );
    let body = json!({"title": "b"}).to_string();
    let json_ct = ("content-type", "application/json");
    let stale = s.call(
        "PUT",
        "/api/records/1",
        &[json_ct, ("if-match", "\"7\"")],
        body.as_bytes(),
    );
    assert_eq!(stale.status, 412);
    let put = s.call(
        "PUT",
        "/api/records/1",
        &[json_ct, ("if-match", "\"0\"")],
        body.as_bytes(),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.header("etag"), Some("\"1\""));
    assert_eq!(put.json()["metadata"]["title"], "b");
    // The server keeps the record's bucket even when the client leaves it out.
    assert_eq!(put.json()["metadata"]["_bucket"], bucket.as_str());
    assert_eq!(
        s.call("DELETE", "/api/records/1", &[("if-match", "\"0\"")], b"")
            .status,
        412
    );
    assert_eq!(s.delete("/api/records/1").status, 204);
    let gone = s.get("/api/records/1");
    assert_eq!(
        (gone.status, gone.json()["message"].clone()),
        (410, json!("PID has been deleted."))
    );
    assert_eq!(s.get("/api/records/1/files").status, 410);
    assert_eq!(s.get("/api/records/99").status, 404);
    assert_eq!(s.post("/api/records", b"[1]").status, 400);
}

#[test]
fn a_redirected_pid_answers_301_to_the_same_url_with_the_new_pid() {
    let s = Server::start();
    s.record(json!({"title": "old"}));
    s.record(json!({"title": "new"}));
    assert_eq!(s.put("/api/records/2/files/a.txt", b"moved").status, 200);
    s.store
        .write(|tx| {
            tx.redirect_pid(recfiles::RECID, "1", recfiles::RECID, "2")?;
            Ok(())
        })
        .unwrap();
    for (from, to) in [
        ("/api/records/1", "/api/records/2"),
        ("/api/records/1/files", "/api/records/2/files"),
        (
            "/api/records/1/files/a.txt?download",
            "/api/records/2/files/a.txt?download",
        ),
        ("/records/1/files/a.txt", "/records/2/files/a.txt"),
    ] {
        let r = s.get(from);
        assert_eq!(r.status, 301, "{from}: {}", r.text());
        assert_eq!(r.header("location"), Some(s.url(to).as_str()), "{from}");
    }
    assert_eq!(s.get("/api/records/2/files/a.txt").body, b"moved");
}

#[test]
fn a_record_without_a_bucket_has_no_files_resource() {
    let s = Server::start();
    let r = s.post("/api/records?with_bucket=false", b"{}");
    assert_eq!(r.status, 201);
    assert!(r.json()["metadata"].get("_bucket").is_none());
    assert!(r.json()["links"].get("files").is_none());
    assert_eq!(s.get("/api/records/1/files").status, 404);
    assert_eq!(s.put("/api/records/1/files/a.txt", b"x").status, 404);
}

#[test]
fn records_are_listed_in_recid_order_page_by_page() {
    let s = Server::start();
    for i in 0..12 {
        s.record(json!({"n": i}));
    }
    s.delete("/api/records/3");
    let mut seen = Vec::new();
    let mut next = Some(s.url("/api/records?size=5"));
    while let Some(url) = next {
        let path = url.strip_prefix(&s.url("")).unwrap().to_string();
        let page = s.get(&path).json();
        // Every page counts all the live records, as Invenio's search does.
        assert_eq!(keys(&page), ["aggregations", "hits", "links"]);
        assert_eq!(page["hits"]["total"], 11);
        for hit in page["hits"]["hits"].as_array().unwrap() {
            seen.push(hit["id"].as_str().unwrap().parse::<u64>().unwrap());
        }
        next = page["links"]["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen, [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
}

#[test]
fn record_files_are_deleted_through_record_urls_and_the_download_view_serves_them() {
    let s = Server::start();
    s.record(json!({}));
    s.put("/api/records/1/files/a.txt", b"aaa");
    s.put("/api/records/1/files/b.txt", b"bbb");
    let view = s.get("/records/1/files/a.txt");
    assert_eq!((view.status, view.body.as_slice()), (200, &b"aaa"[..]));
    assert_eq!(view.header("content-disposition"), Some("inline"));
    let dl = s.get("/records/1/files/a.txt?download");
    assert_eq!(
        dl.header("content-disposition"),
        Some("attachment; filename=a.txt")
    );
    assert_eq!(s.delete("/api/records/1/files/a.txt").status, 204);
    let files = s.get("/api/records/1").json()["metadata"]["_files"].clone();
    assert_eq!(files.as_array().unwrap().len(), 1);
    assert_eq!(files[0]["key"], "b.txt");
    assert_eq!(s.get("/records/1/files/a.txt").status, 404);
}

#[test]
fn the_api_and_ui_prefixes_move_the_routes_their_links_and_the_document() {
    let s = Server::with(|_| Config {
        api_prefix: "/v2/".into(),
        ui_prefix: "/ui".into(),
        ..Config::default()
    });
    let rec = s.post("/v2/records", b"{}");
    assert_eq!(rec.status, 201, "{}", rec.text());
    assert_eq!(s.post("/api/records", b"{}").status, 404);
    let put = s.put("/v2/records/1/files/a.txt", b"prefixed");
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(
        put.json()["links"]["self"],
        s.url("/v2/records/1/files/a.txt")
    );
    assert_eq!(s.get("/ui/records/1/files/a.txt").body, b"prefixed");
    // The download view is only under the UI prefix.
    assert_eq!(s.get("/records/1/files/a.txt").status, 404);
    let doc = s.get("/v2/openapi.json").json();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/v2/files/{bucket}/{key}"));
    assert!(paths.contains_key("/ui/records/{pid}/files/{filename}"));
    assert!(!paths.keys().any(|p| p.starts_with("/api/")));
}

// ---- access control ----------------------------------------------------------------------------

#[test]
fn read_and_write_scopes_401_and_403() {
    let mut secrets = (String::new(), String::new());
    let s = Server::with(|store| {
        secrets.0 = store
            .create_token(TokenScope::Read, Some("reader"))
            .unwrap()
            .1;
        secrets.1 = store
            .create_token(TokenScope::Write, Some("writer"))
            .unwrap()
            .1;
        Config {
            access: Access::from_store(store).unwrap(),
            ..Config::default()
        }
    });
    let (r, w) = (secrets.0.as_str(), secrets.1.as_str());
    let auth = |t: &str| format!("Bearer {t}");
    let none = s.post("/api/files", b"");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert!(
        none.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("The server could not verify that you are authorized")
    );
    assert_eq!(
        s.call("POST", "/api/files", &[("authorization", &auth(r))], b"")
            .status,
        403
    );
    let made = s.call("POST", "/api/files", &[("authorization", &auth(w))], b"");
    assert_eq!(made.status, 200);
    let b = made.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.call(
            "GET",
            &format!("/api/files/{b}"),
            &[("authorization", &auth(r))],
            b""
        )
        .status,
        200
    );
    assert_eq!(s.get(&format!("/api/files/{b}")).status, 401);
    assert_eq!(
        s.get(&format!("/api/files/{b}?access_token={w}")).status,
        200
    );
    assert_eq!(
        s.call(
            "GET",
            "/api/records",
            &[("authorization", "Bearer rft_wrong")],
            b""
        )
        .status,
        401
    );
}

// ---- streaming, failures, concurrency ------------------------------------------------------------

#[test]
fn a_body_shorter_than_its_content_length_gets_400_and_stores_nothing() {
    let s = Server::start();
    let b = s.bucket();
    let req = format!(
        "PUT /api/files/{b}/short HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"
    );
    assert_eq!(raw_status(s.addr, req.as_bytes(), true), Some(400));
    assert_eq!(s.get(&format!("/api/files/{b}/short")).status, 404);
    assert!(s.store.check().unwrap().is_ok());
}

#[test]
fn a_declared_size_over_the_quota_is_refused_before_the_body_is_sent() {
    let s = Server::start();
    let b = s.bucket();
    s.call(
        "PATCH",
        &format!("/api/files/{b}"),
        &[("content-type", "application/json")],
        br#"{"quota_size": 100}"#,
    );
    // Headers only: the answer must not wait for the gigabyte announced.
    let req =
        format!("PUT /api/files/{b}/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
    assert_eq!(raw_status(s.addr, req.as_bytes(), false), Some(400));
}

#[test]
fn a_client_that_disconnects_mid_upload_leaves_nothing_behind() {
    let s = Server::start();
    let b = s.bucket();
    {
        let mut c = TcpStream::connect(s.addr).unwrap();
        let head = format!(
            "PUT /api/files/{b}/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&vec![7u8; 20 << 20]).unwrap();
    } // dropped: the connection closes 20 MiB into 50.
    // A graceful stop waits for the request in flight, so its outcome is final afterwards.
    let mut s = s;
    let store = s.store.clone();
    s.stop();
    assert!(
        store.check().unwrap().is_ok(),
        "{:?}",
        store.check().unwrap()
    );
    assert!(store.object(b.parse().unwrap(), "cut").unwrap().is_none());
    assert_eq!(store.bucket(b.parse().unwrap()).unwrap().unwrap().size, 0);
}
#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let s = Server::start();
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"GET /api/records HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    // The server closes the connection (after at most a 408) once the 1 s timeout passes.
    let _ = c.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    // The server still serves others.
    assert_eq!(s.get("/api/records").status, 200);
}

#[test]
fn connections_over_the_cap_wait_until_one_closes() {
    let s = Server::with_options(|_| Config::default(), 1);
    let req = b"GET /api/records HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = TcpStream::connect(s.addr).unwrap();
    first.write_all(req).unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // The first connection stays open (keep-alive): the second is accepted by the kernel but
    // not served while it lasts.
    let mut second = TcpStream::connect(s.addr).unwrap();
    second.write_all(req).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let waiting = second.read(&mut buf);
    assert!(waiting.is_err(), "served beyond the cap: {waiting:?}");
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    second.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
}

#[test]
fn concurrent_clients_upload_and_read_back_their_files() {
    let s = Server::start();
    let b = s.bucket();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let s = &s;
            let b = &b;
            scope.spawn(move || {
                for i in 0..10 {
                    let data = format!("client {t} file {i}").repeat(50 + i);
                    let path = format!("/api/files/{b}/c{t}/f{i}");
                    assert_eq!(s.put(&path, data.as_bytes()).status, 200);
                    assert_eq!(s.get(&path).body, data.as_bytes());
                }
            });
        }
    });
    let n = s.get(&format!("/api/files/{b}")).json()["contents"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n, 80);
    assert!(s.store.check().unwrap().is_ok());
}

#[test]
fn a_large_upload_streams_through_staging_and_downloads_intact() {
    let s = Server::start();
    let b = s.bucket();
    let data: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let put = s.put(&format!("/api/files/{b}/big"), &data);
    assert_eq!(put.status, 200);
    assert_eq!(put.json()["checksum"], format!("md5:{}", md5_hex(&data)));
    let get = s.get(&format!("/api/files/{b}/big"));
    assert_eq!(get.body.len(), data.len());
    assert!(get.body == data);
    let r = s.call(
        "GET",
        &format!("/api/files/{b}/big"),
        &[("range", "bytes=20000000-20065535")],
        b"",
    );
    assert_eq!(r.body, &data[20_000_000..20_065_536]);
}

// ---- the binary ---------------------------------------------------------------------------------

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `recfiles serve` on a free loopback port and returns it with its address.
fn spawn_binary(
    store: &std::path::Path,
    extra: &[&str],
) -> (Child, SocketAddr, BufReader<std::process::ChildStderr>) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_recfiles"))
        .args(["serve", "--store"])
        .arg(store)
        .args(["--bind", "127.0.0.1:0", "--log", "info"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let mut err = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the server exited before listening"
        );
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (child, addr, err);
        }
    }
}

#[test]
fn the_binary_applies_its_part_limit_and_prefix_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr, _log) = spawn_binary(
        &dir.path().join("s.redb"),
        &[
            "--part-min",
            "4",
            "--part-max",
            "16",
            "--max-parts",
            "3",
            "--api-prefix",
            "/v1",
        ],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let call = |method: &str, path: &str, body: &[u8]| {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .body(body.to_vec())
            .unwrap();
        let mut r = agent.run(req).unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        (r.status().as_u16(), text)
    };
    let (status, text) = call("POST", "/v1/files", b"");
    assert_eq!(status, 200, "{text}");
    let b: Value = serde_json::from_str(&text).unwrap();
    let base = format!("/v1/files/{}/k", b["id"].as_str().unwrap());
    for (query, message) in [
        ("size=20&partSize=3", "Invalid part size."),
        ("size=20&partSize=17", "Invalid part size."),
        ("size=100&partSize=10", "Invalid file size."),
        ("size=4&partSize=4", "Invalid file size."),
    ] {
        let (status, text) = call("POST", &format!("{base}?uploads&{query}"), b"");
        assert_eq!(status, 400, "{query}: {text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["message"],
            message
        );
    }
    let (status, text) = call("POST", &format!("{base}?uploads&size=20&partSize=8"), b"");
    assert_eq!(status, 200, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (n, part) in [&b"abcdefgh"[..], b"ijklmnop", b"qrst"].iter().enumerate() {
        let (status, text) = call("PUT", &format!("{base}?uploadId={id}&partNumber={n}"), part);
        assert_eq!(status, 200, "part {n}: {text}");
    }
    assert_eq!(call("POST", &format!("{base}?uploadId={id}"), b"").0, 200);
    assert_eq!(
        call("GET", &base, b""),
        (200, "abcdefghijklmnopqrst".into())
    );
    assert_eq!(call("POST", "/api/files", b"").0, 404);
}

#[test]
fn sigterm_stops_the_binary_cleanly_so_the_next_open_needs_no_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (mut child, addr, mut err) = spawn_binary(&path, &[]);
    let req =
        "POST /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_status(addr, req.as_bytes(), false), Some(200));
    unsafe_sigterm(child.0.id());
    assert!(child.0.wait().unwrap().success());
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("the store is closed"), "{rest}");
    let repaired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = repaired.clone();
    let store = StoreBuilder::new()
        .on_repair(move |_| flag.store(true, std::sync::atomic::Ordering::SeqCst))
        .open(&path)
        .unwrap();
    assert!(!repaired.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(store.buckets().unwrap().len(), 1);
}

#[test]
fn a_server_killed_mid_upload_leaves_a_store_that_opens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (mut child, addr, _err) = spawn_binary(&path, &[]);
    let req =
        "POST /api/files HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let bucket = resp.split("\"id\":\"").nth(1).unwrap()[..36].to_string();
    let mut up = TcpStream::connect(addr).unwrap();
    let head = format!(
        "PUT /api/files/{bucket}/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
    );
    up.write_all(head.as_bytes()).unwrap();
    up.write_all(&vec![1u8; 40 << 20]).unwrap();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let store = Store::open(&path).unwrap();
    assert!(store.check().unwrap().is_ok());
    assert!(
        store
            .object(bucket.parse().unwrap(), "k")
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_public_bind_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recfiles"))
        .args(["serve", "--store"])
        .arg(dir.path().join("s.redb"))
        .args(["--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recfiles token create"), "{err}");
}

#[test]
fn token_commands_create_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.redb");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_recfiles"))
            .args(args)
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap()
    };
    let created = run(&["token", "create", "--scope", "write", "--name", "ci"]);
    assert!(created.status.success());
    let secret = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(secret.starts_with("rft_"));
    let listed = run(&["token", "list", "--json"]);
    let doc: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let line = &doc["tokens"][0];
    assert_eq!(
        (line["name"].clone(), line["scope"].clone()),
        (json!("ci"), json!("write"))
    );
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&secret));
    let id = line["id"].as_str().unwrap();
    assert!(run(&["token", "revoke", id]).status.success());
    assert!(run(&["token", "list"]).stdout.is_empty());
}

fn unsafe_sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The locations of the store's buckets, sorted.
fn bucket_locations(store: &Store) -> Vec<String> {
    let mut found: Vec<String> = store
        .buckets()
        .unwrap()
        .into_iter()
        .map(|b| b.location)
        .collect();
    found.sort();
    found
}

fn with_archive_location(store: &Store) {
    store
        .write(|tx| tx.create_location("archive", "file:///srv/archive", false))
        .unwrap();
}

#[test]
fn buckets_created_over_http_go_to_the_servers_location() {
    let s = Server::with(|store| {
        with_archive_location(store);
        Config {
            bucket_location: Some("archive".into()),
            ..Config::default()
        }
    });
    let b = s.bucket();
    let rec = s.record(json!({"title": "t"}));
    assert_eq!(bucket_locations(&s.store), ["archive", "archive"]);
    // Both are ordinary buckets for the rest of the API.
    assert_eq!(s.put(&format!("/api/files/{b}/k"), b"bytes").status, 200);
    assert_eq!(s.get(&format!("/api/files/{b}/k")).body, b"bytes");
    let recid = rec["id"].as_str().unwrap();
    let r = s.put(&format!("/api/records/{recid}/files/f"), b"more");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn post_files_ignores_its_body_and_uses_the_default_location() {
    let s = Server::with(|store| {
        with_archive_location(store);
        Config::default()
    });
    let r = s.post("/api/files", br#"{"location": "archive"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    s.record(json!({}));
    assert_eq!(bucket_locations(&s.store), ["default", "default"]);
}

#[test]
fn the_binary_creates_buckets_in_its_location_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path).unwrap();
        with_archive_location(&store);
        store.close().unwrap();
    }
    let (mut child, addr, _err) = spawn_binary(&path, &["--location", "archive"]);
    let post = |path: &str| {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        raw_status(addr, req.as_bytes(), false)
    };
    assert_eq!(post("/api/files"), Some(200));
    assert_eq!(post("/api/records"), Some(201));
    unsafe_sigterm(child.0.id());
    assert!(child.0.wait().unwrap().success());
    let store = Store::open(&path).unwrap();
    assert_eq!(bucket_locations(&store), ["archive", "archive"]);
    store.close().unwrap();

    // An unknown location: one line, the server never listens, nothing is created.
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_recfiles"))
            .args(["serve", "--store"])
            .arg(&path)
            .args(["--bind", "127.0.0.1:0", "--location", "nowhere"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = String::new();
    for line in BufReader::new(child.0.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        // A server that starts anyway fails the test here rather than hang it.
        assert!(!line.contains("http://"), "it served: {line}");
        err.push_str(&line);
        err.push('\n');
    }
    assert!(!child.0.wait().unwrap().success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nowhere"), "{err}");
    let store = Store::open(&path).unwrap();
    assert_eq!(bucket_locations(&store).len(), 2);
}
