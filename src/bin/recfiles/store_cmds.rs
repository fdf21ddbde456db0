//! The subcommands that work on a store file directly: ingest, browse, change, maintain.
//!
//! Every command returns `Err(line)` for a failure the user must see (printed as one line on
//! stderr by `main`), or the exit code it chose (ingest and verify report partial failures
//! through it).

use clap::{Args, Subcommand};
use recfiles::{
    BucketId, BucketOptions, FilesQuery, FixityReport, ListOptions, ObjectVersion, PutOptions,
    Record, RecordId, RecordListOptions, Store, StoreBuilder, VersionId,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// The store file option shared by every command.
#[derive(Args)]
pub struct StoreArg {
    /// The store file.
    #[arg(long, default_value = "./recfiles.redb")]
    store: PathBuf,
}

/// Commands on the store's content.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Store files or directory trees (keys: paths relative to each argument, `/`-separated).
    Ingest(IngestArgs),
    /// List buckets; a bucket's objects (`BUCKET`); a record's files (`recid:N`).
    Ls {
        #[command(flatten)]
        store: StoreArg,
        /// A bucket id or `recid:N`; none lists the buckets.
        target: Option<String>,
        /// Every version, newest first within a key.
        #[arg(long)]
        versions: bool,
        /// Include delete markers.
        #[arg(long)]
        deleted: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Write a file's content to stdout. `LOC` is `BUCKET/KEY` or `recid:N/KEY`.
    Cat {
        #[command(flatten)]
        store: StoreArg,
        /// `BUCKET/KEY` or `recid:N/KEY`.
        loc: String,
        /// That version instead of the head.
        #[arg(long)]
        version: Option<String>,
    },
    /// Write a file's content to a file (default: the key's last segment, here).
    Get {
        #[command(flatten)]
        store: StoreArg,
        /// `BUCKET/KEY` or `recid:N/KEY`.
        loc: String,
        /// The file to write.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// That version instead of the head.
        #[arg(long)]
        version: Option<String>,
    },
    /// Store one file (or stdin) as the new head of a key.
    Put {
        #[command(flatten)]
        store: StoreArg,
        /// `BUCKET/KEY` or `recid:N/KEY`.
        loc: String,
        /// The file to read; stdin when absent.
        file: Option<PathBuf>,
    },
    /// Delete a key (a delete marker; older versions stay and can be restored).
    Rm {
        #[command(flatten)]
        store: StoreArg,
        /// `BUCKET/KEY` or `recid:N/KEY`.
        loc: String,
    },
    /// Make an older version of a key its head again.
    Restore {
        #[command(flatten)]
        store: StoreArg,
        /// `BUCKET/KEY` or `recid:N/KEY`.
        loc: String,
        /// The version to restore (`ls --versions` shows them).
        #[arg(long)]
        version: String,
    },
    /// List the records; with a recid, show one with its revisions.
    Records {
        #[command(flatten)]
        store: StoreArg,
        /// A recid (`N` or `recid:N`).
        recid: Option<String>,
        /// Include soft-deleted records.
        #[arg(long)]
        deleted: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Count what the store holds, and what dedup saved.
    Stats {
        #[command(flatten)]
        store: StoreArg,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash stored content (fixity); exits non-zero and names the files when any is damaged.
    /// Each file's result is recorded in the store (its `last_check` and `last_check_at`, as
    /// Invenio's fixity task does, so scheduled runs know what is due); `--no-record` opens
    /// the store read-only and records nothing.
    Verify {
        #[command(flatten)]
        store: StoreArg,
        /// Only the files of this bucket.
        #[arg(long)]
        bucket: Option<String>,
        /// Open the store read-only and record no result.
        #[arg(long)]
        no_record: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Reclaim free space in the store file, reporting its size before and after.
    Compact {
        #[command(flatten)]
        store: StoreArg,
    },
    /// Write everything (all revisions, versions, tags, ids, timestamps) to a new directory:
    /// an OCFL 1.1 storage root, one object per record and per bucket without a record.
    Export {
        #[command(flatten)]
        store: StoreArg,
        /// The directory to create.
        dir: PathBuf,
    },
    /// Read an export back into the store (created if missing), exactly as it was exported;
    /// all of it or, on any damage or clash with what the store holds, nothing.
    Import {
        #[command(flatten)]
        store: StoreArg,
        /// The export's directory.
        dir: PathBuf,
    },
}

/// Arguments of `ingest`.
#[derive(Args)]
pub struct IngestArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Files or directories to store.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Into this bucket (default: a new bucket).
    #[arg(long, conflicts_with_all = ["record", "new_record"])]
    bucket: Option<String>,
    /// Into this record's files (`N` or `recid:N`).
    #[arg(long, conflicts_with = "new_record")]
    record: Option<String>,
    /// Into the files of a new record (minted a recid).
    #[arg(long)]
    new_record: bool,
    /// The new record's JSON body.
    #[arg(long, requires = "new_record")]
    metadata: Option<String>,
    /// The location of the new bucket (or the new record's bucket), by name: e.g. one whose
    /// content lives on an S3-compatible cluster (a binary built with the `s3` feature).
    /// Default: the store's default location.
    #[arg(long, conflicts_with_all = ["bucket", "record"])]
    location: Option<String>,
    /// Files read and stored at once (small files are also committed together, up to 256 or
    /// 4 MiB per commit; each file is still all there or absent).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Print one line per stored file (`stored<TAB>KEY<TAB>SIZE`) as soon as it is durable.
    #[arg(short, long)]
    verbose: bool,
    /// Print the summary as one JSON document.
    #[arg(long)]
    json: bool,
}

/// Runs one command.
pub fn run(command: StoreCommand) -> Result<ExitCode, String> {
    match command {
        StoreCommand::Ingest(args) => ingest(args),
        StoreCommand::Ls {
            store,
            target,
            versions,
            deleted,
            json,
        } => ls(
            &read_only(&store.store)?,
            target.as_deref(),
            versions,
            deleted,
            json,
        ),
        StoreCommand::Cat {
            store,
            loc,
            version,
        } => cat(&read_only(&store.store)?, &loc, version.as_deref()),
        StoreCommand::Get {
            store,
            loc,
            output,
            version,
        } => get(&read_only(&store.store)?, &loc, output, version.as_deref()),
        StoreCommand::Put { store, loc, file } => put(&writable(&store.store)?, &loc, file),
        StoreCommand::Rm { store, loc } => rm(&writable(&store.store)?, &loc),
        StoreCommand::Restore {
            store,
            loc,
            version,
        } => restore(&writable(&store.store)?, &loc, &version),
        StoreCommand::Records {
            store,
            recid,
            deleted,
            json,
        } => records(&read_only(&store.store)?, recid.as_deref(), deleted, json),
        StoreCommand::Stats { store, json } => stats(&store.store, json),
        StoreCommand::Verify {
            store,
            bucket,
            no_record,
            json,
        } => {
            let store = match no_record {
                true => read_only(&store.store)?,
                false => writable(&store.store)?,
            };
            verify(&store, bucket.as_deref(), no_record, json)
        }
        StoreCommand::Compact { store } => compact(&store.store),
        StoreCommand::Export { store, dir } => crate::ocfl::export(&read_only(&store.store)?, &dir),
        StoreCommand::Import { store, dir } => crate::ocfl::import(&writable(&store.store)?, &dir),
    }
}

fn read_only(path: &Path) -> Result<Store, String> {
    if !path.exists() {
        return Err(format!("no store file at {}", path.display()));
    }
    StoreBuilder::new()
        .open_read_only(path)
        .map_err(|e| format!("cannot open store {}: {e}", path.display()))
}

fn writable(path: &Path) -> Result<Store, String> {
    StoreBuilder::new()
        .md5(true)
        .open(path)
        .map_err(|e| format!("cannot open store {}: {e}", path.display()))
}

fn err(e: recfiles::Error) -> String {
    e.to_string()
}

/// Where files live: a bucket, or a record's bucket (kept in step with its `_files`).
enum Target {
    Bucket(BucketId),
    Record(u64),
}

fn parse_recid(s: &str) -> Result<u64, String> {
    let n = s.strip_prefix("recid:").unwrap_or(s);
    n.parse()
        .map_err(|_| format!("{s:?} is not a recid (a number, or recid:N)"))
}

fn parse_target(s: &str) -> Result<Target, String> {
    if s.starts_with("recid:") {
        return parse_recid(s).map(Target::Record);
    }
    s.parse()
        .map(Target::Bucket)
        .map_err(|_| format!("{s:?} is neither a bucket id nor recid:N"))
}

fn parse_version(s: &str) -> Result<VersionId, String> {
    s.parse().map_err(|_| format!("{s:?} is not a version id"))
}

/// Splits `BUCKET/KEY` or `recid:N/KEY`.
fn parse_loc(s: &str) -> Result<(Target, String), String> {
    match s.split_once('/') {
        Some((t, key)) if !key.is_empty() => Ok((parse_target(t)?, key.to_string())),
        _ => Err(format!(
            "{s:?} names no file: expected BUCKET/KEY or recid:N/KEY"
        )),
    }
}

fn record_of(store: &Store, recid: u64) -> Result<Record, String> {
    store
        .resolve_pid(recfiles::RECID, &recid.to_string())
        .map_err(|e| format!("record recid:{recid}: {e}"))
}

fn bucket_of(store: &Store, target: &Target) -> Result<BucketId, String> {
    let id = match target {
        Target::Bucket(id) => *id,
        Target::Record(n) => record_of(store, *n)?
            .bucket_id()
            .ok_or(format!("record recid:{n} has no bucket"))?,
    };
    match store.bucket(id).map_err(err)? {
        Some(_) => Ok(id),
        None => Err(format!("no bucket {id}")),
    }
}

/// Prints rows as columns aligned on their widest cell; numbers are right-aligned.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| {
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r[i] == "-" || r[i].chars().all(|c| c.is_ascii_digit() || c == '.'))
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i > 0 {
                out.push_str("  ");
            }
            if numeric[i] {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            } else {
                out.push_str(c);
                if i + 1 < cells.len() {
                    out.push_str(&" ".repeat(pad));
                }
            }
        }
        println!("{out}");
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn version_json(o: &ObjectVersion) -> Value {
    json!({
        "key": o.key,
        "version_id": o.version_id.to_string(),
        "size": o.size,
        "checksum": o.checksum,
        "mimetype": o.mimetype,
        "is_head": o.is_head,
        "delete_marker": o.is_delete_marker(),
        "created": o.created.to_rfc3339(),
    })
}

fn ls(
    store: &Store,
    target: Option<&str>,
    versions: bool,
    deleted: bool,
    as_json: bool,
) -> Result<ExitCode, String> {
    let Some(target) = target else {
        let buckets = store.buckets().map_err(err)?;
        let mut rows = Vec::new();
        let mut docs = Vec::new();
        for b in &buckets {
            let objects = store
                .list_objects(b.id, &ListOptions::default())
                .map_err(err)?
                .len();
            docs.push(json!({
                "id": b.id.to_string(), "location": b.location, "objects": objects,
                "size": b.size, "locked": b.locked, "quota_size": b.quota_size,
                "max_file_size": b.max_file_size, "created": b.created.to_rfc3339(),
            }));
            rows.push(vec![
                b.id.to_string(),
                objects.to_string(),
                b.size.to_string(),
                if b.locked { "locked" } else { "-" }.to_string(),
                b.created.to_rfc3339(),
            ]);
        }
        if as_json {
            print_json(&json!({ "buckets": docs }));
        } else {
            table(&["BUCKET", "OBJECTS", "SIZE", "LOCKED", "CREATED"], &rows);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let target = parse_target(target)?;
    let bucket = bucket_of(store, &target)?;
    let list = if versions {
        let snap = store.snapshot().map_err(err)?;
        snap.bucket_versions(bucket, deleted).map_err(err)?
    } else {
        let opts = ListOptions {
            with_deleted: deleted,
            ..ListOptions::default()
        };
        store.list_objects(bucket, &opts).map_err(err)?
    };
    if as_json {
        let mut doc = json!({
            "bucket": bucket.to_string(),
            "objects": list.iter().map(version_json).collect::<Vec<_>>(),
        });
        if let Target::Record(n) = target {
            doc["recid"] = json!(n.to_string());
        }
        print_json(&doc);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|o| {
            let mut row = vec![
                o.size.map_or("-".to_string(), |s| s.to_string()),
                o.created.to_rfc3339(),
                o.version_id.to_string(),
            ];
            if versions {
                let state = match (o.is_head, o.is_delete_marker()) {
                    (true, true) => "head, deleted",
                    (true, false) => "head",
                    (false, true) => "deleted",
                    (false, false) => "-",
                };
                row.push(state.to_string());
            }
            row.push(o.key.clone());
            row
        })
        .collect();
    let mut header = vec!["SIZE", "CREATED", "VERSION"];
    if versions {
        header.push("STATE");
    }
    header.push("KEY");
    table(&header, &rows);
    Ok(ExitCode::SUCCESS)
}

/// Opens the head of a key, or exactly `version` of it.
fn open_loc(
    store: &Store,
    loc: &str,
    version: Option<&str>,
) -> Result<(String, recfiles::FileReader), String> {
    let (target, key) = parse_loc(loc)?;
    let bucket = bucket_of(store, &target)?;
    let version = match version {
        Some(v) => {
            let id = parse_version(v)?;
            store
                .version(id)
                .map_err(err)?
                .filter(|o| o.bucket == bucket && o.key == key && !o.is_delete_marker())
                .ok_or(format!("no version {v} of {loc} with content"))?
        }
        None => store
            .object(bucket, &key)
            .map_err(err)?
            .ok_or(format!("no file {loc}"))?,
    };
    let reader = store.open_version(version.version_id).map_err(err)?;
    Ok((key, reader))
}

fn cat(store: &Store, loc: &str, version: Option<&str>) -> Result<ExitCode, String> {
    let (_, mut reader) = open_loc(store, loc, version)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut reader, &mut out).map_err(|e| format!("cannot write {loc}: {e}"))?;
    out.flush()
        .map_err(|e| format!("cannot write {loc}: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn get(
    store: &Store,
    loc: &str,
    output: Option<PathBuf>,
    version: Option<&str>,
) -> Result<ExitCode, String> {
    let (key, mut reader) = open_loc(store, loc, version)?;
    let path = output.unwrap_or_else(|| PathBuf::from(key.rsplit('/').next().unwrap_or(&key)));
    let mut file =
        File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let n = std::io::copy(&mut reader, &mut file)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("{loc} → {} ({n} bytes)", path.display());
    Ok(ExitCode::SUCCESS)
}

fn put(store: &Store, loc: &str, file: Option<PathBuf>) -> Result<ExitCode, String> {
    let (target, key) = parse_loc(loc)?;
    let reader: Box<dyn Read> = match &file {
        Some(p) => {
            Box::new(File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?)
        }
        None => Box::new(std::io::stdin().lock()),
    };
    let version = match target {
        Target::Bucket(b) => store
            .put_object(b, &key, reader, &PutOptions::default())
            .map_err(err)?,
        Target::Record(n) => {
            let mut record = record_of(store, n)?;
            store
                .put_record_file(&mut record, &key, reader, &PutOptions::default())
                .map_err(err)?
                .object()
                .clone()
        }
    };
    println!(
        "{loc}  {} bytes  version {}  {}",
        version.size.unwrap_or(0),
        version.version_id,
        version.checksum.unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn rm(store: &Store, loc: &str) -> Result<ExitCode, String> {
    let (target, key) = parse_loc(loc)?;
    let marker = match target {
        Target::Bucket(b) => store
            .delete_object(b, &key)
            .map_err(err)?
            .ok_or(format!("no file {loc}"))?,
        Target::Record(n) => {
            let mut record = record_of(store, n)?;
            store
                .update_files(&mut record, |files| files.delete(&key))
                .map_err(err)?
        }
    };
    println!("{loc} deleted (delete marker {})", marker.version_id);
    Ok(ExitCode::SUCCESS)
}

fn restore(store: &Store, loc: &str, version: &str) -> Result<ExitCode, String> {
    let (target, key) = parse_loc(loc)?;
    let id = parse_version(version)?;
    let bucket = bucket_of(store, &target)?;
    store
        .version(id)
        .map_err(err)?
        .filter(|o| o.bucket == bucket && o.key == key)
        .ok_or(format!("no version {version} of {loc}"))?;
    let head = match target {
        Target::Bucket(_) => store.restore_version(id).map_err(err)?,
        Target::Record(n) => {
            let mut record = record_of(store, n)?;
            store
                .update_files(&mut record, |files| files.restore(id))
                .map_err(err)?
                .object()
                .clone()
        }
    };
    println!("{loc} restored as version {}", head.version_id);
    Ok(ExitCode::SUCCESS)
}

fn files_count(r: &Record) -> usize {
    r.get(recfiles::FILES_FIELD)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn records(
    store: &Store,
    recid: Option<&str>,
    deleted: bool,
    as_json: bool,
) -> Result<ExitCode, String> {
    if let Some(recid) = recid {
        let n = parse_recid(recid)?;
        let pid = store
            .pid(recfiles::RECID, &n.to_string())
            .map_err(err)?
            .ok_or(format!("no record recid:{n}"))?;
        let record = store
            .record_with_deleted(pid.record)
            .map_err(err)?
            .ok_or(format!("no record recid:{n}"))?;
        let revisions = store.record_revisions(record.id()).map_err(err)?;
        if as_json {
            print_json(&json!({
                "recid": n.to_string(),
                "id": record.id().to_string(),
                "revision_id": record.revision_id(),
                "deleted": record.is_deleted(),
                "bucket": record.bucket_id().map(|b| b.to_string()),
                "created": record.created().to_rfc3339(),
                "updated": record.updated().to_rfc3339(),
                "metadata": Value::Object(record.body().clone()),
                "revisions": revisions.iter().map(|r| json!({
                    "revision_id": r.revision_id,
                    "updated": r.updated.to_rfc3339(),
                    "deleted": r.body.is_none(),
                    "metadata": r.body.clone().map(Value::Object),
                })).collect::<Vec<_>>(),
            }));
            return Ok(ExitCode::SUCCESS);
        }
        println!("recid     {n}");
        println!("id        {}", record.id());
        println!(
            "bucket    {}",
            record
                .bucket_id()
                .map_or("-".to_string(), |b| b.to_string())
        );
        println!("revision  {}", record.revision_id());
        println!("created   {}", record.created().to_rfc3339());
        println!("updated   {}", record.updated().to_rfc3339());
        if record.is_deleted() {
            println!("deleted   yes");
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Object(record.body().clone())).unwrap_or_default()
        );
        println!();
        let rows: Vec<Vec<String>> = revisions
            .iter()
            .map(|r| {
                vec![
                    r.revision_id.to_string(),
                    r.updated.to_rfc3339(),
                    match &r.body {
                        None => "(deleted)".to_string(),
                        Some(b) => {
                            let files = b
                                .get(recfiles::FILES_FIELD)
                                .and_then(Value::as_array)
                                .map_or(0, Vec::len);
                            format!("{} fields, {files} files", b.len())
                        }
                    },
                ]
            })
            .collect();
        table(&["REVISION", "UPDATED", "CONTENT"], &rows);
        return Ok(ExitCode::SUCCESS);
    }
    let mut all = Vec::new();
    let mut opts = RecordListOptions {
        limit: 1000,
        with_deleted: deleted,
        after: None,
    };
    loop {
        let page = store.list_records(&opts).map_err(err)?;
        all.extend(page.records);
        match page.next {
            Some(n) => opts.after = Some(n),
            None => break,
        }
    }
    if as_json {
        let docs: Vec<Value> = all
            .iter()
            .map(|l| {
                json!({
                    "recid": l.recid.to_string(),
                    "id": l.record.id().to_string(),
                    "revision_id": l.record.revision_id(),
                    "deleted": l.record.is_deleted(),
                    "bucket": l.record.bucket_id().map(|b| b.to_string()),
                    "files": files_count(&l.record),
                    "updated": l.record.updated().to_rfc3339(),
                })
            })
            .collect();
        print_json(&json!({ "records": docs }));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> =
        all.iter()
            .map(|l| {
                let title = l.record.get("title").and_then(Value::as_str).unwrap_or(
                    if l.record.is_deleted() {
                        "(deleted)"
                    } else {
                        ""
                    },
                );
                vec![
                    l.recid.to_string(),
                    l.record.revision_id().to_string(),
                    files_count(&l.record).to_string(),
                    l.record.updated().to_rfc3339(),
                    title.to_string(),
                ]
            })
            .collect();
    table(&["RECID", "REVISION", "FILES", "UPDATED", "TITLE"], &rows);
    Ok(ExitCode::SUCCESS)
}

fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn stats(path: &Path, as_json: bool) -> Result<ExitCode, String> {
    let store = read_only(path)?;
    let s = store.stats().map_err(err)?;
    let space = store.space().map_err(err)?;
    let size = file_size(path)?;
    if as_json {
        print_json(&json!({
            "records": s.records, "deleted_records": s.deleted_records, "buckets": s.buckets,
            "objects": s.objects, "versions": s.versions, "delete_markers": s.delete_markers,
            "files": s.files, "chunks": s.chunks, "logical_bytes": s.logical_bytes,
            "stored_bytes": s.stored_bytes, "dedup_ratio": s.dedup_ratio(), "file_size": size,
            "page_size": space.page_size, "allocated_pages": space.allocated_pages,
            "free_bytes": space.free_bytes,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let rows = [
        ("records", s.records.to_string()),
        ("deleted records", s.deleted_records.to_string()),
        ("buckets", s.buckets.to_string()),
        ("objects", s.objects.to_string()),
        ("versions", s.versions.to_string()),
        ("delete markers", s.delete_markers.to_string()),
        ("files", s.files.to_string()),
        ("chunks", s.chunks.to_string()),
        ("logical bytes", human(s.logical_bytes)),
        ("stored bytes", human(s.stored_bytes)),
        ("dedup ratio", format!("{:.2}", s.dedup_ratio())),
        ("store file", human(size)),
        (
            "pages in use",
            format!("{} of {} B", space.allocated_pages, space.page_size),
        ),
        ("free in file", human(space.free_bytes)),
    ];
    for (k, v) in rows {
        println!("{k:<16} {v}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes, with a binary-prefixed figure beside the exact count once it is over 1 KiB.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{n} ({v:.1} {})", UNITS[unit])
}

/// Names of the versions that point at each damaged file, `BUCKET/KEY (version V)`.
fn name_files(store: &Store, damaged: &[recfiles::FileId]) -> Result<Vec<String>, String> {
    let wanted: BTreeSet<_> = damaged.iter().copied().collect();
    let snap = store.snapshot().map_err(err)?;
    let mut names = Vec::new();
    for b in snap.buckets().map_err(err)? {
        for o in snap.bucket_versions(b.id, false).map_err(err)? {
            if o.file_id.is_some_and(|f| wanted.contains(&f)) {
                names.push(format!("{}/{} (version {})", b.id, o.key, o.version_id));
            }
        }
    }
    Ok(names)
}

/// Fixity without recording: every file of the store (or of one bucket) read through the
/// store's reader, which checks each chunk against its hash as it loads it, and the whole
/// content's blake3 (and md5, when the store has one) compared with the file's.
fn verify_unrecorded(store: &Store, bucket: Option<BucketId>) -> Result<FixityReport, String> {
    use recfiles::transfer;
    let snap = store.snapshot().map_err(err)?;
    let buckets = match bucket {
        Some(b) => vec![b],
        None => transfer::bucket_ids(&snap).map_err(err)?,
    };
    let mut files = BTreeMap::new();
    for b in buckets {
        let dump = transfer::dump_bucket(&snap, b).map_err(err)?;
        for f in dump
            .into_iter()
            .flat_map(|d| d.versions)
            .filter_map(|v| v.file)
        {
            if f.readable {
                files.insert(f.id, f);
            }
        }
    }
    let mut report = FixityReport::default();
    let (total, total_bytes) = (files.len() as u64, files.values().map(|f| f.size).sum());
    let mut bar = Bar::new();
    for (id, f) in files {
        bar.draw(report.checked, total, report.bytes, total_bytes);
        report.checked += 1;
        report.bytes += f.size;
        let intact = snap.open_file(id).is_ok_and(|mut reader| {
            let mut b3 = blake3::Hasher::new();
            let mut md5 = f.md5.as_ref().map(|_| <md5::Md5 as md5::Digest>::new());
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        b3.update(&buf[..n]);
                        if let Some(m) = &mut md5 {
                            md5::Digest::update(m, &buf[..n]);
                        }
                        size += n as u64;
                    }
                    Err(_) => return false,
                }
            }
            let md5 = md5.map(|m| hex_of(&md5::Digest::finalize(m)));
            size == f.size && b3.finalize().to_hex().as_str() == f.blake3 && md5 == f.md5
        });
        if !intact {
            report.damaged.push(id);
        }
    }
    bar.clear();
    Ok(report)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn verify(
    store: &Store,
    bucket: Option<&str>,
    no_record: bool,
    as_json: bool,
) -> Result<ExitCode, String> {
    let report = match bucket {
        _ if no_record => {
            let id = match bucket {
                Some(b) => Some(bucket_of(store, &parse_target(b)?)?),
                None => None,
            };
            verify_unrecorded(store, id)?
        }
        None => {
            let mut bar = Bar::new();
            let report = store
                .verify_all_with(|p| bar.draw(p.checked, p.total_files, p.bytes, p.total_bytes))
                .map_err(err)?;
            bar.clear();
            report
        }
        Some(b) => {
            let id = bucket_of(store, &parse_target(b)?)?;
            let snap = store.snapshot().map_err(err)?;
            let mut sizes: BTreeMap<recfiles::FileId, u64> = BTreeMap::new();
            for o in snap.bucket_versions(id, false).map_err(err)? {
                if let Some(f) = o.file_id {
                    sizes.insert(f, o.size.unwrap_or(0));
                }
            }
            drop(snap);
            let mut report = FixityReport::default();
            let (total, total_bytes) = (sizes.len() as u64, sizes.values().sum());
            let mut bar = Bar::new();
            for (f, size) in sizes {
                bar.draw(report.checked, total, report.bytes, total_bytes);
                report.checked += 1;
                report.bytes += size;
                if !store.verify_file(f).map_err(err)? {
                    report.damaged.push(f);
                }
            }
            bar.clear();
            report
        }
    };
    let names = name_files(store, &report.damaged)?;
    if as_json {
        print_json(&json!({
            "checked": report.checked,
            "bytes": report.bytes,
            "damaged_files": report.damaged.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            "damaged": names,
        }));
    } else {
        for n in &names {
            println!("damaged: {n}");
        }
        println!(
            "{} files, {} checked: {}",
            report.checked,
            human(report.bytes),
            if report.damaged.is_empty() {
                "all intact".to_string()
            } else {
                format!("{} damaged", report.damaged.len())
            }
        );
    }
    Ok(if report.damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `check`: the integrity check, its report readable or as JSON.
pub fn check(path: &Path, as_json: bool) -> Result<ExitCode, String> {
    let store = read_only(path)?;
    let report = store.check().map_err(err)?;
    let engine = match report.engine_ok {
        Some(true) => "ok",
        Some(false) => "damaged",
        None => "not run (other handles open)",
    };
    if as_json {
        print_json(&json!({
            "ok": report.is_ok(),
            "engine": report.engine_ok,
            "problems": report.problems.iter().map(|p| json!({
                "invariant": p.invariant.name(),
                "subjects": p.subjects.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "message": p.message,
            })).collect::<Vec<_>>(),
        }));
    } else {
        println!("storage engine   {engine}");
        println!("invariants       {} problem(s)", report.problems.len());
        for p in &report.problems {
            println!("  [{}] {p}", p.invariant);
        }
        println!(
            "{}: {}",
            path.display(),
            if report.is_ok() {
                "ok"
            } else {
                "PROBLEMS FOUND"
            }
        );
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn compact(path: &Path) -> Result<ExitCode, String> {
    if !path.exists() {
        return Err(format!("no store file at {}", path.display()));
    }
    let before = file_size(path)?;
    let store = writable(path)?;
    let done = store.compact().map_err(err)?;
    store.close().map_err(err)?;
    let after = file_size(path)?;
    println!(
        "{}: {} → {}{}",
        path.display(),
        human(before),
        human(after),
        if done { "" } else { " (nothing to reclaim)" }
    );
    Ok(ExitCode::SUCCESS)
}

// ---- ingest ----

/// Set by SIGINT: workers finish the file in hand and take no new one, the summary is printed,
/// the exit code is 130.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[cfg(target_os = "linux")]
extern "C" fn on_sigint(_: libc::c_int) {
    // A second Ctrl-C does not wait for the puts in flight: they are abandoned whole (their
    // staged chunks are cleared at the next open), which is still never half-stored.
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { libc::_exit(130) }
    }
}

/// Whether SIGINT arrived (after [`catch_sigint`]).
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// From now on, a first SIGINT sets [`interrupted`] and a second one exits at once.
pub(crate) fn catch_sigint() {
    #[cfg(target_os = "linux")]
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// One regular file to store.
struct Item {
    path: PathBuf,
    key: String,
    size: u64,
}

/// What the walk found: files to store, and how many entries were skipped or unreadable.
#[derive(Default)]
struct Walk {
    items: Vec<Item>,
    skipped: u64,
    unreadable: u64,
}

fn walk(root: &Path, out: &mut Walk) {
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("recfiles: cannot read {}: {e}", root.display());
            out.unreadable += 1;
            return;
        }
    };
    if meta.is_file() {
        let name = root.file_name().unwrap_or(root.as_os_str());
        let Some(key) = utf8_name(name, root, out) else {
            return;
        };
        out.items.push(Item {
            path: root.to_path_buf(),
            key,
            size: meta.len(),
        });
    } else if meta.is_dir() {
        walk_dir(root, "", out);
    } else {
        eprintln!(
            "recfiles: warning: skipping {} (not a regular file or directory)",
            root.display()
        );
        out.skipped += 1;
    }
}

/// A file name as a key segment. Keys are UTF-8, and a lossy conversion could give two files
/// one key (or a key that names no file), so a name that is not UTF-8 is refused: reported,
/// counted as unreadable (the exit code says not everything went in), its subtree not walked.
fn utf8_name(name: &std::ffi::OsStr, path: &Path, out: &mut Walk) -> Option<String> {
    match name.to_str() {
        Some(n) => Some(n.to_string()),
        None => {
            eprintln!(
                "recfiles: cannot store {}: its name is not UTF-8 (keys are UTF-8; rename it)",
                path.display()
            );
            out.unreadable += 1;
            None
        }
    }
}

fn walk_dir(dir: &Path, prefix: &str, out: &mut Walk) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("recfiles: cannot read directory {}: {e}", dir.display());
            out.unreadable += 1;
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Some(name) = utf8_name(&e.file_name(), &path, out) else {
            continue;
        };
        let key = format!("{prefix}{name}");
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => out.items.push(Item {
                path,
                key,
                size: m.len(),
            }),
            Ok(m) if m.is_dir() => walk_dir(&path, &format!("{key}/"), out),
            Ok(_) => {
                eprintln!(
                    "recfiles: warning: skipping {} (a symlink or special file)",
                    path.display()
                );
                out.skipped += 1;
            }
            Err(e) => {
                eprintln!("recfiles: cannot read {}: {e}", path.display());
                out.unreadable += 1;
            }
        }
    }
}

/// Where ingested files go.
enum Dest {
    Bucket(BucketId),
    Record(RecordId),
}

fn ingest_dest(store: &Store, args: &IngestArgs) -> Result<(Dest, String), String> {
    if let Some(b) = &args.bucket {
        let id = bucket_of(store, &parse_target(b)?)?;
        return Ok((Dest::Bucket(id), format!("bucket {id}")));
    }
    if let Some(r) = &args.record {
        let n = parse_recid(r)?;
        let record = record_of(store, n)?;
        let bucket = record
            .bucket_id()
            .ok_or(format!("record recid:{n} has no bucket"))?;
        check_unlocked(store, bucket)?;
        return Ok((Dest::Record(record.id()), format!("record recid:{n}")));
    }
    if args.new_record {
        let body: Value = match &args.metadata {
            Some(m) => serde_json::from_str(m).map_err(|e| format!("--metadata: {e}"))?,
            None => json!({}),
        };
        let opts = recfiles::RecordOptions {
            bucket: Some(new_bucket_options(args)),
            ..recfiles::RecordOptions::default()
        };
        let (record, recid) = store
            .write(|tx| {
                let record = tx.create_record_with(body, &opts)?;
                let pid = tx.mint_recid(record.id())?;
                Ok((record, pid.pid_value))
            })
            .map_err(err)?;
        eprintln!("created record recid:{recid}");
        return Ok((Dest::Record(record.id()), format!("record recid:{recid}")));
    }
    let bucket = store
        .create_bucket(&new_bucket_options(args))
        .map_err(err)?;
    eprintln!("created bucket {}", bucket.id);
    Ok((Dest::Bucket(bucket.id), format!("bucket {}", bucket.id)))
}

/// The options of a bucket `ingest` creates: `--location`, else the defaults.
fn new_bucket_options(args: &IngestArgs) -> BucketOptions {
    BucketOptions {
        location: args.location.clone(),
        ..BucketOptions::default()
    }
}

fn check_unlocked(store: &Store, bucket: BucketId) -> Result<(), String> {
    match store.bucket(bucket).map_err(err)? {
        Some(b) if b.locked => Err(format!("bucket {bucket} is locked")),
        Some(_) => Ok(()),
        None => Err(format!("no bucket {bucket}")),
    }
}

/// Stores one file: one put, so an interruption leaves it whole or absent.
fn store_one(
    store: &Store,
    dest: &Dest,
    record_lock: &Mutex<()>,
    item: &Item,
) -> Result<u64, String> {
    let file =
        File::open(&item.path).map_err(|e| format!("cannot read {}: {e}", item.path.display()))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let version = match dest {
        Dest::Bucket(b) => store
            .put_object(*b, &item.key, reader, &PutOptions::default())
            .map_err(|e| format!("{}: {e}", item.path.display()))?,
        Dest::Record(id) => {
            // A record's puts each commit a new revision: one at a time, on a fresh copy.
            let _guard = record_lock.lock().unwrap_or_else(|p| p.into_inner());
            let mut record = store
                .record(*id)
                .map_err(err)?
                .ok_or(format!("record {id} is gone"))?;
            store
                .put_record_file(&mut record, &item.key, reader, &PutOptions::default())
                .map_err(|e| format!("{}: {e}", item.path.display()))?
                .object()
                .clone()
        }
    };
    Ok(version.size.unwrap_or(0))
}

/// Small files are committed together, up to this many at once...
const BATCH_FILES: usize = 256;
/// ...or this many bytes; a file this size or larger is a put of its own (streamed).
const BATCH_BYTES: u64 = 4 << 20;

/// Takes the next files to store: one large file, or a run of small ones.
fn next_batch<'a>(queue: &Mutex<std::iter::Peekable<std::slice::Iter<'a, Item>>>) -> Vec<&'a Item> {
    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(item) = q.peek() {
        let small = item.size < BATCH_BYTES;
        if !batch.is_empty()
            && (!small || batch.len() >= BATCH_FILES || bytes + item.size > BATCH_BYTES)
        {
            break;
        }
        bytes += item.size;
        batch.extend(q.next());
        if !small {
            break;
        }
    }
    batch
}

/// Stores small files, already read, in one transaction: all of them or none.
fn store_batch(
    store: &Store,
    dest: &Dest,
    record_lock: &Mutex<()>,
    files: &[(&Item, Vec<u8>)],
) -> recfiles::Result<()> {
    match dest {
        Dest::Bucket(b) => store.write(|tx| {
            for (item, bytes) in files {
                tx.put_object(*b, &item.key, &bytes[..], &PutOptions::default())?;
            }
            Ok(())
        }),
        Dest::Record(id) => {
            let _guard = record_lock.lock().unwrap_or_else(|p| p.into_inner());
            let mut record = store
                .record(*id)?
                .ok_or(recfiles::Error::RecordNotFound { record: *id })?;
            store.update_files(&mut record, |view| {
                for (item, bytes) in files {
                    view.put(&item.key, &bytes[..])?;
                }
                Ok(())
            })
        }
    }
}

/// Stores one batch, reporting each file's outcome on `tx`. A batch that fails as a whole is
/// retried file by file, so the file at fault is named and the others still go in.
fn store_files(
    store: &Store,
    dest: &Dest,
    record_lock: &Mutex<()>,
    batch: Vec<&Item>,
    tx: &mpsc::Sender<(String, Result<u64, String>)>,
) -> bool {
    if batch.len() == 1 {
        let result = store_one(store, dest, record_lock, batch[0]);
        return tx.send((batch[0].key.clone(), result)).is_ok();
    }
    let mut read = Vec::with_capacity(batch.len());
    for item in batch {
        let mut bytes = Vec::with_capacity(item.size as usize);
        match File::open(&item.path).and_then(|mut f| f.read_to_end(&mut bytes)) {
            Ok(_) => read.push((item, bytes)),
            Err(e) => {
                let msg = format!("cannot read {}: {e}", item.path.display());
                if tx.send((item.key.clone(), Err(msg))).is_err() {
                    return false;
                }
            }
        }
    }
    if store_batch(store, dest, record_lock, &read).is_ok() {
        for (item, bytes) in &read {
            if tx.send((item.key.clone(), Ok(bytes.len() as u64))).is_err() {
                return false;
            }
        }
        return true;
    }
    for (item, _) in read {
        let result = store_one(store, dest, record_lock, item);
        if tx.send((item.key.clone(), result)).is_err() {
            return false;
        }
    }
    true
}

fn ingest(args: IngestArgs) -> Result<ExitCode, String> {
    let store = writable(&args.store.store)?;
    let (dest, dest_name) = ingest_dest(&store, &args)?;
    if let Dest::Bucket(b) = &dest {
        check_unlocked(&store, *b)?;
    }
    let mut found = Walk::default();
    for p in &args.paths {
        walk(p, &mut found);
    }
    let total_files = found.items.len() as u64;
    let total_bytes: u64 = found.items.iter().map(|i| i.size).sum();
    let before = store.stats().map_err(err)?;
    catch_sigint();
    let start = Instant::now();
    let progress = std::io::stderr().is_terminal() && !args.verbose;
    let next = Mutex::new(found.items.iter().peekable());
    let record_lock = Mutex::new(());
    let (tx, rx) = mpsc::channel::<(String, Result<u64, String>)>();
    let (mut files, mut bytes, mut failed) = (0u64, 0u64, 0u64);
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            let tx = tx.clone();
            let (store, dest, next, record_lock) = (&store, &dest, &next, &record_lock);
            s.spawn(move || {
                loop {
                    if INTERRUPTED.load(Ordering::SeqCst) {
                        break;
                    }
                    let batch = next_batch(next);
                    if batch.is_empty() || !store_files(store, dest, record_lock, batch, &tx) {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut last_draw = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok((key, Ok(size))) => {
                    files += 1;
                    bytes += size;
                    if args.verbose {
                        println!("stored\t{key}\t{size}");
                    }
                }
                Ok((_, Err(e))) => {
                    failed += 1;
                    if progress {
                        eprint!("\r\x1b[K");
                    }
                    eprintln!("recfiles: {e}");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if progress && last_draw.elapsed() >= Duration::from_millis(200) {
                last_draw = Instant::now();
                draw_progress(files + failed, total_files, bytes, total_bytes, start);
            }
        }
        if progress {
            eprint!("\r\x1b[K");
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let after = store.stats().map_err(err)?;
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    store.close().map_err(err)?;
    let stored = after.stored_bytes.saturating_sub(before.stored_bytes);
    let rate = if elapsed > 0.0 {
        bytes as f64 / (1024.0 * 1024.0) / elapsed
    } else {
        0.0
    };
    let not_done = total_files - files - failed;
    if args.json {
        print_json(&json!({
            "destination": dest_name,
            "files": files, "bytes": bytes, "stored_bytes": stored,
            "failed": failed, "unreadable": found.unreadable, "skipped": found.skipped,
            "not_attempted": not_done, "interrupted": interrupted,
            "elapsed_seconds": elapsed, "mib_per_second": rate,
        }));
    } else {
        println!(
            "ingested {files} files into {dest_name}: {} logical, {} stored after dedup, {elapsed:.2} s, {rate:.1} MiB/s",
            human(bytes),
            human(stored)
        );
        if failed + found.unreadable + found.skipped + not_done > 0 {
            println!(
                "{failed} failed, {} unreadable, {} skipped, {not_done} not attempted",
                found.unreadable, found.skipped
            );
        }
    }
    if interrupted {
        eprintln!("recfiles: interrupted; every file reported above is stored");
        return Ok(ExitCode::from(130));
    }
    Ok(if failed + found.unreadable > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A progress bar on stderr, drawn at most five times a second, and only on a terminal.
struct Bar {
    on: bool,
    start: Instant,
    last: Option<Instant>,
}

impl Bar {
    fn new() -> Bar {
        Bar {
            on: std::io::stderr().is_terminal(),
            start: Instant::now(),
            last: None,
        }
    }

    fn draw(&mut self, done: u64, total: u64, bytes: u64, total_bytes: u64) {
        if !self.on
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        draw_progress(done, total, bytes, total_bytes, self.start);
    }

    /// Clears the bar's line, once drawn.
    fn clear(&self) {
        if self.on && self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

fn draw_progress(done: u64, total: u64, bytes: u64, total_bytes: u64, start: Instant) {
    let secs = start.elapsed().as_secs_f64().max(0.001);
    let rate = bytes as f64 / secs;
    let eta = if rate > 0.0 {
        format!("{:.0} s", (total_bytes.saturating_sub(bytes)) as f64 / rate)
    } else {
        "?".to_string()
    };
    let width = 30usize;
    let filled = if total_bytes > 0 {
        (bytes as f64 / total_bytes as f64 * width as f64) as usize
    } else if total > 0 {
        (done as f64 / total as f64 * width as f64) as usize
    } else {
        width
    };
    eprint!(
        "\r\x1b[K[{}{}] {done}/{total} files  {:.1}/{:.1} MiB  {:.1} MiB/s  ETA {eta}",
        "#".repeat(filled.min(width)),
        " ".repeat(width - filled.min(width)),
        bytes as f64 / 1048576.0,
        total_bytes as f64 / 1048576.0,
        rate / 1048576.0
    );
}
