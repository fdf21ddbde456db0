//! `export DIR` and `import DIR`: a store as an OCFL 1.1 storage root, and back.
//!
//! The root uses the `0002-flat-direct-storage-layout` extension: each object's directory is
//! its id, `record-<uuid>` for a record (with its bucket, if it has one) and `bucket-<uuid>`
//! for a bucket without a record. A record's OCFL versions are its revisions (`v1` is
//! revision 0), each holding `record.json` (the body exactly as stored; absent for a soft
//! delete) and `files/<key>` for each file the revision's `_files` names. The head version
//! also holds `recfiles.json`, the sidecar: what OCFL cannot say (ids, timestamps, PIDs, every
//! version of every key with its tags, mimetype and file, delete markers, the sha512 of each
//! file's content) and `history/<version id>` for the content of versions no other path
//! shows. A bucket's object has one version: its live files, the sidecar and the history.
//! The root's own `recfiles.json` (with its `.sha512` sidecar) holds the store's locations,
//! schemas and PID counters.
//!
//! Keys become paths segment by segment, each percent-encoded outside `A-Z a-z 0-9 - . _ ~`
//! (and `.`/`..` segments as `%2E`); a key with an empty segment, or whose path would lie
//! under another key's path, is encoded whole, slashes included. The sidecar maps
//! each key to its file, so import never decodes a path.
//!
//! Export writes into `DIR.partial` beside the target and renames it at the end: a failed
//! export leaves nothing. Import reads every inventory (checking its sha512 sidecar), then
//! hands the records and buckets to `recfiles::transfer::import`, which verifies each file's
//! sha512 (here, as it streams), size and blake3 before its single transaction commits.

use recfiles::transfer::{
    self, BucketDump, FileDump, ImportSet, PidDump, RecordDump, RevisionDump, StoreDump,
};
use recfiles::{BucketId, FileId, ReadTx, RecordId, Store, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the sidecars say about the export's own format.
const FORMAT: &str = "recfiles-ocfl 1";
const LAYOUT: &str = "0002-flat-direct-storage-layout";
const INVENTORY_TYPE: &str = "https://ocfl.io/1.1/spec/#inventory";
const SIDECAR: &str = "recfiles.json";

/// The root's `recfiles.json`.
#[derive(Serialize, Deserialize)]
struct RootSidecar {
    format: String,
    store: StoreDump,
}

/// An object's `recfiles.json`.
#[derive(Serialize, Deserialize)]
struct Sidecar {
    format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<RecordSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bucket: Option<BucketSide>,
}

/// A record without its bodies (they are the `record.json` of each OCFL version).
#[derive(Serialize, Deserialize)]
struct RecordSide {
    id: RecordId,
    created: Timestamp,
    updated: Timestamp,
    deleted: bool,
    bucket: Option<BucketId>,
    pids: Vec<PidDump>,
    /// Revision `n` is OCFL version `v{n+1}`.
    revisions: Vec<RevisionSide>,
}

#[derive(Serialize, Deserialize)]
struct RevisionSide {
    updated: Timestamp,
    /// Whether the revision has a body (its version's `record.json`).
    body: bool,
}

#[derive(Serialize, Deserialize)]
struct BucketSide {
    #[serde(flatten)]
    dump: BucketDump,
    /// Each file's sha512, which finds its content in the inventory's manifest.
    sha512: BTreeMap<FileId, String>,
}

// ---- paths ---------------------------------------------------------------------------------

fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    match out.as_str() {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => out,
    }
}

/// The paths of a set of keys under `files/`: each valid as an OCFL logical path, and none a
/// directory of another.
fn key_paths<'k>(keys: impl IntoIterator<Item = &'k str>) -> BTreeMap<&'k str, String> {
    let mut out: BTreeMap<&str, String> = BTreeMap::new();
    for key in keys {
        let segments: Vec<&str> = key.split('/').collect();
        let path = if segments.iter().any(|s| s.is_empty()) {
            encode_segment(key)
        } else {
            segments
                .iter()
                .map(|s| encode_segment(s))
                .collect::<Vec<_>>()
                .join("/")
        };
        out.insert(key, path);
    }
    // A path under another key's path is encoded whole: without a slash, it is nobody's
    // directory and, holding `%2F`, no other key's path.
    let files: BTreeSet<String> = out.values().cloned().collect();
    for (key, path) in out.iter_mut() {
        let parts: Vec<&str> = path.split('/').collect();
        if (1..parts.len()).any(|n| files.contains(&parts[..n].join("/"))) {
            *path = encode_segment(key);
        }
    }
    out.into_iter()
        .map(|(k, p)| (k, format!("files/{p}")))
        .collect()
}

