//! The Invenio-schema SQLite baseline shared by the ingest and concurrent benches: SQLite holding
//! Invenio's own tables for the work recfiles does when it creates a record with one file.
//!
//! Per record, one transaction (or one of many in a batch) inserts the record
//! (`records_metadata`), its first history row (`records_metadata_version`), its bucket
//! (`files_bucket`), the record-bucket link (`records_buckets`), the file (`files_files`) and its
//! object version (`files_object`), with the indexes Invenio declares on them; WAL,
//! `synchronous=FULL`, a 64 MiB cache. Invenio keeps the file's bytes on the filesystem; here
//! they go in the `files_files` row, so the whole record is durable in the one commit, as in
//! recfiles (this favours SQLite: one sync instead of a file's and the database's).

use rusqlite::{Connection, params};
use std::path::Path;
use std::time::Duration;

pub const INVENIO_SCHEMA: &str = "
CREATE TABLE records_metadata (id TEXT PRIMARY KEY, json TEXT, created TEXT NOT NULL,
    updated TEXT NOT NULL, version_id INTEGER NOT NULL);
CREATE TABLE records_metadata_version (id TEXT NOT NULL, json TEXT, created TEXT,
    updated TEXT, version_id INTEGER NOT NULL, transaction_id INTEGER NOT NULL,
    end_transaction_id INTEGER, operation_type INTEGER NOT NULL,
    PRIMARY KEY (id, transaction_id));
CREATE INDEX ix_records_metadata_version_transaction_id
    ON records_metadata_version (transaction_id);
CREATE INDEX ix_records_metadata_version_end_transaction_id
    ON records_metadata_version (end_transaction_id);
CREATE INDEX ix_records_metadata_version_operation_type
    ON records_metadata_version (operation_type);
CREATE TABLE files_bucket (id TEXT PRIMARY KEY, default_location INTEGER NOT NULL,
    default_storage_class TEXT NOT NULL, size INTEGER NOT NULL, quota_size INTEGER,
    max_file_size INTEGER, locked INTEGER NOT NULL, deleted INTEGER NOT NULL,
    created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE records_buckets (record_id TEXT NOT NULL REFERENCES records_metadata (id),
    bucket_id TEXT NOT NULL REFERENCES files_bucket (id), PRIMARY KEY (record_id, bucket_id));
CREATE TABLE files_files (id TEXT PRIMARY KEY, uri TEXT UNIQUE, storage_class TEXT,
    size INTEGER, checksum TEXT, readable INTEGER NOT NULL, writable INTEGER NOT NULL,
    last_check_at TEXT, last_check INTEGER NOT NULL, created TEXT NOT NULL,
    updated TEXT NOT NULL, content BLOB);
CREATE TABLE files_object (bucket_id TEXT NOT NULL REFERENCES files_bucket (id),
    key TEXT NOT NULL, version_id TEXT NOT NULL UNIQUE, file_id TEXT REFERENCES files_files (id),
    _mimetype TEXT, is_head INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY (bucket_id, key, version_id));
CREATE INDEX ix_files_object__mimetype ON files_object (_mimetype);
";

/// A connection to the database at `path` (WAL, `synchronous=FULL`, 64 MiB cache).
pub fn connection(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "cache_size", -65536)?;
    c.busy_timeout(Duration::from_secs(60))?;
    Ok(c)
}

/// A new database at `path` with Invenio's tables, and a connection to it.
pub fn create(path: &Path) -> rusqlite::Result<Connection> {
    let c = connection(path)?;
    c.execute_batch(INVENIO_SCHEMA)?;
    Ok(c)
}

/// Inserts the rows of record number `i` with its one file `payload`, inside the caller's
/// transaction (`thread` goes into the body, as in recfiles' records).
pub fn insert_record(
    tx: &rusqlite::Transaction<'_>,
    i: usize,
    thread: usize,
    payload: &[u8],
) -> rusqlite::Result<()> {
    let now = "2026-12-07T12:00:00.000000";
    let (record, bucket, file, version) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let size = payload.len() as i64;
    let body = serde_json::json!({"title": format!("record {i}"), "thread": thread,
        "_bucket": bucket,
        "_files": [{"key": "data.bin", "bucket": bucket, "version_id": version,
                    "file_id": file, "size": size, "checksum": "md5:0"}]})
    .to_string();
    tx.prepare_cached("INSERT INTO records_metadata VALUES (?1, ?2, ?3, ?3, 1)")?
        .execute(params![record, body, now])?;
    tx.prepare_cached(
        "INSERT INTO records_metadata_version VALUES (?1, ?2, ?3, ?3, 1, ?4, NULL, 0)",
    )?
    .execute(params![record, body, now, i as i64])?;
    tx.prepare_cached(
        "INSERT INTO files_bucket VALUES (?1, 1, 'S', ?2, NULL, NULL, 0, 0, ?3, ?3)",
    )?
    .execute(params![bucket, size, now])?;
    tx.prepare_cached("INSERT INTO records_buckets VALUES (?1, ?2)")?
        .execute(params![record, bucket])?;
    tx.prepare_cached(
        "INSERT INTO files_files VALUES (?1, ?2, 'S', ?3, 'md5:0', 1, 0, NULL, 1, ?4, ?4, ?5)",
    )?
    .execute(params![file, format!("/data/{file}"), size, now, payload])?;
    tx.prepare_cached(
        "INSERT INTO files_object VALUES (?1, 'data.bin', ?2, ?3, 'application/octet-stream', 1, ?4, ?4)",
    )?
    .execute(params![bucket, version, file, now])?;
    Ok(())
}