// ---- digests -------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha512_hex(bytes: &[u8]) -> String {
    hex(&Sha512::digest(bytes))
}

/// Copies `reader` into a new file at `path`, returning its sha512 and size.
fn copy_hashing(reader: &mut dyn Read, path: &Path) -> io::Result<(String, u64)> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut out = BufWriter::with_capacity(1 << 20, File::create_new(path)?);
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    settle(out.into_inner().map_err(|e| e.into_error())?)?;
    Ok((hex(&hasher.finalize()), total))
}

fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = File::create_new(path)?;
    f.write_all(bytes)?;
    settle(f)
}

/// A written file made durable: on Linux by one `syncfs` of the whole export at its end
/// ([`sync_tree`]; a sync per file made exporting 10,000 small files several times slower),
/// elsewhere here.
fn settle(f: File) -> io::Result<()> {
    if cfg!(target_os = "linux") {
        Ok(())
    } else {
        f.sync_all()
    }
}

/// Makes everything written under `dir` durable (see [`settle`]).
fn sync_tree(dir: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let d = File::open(dir)?;
        // SAFETY: `d` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = dir;
    Ok(())
}

/// A file and the OCFL sidecar holding its sha512 (`<digest> <name>`).
fn write_with_digest(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_file(&dir.join(name), bytes)?;
    let line = format!("{} {name}\n", sha512_hex(bytes));
    write_file(&dir.join(format!("{name}.sha512")), line.as_bytes())
}

fn pretty(v: &impl Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

// ---- export --------------------------------------------------------------------------------

/// One OCFL object being written, version by version.
struct ObjectWriter {
    root: PathBuf,
    id: String,
    /// digest → content paths.
    manifest: BTreeMap<String, Vec<String>>,
    /// The content already in the object, by file.
    files: HashMap<FileId, String>,
    versions: BTreeMap<String, Value>,
    /// The state of the version being written: logical path → digest.
    state: BTreeMap<String, String>,
    bytes: u64,
}

impl ObjectWriter {
    fn new(root: &Path, id: String) -> io::Result<ObjectWriter> {
        let root = root.join(&id);
        write_file(&root.join("0=ocfl_object_1.1"), b"ocfl_object_1.1\n")?;
        Ok(ObjectWriter {
            root,
            id,
            manifest: BTreeMap::new(),
            files: HashMap::new(),
            versions: BTreeMap::new(),
            state: BTreeMap::new(),
            bytes: 0,
        })
    }

    fn version_name(&self) -> String {
        format!("v{}", self.versions.len() + 1)
    }

    fn add_bytes(&mut self, logical: &str, bytes: &[u8]) -> io::Result<()> {
        let digest = sha512_hex(bytes);
        if !self.manifest.contains_key(&digest) {
            let content = format!("{}/content/{logical}", self.version_name());
            write_file(&self.root.join(&content), bytes)?;
            self.manifest.insert(digest.clone(), vec![content]);
        }
        self.state.insert(logical.to_string(), digest);
        Ok(())
    }

    /// Adds a file's content under `logical`, copying it only the first time the object
    /// needs it.
    fn add_file(&mut self, tx: &ReadTx, logical: &str, file: FileId) -> Result<String, String> {
        let digest = match self.files.get(&file) {
            Some(d) => d.clone(),
            None => {
                let content = format!("{}/content/{logical}", self.version_name());
                let mut reader = tx
                    .open_file(file)
                    .map_err(|e| format!("cannot read file {file}: {e}"))?;
                let (digest, size) = copy_hashing(&mut reader, &self.root.join(&content))
                    .map_err(|e| format!("cannot export file {file} to {content}: {e}"))?;
                self.bytes += size;
                self.manifest
                    .entry(digest.clone())
                    .or_default()
                    .push(content);
                self.files.insert(file, digest.clone());
                digest
            }
        };
        self.state.insert(logical.to_string(), digest.clone());
        Ok(digest)
    }

    /// Ends the version: its block, and a copy of the inventory as of it in its directory.
    fn end_version(&mut self, created: Timestamp, message: String) -> io::Result<()> {
        let name = self.version_name();
        let mut state: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (path, digest) in &self.state {
            state.entry(digest).or_default().push(path);
        }
        self.versions.insert(
            name.clone(),
            json!({ "created": created.to_rfc3339(), "message": message, "state": state }),
        );
        self.state.clear();
        let inventory = pretty(&json!({
            "id": self.id,
            "type": INVENTORY_TYPE,
            "digestAlgorithm": "sha512",
            "head": name,
            "manifest": self.manifest,
            "versions": self.versions,
        }));
        write_with_digest(&self.root.join(&name), "inventory.json", &inventory)
    }

    /// Copies the head version's inventory to the object's root.
    fn finish(self) -> io::Result<u64> {
        let head = format!("v{}", self.versions.len());
        for name in ["inventory.json", "inventory.json.sha512"] {
            let bytes = fs::read(self.root.join(&head).join(name))?;
            write_file(&self.root.join(name), &bytes)?;
        }
        Ok(self.bytes)
    }
}

/// What an export wrote.
#[derive(Default)]
struct Counts {
    records: usize,
    buckets: usize,
    objects: usize,
    bytes: u64,
}

/// The `_files` of a body: key → version id.
fn files_named(body: &str) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut out = Vec::new();
    if let Some(list) = doc.get(recfiles::FILES_FIELD).and_then(Value::as_array) {
        for f in list {
            if let (Some(k), Some(v)) = (
                f.get("key").and_then(Value::as_str),
                f.get("version_id").and_then(Value::as_str),
            ) {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

/// Adds the bucket's history (content no state shows yet) and the sidecar to the version
/// being written.
fn add_history_and_sidecar(
    obj: &mut ObjectWriter,
    tx: &ReadTx,
    record: Option<RecordSide>,
    bucket: Option<&BucketDump>,
) -> Result<(), String> {
    let mut sha512 = BTreeMap::new();
    if let Some(b) = bucket {
        for v in &b.versions {
            let Some(f) = &v.file else { continue };
            if !obj.files.contains_key(&f.id) {
                obj.add_file(tx, &format!("history/{}", v.version_id), f.id)?;
            }
            sha512.insert(f.id, obj.files[&f.id].clone());
        }
    }
    let sidecar = Sidecar {
        format: FORMAT.into(),
        record,
        bucket: bucket.map(|b| BucketSide {
            dump: b.clone(),
            sha512,
        }),
    };
    obj.add_bytes(SIDECAR, &pretty(&sidecar))
        .map_err(|e| format!("cannot write {}: {e}", obj.id))
}

fn export_record(root: &Path, tx: &ReadTx, r: &RecordDump) -> Result<u64, String> {
    let io_err = |e: io::Error| format!("cannot write the object of record {}: {e}", r.id);
    let bucket = match r.bucket {
        Some(b) => Some(
            transfer::dump_bucket(tx, b)
                .map_err(|e| e.to_string())?
                .ok_or(format!("record {}: its bucket {b} is missing", r.id))?,
        ),
        None => None,
    };
    let files_by_version: HashMap<String, FileId> = bucket
        .iter()
        .flat_map(|b| &b.versions)
        .filter_map(|v| v.file.as_ref().map(|f| (v.version_id.to_string(), f.id)))
        .collect();
    let mut obj = ObjectWriter::new(root, format!("record-{}", r.id)).map_err(io_err)?;
    let last = r.revisions.len().saturating_sub(1);
    for (n, rev) in r.revisions.iter().enumerate() {
        if let Some(body) = &rev.body {
            obj.add_bytes("record.json", body.as_bytes())
                .map_err(io_err)?;
            let named = files_named(body);
            let paths = key_paths(named.iter().map(|(k, _)| k.as_str()));
            for (key, version) in &named {
                // A version removed since the revision was written has no content to show.
                if let Some(file) = files_by_version.get(version) {
                    obj.add_file(tx, &paths[key.as_str()], *file)?;
                }
            }
        }
        if n == last {
            let side = RecordSide {
                id: r.id,
                created: r.created,
                updated: r.updated,
                deleted: r.deleted,
                bucket: r.bucket,
                pids: r.pids.clone(),
                revisions: r
                    .revisions
                    .iter()
                    .map(|v| RevisionSide {
                        updated: v.updated,
                        body: v.body.is_some(),
                    })
                    .collect(),
            };
            add_history_and_sidecar(&mut obj, tx, Some(side), bucket.as_ref())?;
        }
        let message = match &rev.body {
            Some(_) => format!("revision {n}"),
            None => format!("revision {n} (deleted)"),
        };
        obj.end_version(rev.updated, message).map_err(io_err)?;
    }
    obj.finish().map_err(io_err)
}

fn export_bucket(root: &Path, tx: &ReadTx, b: &BucketDump) -> Result<u64, String> {
    let io_err = |e: io::Error| format!("cannot write the object of bucket {}: {e}", b.id);
    let mut obj = ObjectWriter::new(root, format!("bucket-{}", b.id)).map_err(io_err)?;
    // The live heads: the last version of each key, when it is not a delete marker.
    let mut heads: BTreeMap<&str, FileId> = BTreeMap::new();
    for v in &b.versions {
        match &v.file {
            Some(f) => heads.insert(&v.key, f.id),
            None => heads.remove(v.key.as_str()),
        };
    }
    let paths = key_paths(heads.keys().copied());
    for (key, file) in &heads {
        obj.add_file(tx, &paths[key], *file)?;
    }
    add_history_and_sidecar(&mut obj, tx, None, Some(b))?;
    obj.end_version(b.updated, "bucket".into())
        .map_err(io_err)?;
    obj.finish().map_err(io_err)
}

fn write_root(root: &Path, tx: &ReadTx, counts: &mut Counts) -> Result<(), String> {
    let io_err = |e: io::Error| format!("cannot write to {}: {e}", root.display());
    write_file(&root.join("0=ocfl_1.1"), b"ocfl_1.1\n").map_err(io_err)?;
    let layout = json!({
        "extension": LAYOUT,
        "description": "Extension 0002: Flat Direct Storage Layout (object directory = object id)",
    });
    write_file(&root.join("ocfl_layout.json"), &pretty(&layout)).map_err(io_err)?;
    // The layout has no parameters, so no `extensions/0002-…/config.json` (optional, and
    // ocfl-py 2.1's validator fails on one).
    let store = transfer::dump_store(tx).map_err(|e| e.to_string())?;
    let side = RootSidecar {
        format: FORMAT.into(),
        store,
    };
    write_with_digest(root, SIDECAR, &pretty(&side)).map_err(io_err)?;
    for id in transfer::record_ids(tx).map_err(|e| e.to_string())? {
        let r = transfer::dump_record(tx, id)
            .map_err(|e| e.to_string())?
            .ok_or(format!("record {id} vanished"))?;
        counts.bytes += export_record(root, tx, &r)?;
        counts.records += 1;
        counts.buckets += usize::from(r.bucket.is_some());
        counts.objects += 1;
    }
    for id in transfer::bucket_ids(tx).map_err(|e| e.to_string())? {
        let b = transfer::dump_bucket(tx, id)
            .map_err(|e| e.to_string())?
            .ok_or(format!("bucket {id} vanished"))?;
        if b.record.is_none() {
            counts.bytes += export_bucket(root, tx, &b)?;
            counts.buckets += 1;
            counts.objects += 1;
        }
    }
    Ok(())
}

/// `recfiles export DIR`: the store as a new OCFL storage root at `dir`.
pub fn export(store: &Store, dir: &Path) -> Result<std::process::ExitCode, String> {
    if dir.exists() {
        return Err(format!(
            "{} already exists: export writes a new directory",
            dir.display()
        ));
    }
    let start = Instant::now();
    let mut partial = dir.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    fs::create_dir(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let tx = store.snapshot().map_err(|e| e.to_string())?;
    let mut counts = Counts::default();
    let written = write_root(&partial, &tx, &mut counts).and_then(|()| {
        let io_err = |e: io::Error| format!("cannot finish {}: {e}", dir.display());
        sync_tree(&partial).map_err(io_err)?;
        fs::rename(&partial, dir).map_err(io_err)?;
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        File::open(parent.unwrap_or(Path::new(".")))
            .and_then(|d| d.sync_all())
            .map_err(io_err)
    });
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&partial);
        return Err(e);
    }
    println!(
        "exported {} records and {} buckets as {} OCFL objects ({} bytes of content) to {} in {:.1} s",
        counts.records,
        counts.buckets,
        counts.objects,
        counts.bytes,
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

// ---- import --------------------------------------------------------------------------------

/// One object's inventory, read and checked against its sidecar digest.
struct Inventory {
    dir: PathBuf,
    /// digest → first content path.
    manifest: HashMap<String, String>,
    /// version name → (logical path → digest).
    states: BTreeMap<u64, HashMap<String, String>>,
    head: u64,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("{}: not what an export holds: {e}", path.display()))
}

/// Reads `dir/name`, checking it against `dir/name.sha512`.
fn read_checked(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let path = dir.join(name);
    let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let side = dir.join(format!("{name}.sha512"));
    let line =
        fs::read_to_string(&side).map_err(|e| format!("cannot read {}: {e}", side.display()))?;
    let want = line.split_whitespace().next().unwrap_or("");
    let got = sha512_hex(&bytes);
    if want != got {
        return Err(format!(
            "{} is damaged: its sha512 is {got}, {} says {want}",
            path.display(),
            side.display()
        ));
    }
    Ok(bytes)
}

fn version_number(name: &str) -> Option<u64> {
    name.strip_prefix('v')?.parse().ok()
}

fn read_inventory(dir: &Path) -> Result<Inventory, String> {
    let bytes = read_checked(dir, "inventory.json")?;
    let path = dir.join("inventory.json");
    let doc: Value = read_json(&path, &bytes)?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    if doc.get("digestAlgorithm").and_then(Value::as_str) != Some("sha512") {
        return Err(bad("the digest algorithm is not sha512"));
    }
    let head = doc
        .get("head")
        .and_then(Value::as_str)
        .and_then(version_number)
        .ok_or_else(|| bad("no head version"))?;
    let mut manifest = HashMap::new();
    for (digest, paths) in doc
        .get("manifest")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no manifest"))?
    {
        let first = paths
            .as_array()
            .and_then(|p| p.first())
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a manifest entry has no content path"))?;
        if first.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(bad("a content path leaves the object"));
        }
        manifest.insert(digest.to_lowercase(), first.to_string());
    }
    let mut states = BTreeMap::new();
    for (name, block) in doc
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no versions"))?
    {
        let n = version_number(name).ok_or_else(|| bad("a version name is not vN"))?;
        let mut state = HashMap::new();
        for (digest, paths) in block
            .get("state")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("a version has no state"))?
        {
            for p in paths
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                state.insert(p.to_string(), digest.to_lowercase());
            }
        }
        states.insert(n, state);
    }
    Ok(Inventory {
        dir: dir.to_path_buf(),
        manifest,
        states,
        head,
    })
}

impl Inventory {
    fn content_path(&self, digest: &str) -> Result<PathBuf, String> {
        self.manifest
            .get(digest)
            .map(|p| self.dir.join(p))
            .ok_or_else(|| {
                format!(
                    "{}: no content has the digest {digest}",
                    self.dir.join("inventory.json").display()
                )
            })
    }

    /// The whole content of a logical path in version `n`, checked against its digest.
    fn read_logical(&self, n: u64, logical: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(digest) = self.states.get(&n).and_then(|s| s.get(logical)) else {
            return Ok(None);
        };
        let path = self.content_path(digest)?;
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if &sha512_hex(&bytes) != digest {
            return Err(format!(
                "{} is damaged: its sha512 does not match the inventory",
                path.display()
            ));
        }
        Ok(Some(bytes))
    }
}

/// A reader that fails at its end when the bytes it gave do not have the expected sha512.
struct Verifying {
    inner: File,
    hasher: Sha512,
    want: String,
    path: PathBuf,
    /// The end was reached and the digest matched.
    verified: bool,
}

impl Read for Verifying {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let got = hex(&std::mem::take(&mut self.hasher).finalize());
            if got != self.want {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is damaged: its sha512 does not match the inventory",
                        self.path.display()
                    ),
                ));
            }
            self.verified = true;
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `recfiles import DIR`: an export's records and buckets into the store, or nothing.
pub fn import(store: &Store, dir: &Path) -> Result<std::process::ExitCode, String> {
    let start = Instant::now();
    if !dir.join("0=ocfl_1.1").is_file() {
        return Err(format!(
            "{} is not an OCFL 1.1 storage root (no 0=ocfl_1.1)",
            dir.display()
        ));
    }
    let root_bytes = read_checked(dir, SIDECAR)?;
    let root: RootSidecar = read_json(&dir.join(SIDECAR), &root_bytes)?;
    if root.format != FORMAT {
        return Err(format!(
            "{}: format {:?}, this build reads {FORMAT:?}",
            dir.join(SIDECAR).display(),
            root.format
        ));
    }
    let mut set = ImportSet {
        store: root.store,
        ..ImportSet::default()
    };
    // file → its content path and sha512.
    let mut content: HashMap<FileId, (PathBuf, String)> = HashMap::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "extensions"))
        .collect();
    entries.sort();
    for obj in entries {
        if !obj.join("0=ocfl_object_1.1").is_file() {
            return Err(format!("{} is not an OCFL 1.1 object", obj.display()));
        }
        let inv = read_inventory(&obj)?;
        let side_bytes = inv.read_logical(inv.head, SIDECAR)?.ok_or(format!(
            "{}: no {SIDECAR} in its head version",
            obj.display()
        ))?;
        let side: Sidecar = read_json(&obj.join(SIDECAR), &side_bytes)?;
        if side.format != FORMAT {
            return Err(format!(
                "{}: format {:?}, this build reads {FORMAT:?}",
                obj.display(),
                side.format
            ));
        }
        if let Some(b) = side.bucket {
            for v in &b.dump.versions {
                let Some(f) = &v.file else { continue };
                let digest = b.sha512.get(&f.id).ok_or(format!(
                    "{}: no sha512 for file {}",
                    obj.display(),
                    f.id
                ))?;
                content.insert(f.id, (inv.content_path(digest)?, digest.clone()));
            }
            set.buckets.push(b.dump);
        }
        if let Some(r) = side.record {
            let mut revisions = Vec::new();
            for (n, rev) in r.revisions.iter().enumerate() {
                let body = if rev.body {
                    let bytes = inv
                        .read_logical(n as u64 + 1, "record.json")?
                        .ok_or(format!(
                            "{}: version v{} has no record.json",
                            obj.display(),
                            n + 1
                        ))?;
                    Some(String::from_utf8(bytes).map_err(|_| {
                        format!("{}: record.json of v{} is not UTF-8", obj.display(), n + 1)
                    })?)
                } else {
                    None
                };
                revisions.push(RevisionDump {
                    body,
                    updated: rev.updated,
                });
            }
            set.records.push(RecordDump {
                id: r.id,
                created: r.created,
                updated: r.updated,
                deleted: r.deleted,
                bucket: r.bucket,
                revisions,
                pids: r.pids,
            });
        }
    }
    let mut open = |f: &FileDump| -> io::Result<Box<dyn Read>> {
        let (path, want) = content.get(&f.id).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no content for file {}", f.id),
            )
        })?;
        let inner = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Box::new(Verifying {
            inner,
            hasher: Sha512::new(),
            want: want.clone(),
            path: path.clone(),
            verified: false,
        }))
    };
    let report = transfer::import(store, &set, &mut open).map_err(|e| match e {
        recfiles::Error::UploadStream { source } => source.to_string(),
        e => e.to_string(),
    })?;
    println!(
        "imported {} records, {} buckets, {} versions and {} files ({} bytes) from {} in {:.1} s",
        report.records,
        report.buckets,
        report.versions,
        report.files,
        report.bytes,
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::key_paths;

    #[test]
    fn key_paths_are_valid_distinct_and_never_under_one_another() {
        let keys = [
            "a", "a/b", "a/b/c", "a//b", "/lead", "trail/", ".", "..", "x/../y", "x/./y", "sp ace",
            "%2F", "a%2Fb", "a/b%2Fc", "é/ü",
        ];
        let paths = key_paths(keys);
        let all: Vec<&String> = paths.values().collect();
        for (key, p) in &paths {
            let rest = p.strip_prefix("files/").unwrap();
            for seg in rest.split('/') {
                assert!(!["", ".", ".."].contains(&seg), "{key:?} → {p}");
                assert!(seg.bytes().all(|b| b.is_ascii_graphic()), "{key:?} → {p}");
            }
            for q in &all {
                assert!(!q.starts_with(&format!("{p}/")), "{q} lies under {p}");
            }
        }
        let mut distinct = all.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), keys.len());
        assert_eq!(paths["x/../y"], "files/x/%2E%2E/y");
        assert_eq!(paths["a"], "files/a");
        assert_eq!(paths["a/b"], "files/a%2Fb");
    }
}
