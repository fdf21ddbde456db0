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
//! A first export writes into `DIR.partial` beside the target and renames it at the end; an
//! export into an earlier one adds versions (new revisions, or one version when something
//! else changed) and new objects, and replaces only inventories and the root's sidecar, after
//! a sync. A failed or interrupted export leaves nothing. Import reads every inventory
//! (checking its sha512 sidecar), then hands the records and buckets to
//! `recfiles::transfer::import`, which verifies each file's sha512 (here, as it streams),
//! size and blake3 before its single transaction commits. docs/EXPORT.md says all of it.

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

use crate::store_cmds::{catch_sigint, interrupted};

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
    /// The record or bucket is no longer in the store (an export into an earlier export's
    /// root adds a version saying so; import skips the object).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    removed: bool,
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
    /// Revision `n`, revision 0 first.
    revisions: Vec<RevisionSide>,
}

#[derive(Serialize, Deserialize, Clone)]
struct RevisionSide {
    updated: Timestamp,
    /// Whether the revision has a body (its version's `record.json`).
    body: bool,
    /// The OCFL version holding it (`v{n+1}` in a first export).
    version: String,
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
        if interrupted() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
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

/// What an earlier export left in an object: its inventory and its head sidecar.
struct Earlier {
    manifest: BTreeMap<String, Vec<String>>,
    versions: BTreeMap<String, Value>,
    sidecar: Sidecar,
    sidecar_bytes: Vec<u8>,
}

fn read_earlier(dir: &Path) -> Result<Earlier, String> {
    let inv = read_inventory(dir)?;
    let path = dir.join("inventory.json");
    let doc = &inv.doc;
    let manifest = serde_json::from_value(doc["manifest"].clone())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let versions = serde_json::from_value(doc["versions"].clone())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let sidecar_bytes = inv.read_logical(inv.head, SIDECAR)?.ok_or(format!(
        "{}: no {SIDECAR} in its head version",
        dir.display()
    ))?;
    let sidecar: Sidecar = read_json(&dir.join(SIDECAR), &sidecar_bytes)?;
    if sidecar.format != FORMAT {
        return Err(format!(
            "{}: format {:?}, this build writes {FORMAT:?}",
            dir.display(),
            sidecar.format
        ));
    }
    Ok(Earlier {
        manifest,
        versions,
        sidecar,
        sidecar_bytes,
    })
}

/// One OCFL object being written, version by version: a new one, or new versions of one an
/// earlier export wrote.
struct ObjectWriter {
    /// The object's directory.
    root: PathBuf,
    id: String,
    /// digest → content paths.
    manifest: BTreeMap<String, Vec<String>>,
    /// The content already in the object, by file.
    files: HashMap<FileId, String>,
    versions: BTreeMap<String, Value>,
    /// The versions this export added (all of them for a new object).
    added: Vec<String>,
    /// The state of the version being written: logical path → digest.
    state: BTreeMap<String, String>,
    bytes: u64,
}

impl ObjectWriter {
    /// A new object, in `parent/<id>`.
    fn new(parent: &Path, id: String) -> io::Result<ObjectWriter> {
        let root = parent.join(&id);
        write_file(&root.join("0=ocfl_object_1.1"), b"ocfl_object_1.1\n")?;
        Ok(ObjectWriter {
            root,
            id,
            manifest: BTreeMap::new(),
            files: HashMap::new(),
            versions: BTreeMap::new(),
            added: Vec::new(),
            state: BTreeMap::new(),
            bytes: 0,
        })
    }

    /// New versions for the object an earlier export wrote in `parent/<id>`. Version
    /// directories past its inventory's head, left by an export that was interrupted before
    /// it replaced the inventory, are removed first.
    fn resume(parent: &Path, id: String, earlier: &Earlier) -> io::Result<ObjectWriter> {
        let root = parent.join(&id);
        let mut next = earlier.versions.len() + 1;
        while root.join(format!("v{next}")).exists() {
            fs::remove_dir_all(root.join(format!("v{next}")))?;
            next += 1;
        }
        let files = earlier
            .sidecar
            .bucket
            .iter()
            .flat_map(|b| b.sha512.iter().map(|(f, d)| (*f, d.clone())))
            .collect();
        Ok(ObjectWriter {
            root,
            id,
            manifest: earlier.manifest.clone(),
            files,
            versions: earlier.versions.clone(),
            added: Vec::new(),
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
        self.added.push(name.clone());
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

    /// The head version's inventory, to become the object's (see [`Self::publish`]).
    fn head_inventory(&self) -> io::Result<HeadInventory> {
        let head = self.root.join(format!("v{}", self.versions.len()));
        Ok((
            fs::read(head.join("inventory.json"))?,
            fs::read(head.join("inventory.json.sha512"))?,
        ))
    }

    /// Removes what this export wrote into the object: the versions it ended and the one it
    /// was writing.
    fn abandon(&self, new: bool) {
        if new {
            let _ = fs::remove_dir_all(&self.root);
        } else {
            for v in self.added.iter().chain([&self.version_name()]) {
                let _ = fs::remove_dir_all(self.root.join(v));
            }
        }
    }
}

/// An inventory's bytes and its sidecar digest file's.
type HeadInventory = (Vec<u8>, Vec<u8>);

/// Makes the head version's inventory the object's: the step that shows the new versions.
/// An earlier inventory is replaced by renames, each file whole.
fn publish(root: &Path, (inventory, digest): &HeadInventory) -> io::Result<()> {
    for (name, bytes) in [
        ("inventory.json.sha512", digest),
        ("inventory.json", inventory),
    ] {
        replace_file(&root.join(name), bytes)?;
    }
    Ok(())
}

/// Writes `path` through a temporary file and a rename, so it is never seen half written.
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    write_file(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// What an export wrote.
#[derive(Default)]
struct Counts {
    records: usize,
    buckets: usize,
    objects: usize,
    unchanged: usize,
    removed: usize,
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

/// The sidecar's bytes, once every file of the bucket has its content in the object.
fn sidecar_bytes(
    obj: &ObjectWriter,
    record: Option<&RecordSide>,
    bucket: Option<&BucketDump>,
) -> Option<Vec<u8>> {
    let mut sha512 = BTreeMap::new();
    for f in bucket
        .iter()
        .flat_map(|b| &b.versions)
        .filter_map(|v| v.file.as_ref())
    {
        sha512.insert(f.id, obj.files.get(&f.id)?.clone());
    }
    let sidecar = Sidecar {
        format: FORMAT.into(),
        record: record.map(|r| RecordSide {
            pids: r.pids.clone(),
            revisions: r.revisions.clone(),
            ..*r
        }),
        bucket: bucket.map(|b| BucketSide {
            dump: b.clone(),
            sha512,
        }),
        removed: false,
    };
    Some(pretty(&sidecar))
}

/// Adds the bucket's history (content no state shows yet) and the sidecar to the version
/// being written.
fn add_history_and_sidecar(
    obj: &mut ObjectWriter,
    tx: &ReadTx,
    record: Option<&RecordSide>,
    bucket: Option<&BucketDump>,
) -> Result<(), String> {
    for v in bucket.iter().flat_map(|b| &b.versions) {
        let Some(f) = &v.file else { continue };
        if !obj.files.contains_key(&f.id) {
            obj.add_file(tx, &format!("history/{}", v.version_id), f.id)?;
        }
    }
    let bytes = sidecar_bytes(obj, record, bucket).ok_or("a file without content")?;
    obj.add_bytes(SIDECAR, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", obj.id))
}

/// Adds a revision's `record.json` and the files its `_files` names to the version being
/// written.
fn add_revision(
    obj: &mut ObjectWriter,
    tx: &ReadTx,
    rev: &RevisionDump,
    files_by_version: &HashMap<String, FileId>,
) -> Result<(), String> {
    let Some(body) = &rev.body else {
        return Ok(());
    };
    obj.add_bytes("record.json", body.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", obj.id))?;
    let named = files_named(body);
    let paths = key_paths(named.iter().map(|(k, _)| k.as_str()));
    for (key, version) in &named {
        // A version removed since the revision was written has no content to show.
        if let Some(file) = files_by_version.get(version) {
            obj.add_file(tx, &paths[key.as_str()], *file)?;
        }
    }
    Ok(())
}

/// Writes a record's object, or the versions an earlier export of it lacks. Returns false
/// when the earlier export was up to date.
fn export_record(
    obj: &mut ObjectWriter,
    tx: &ReadTx,
    r: &RecordDump,
    earlier: Option<&Earlier>,
) -> Result<bool, String> {
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
    // The revisions the earlier export holds keep their versions; the others get new ones.
    let mut revisions: Vec<RevisionSide> = match earlier.map(|e| &e.sidecar.record) {
        Some(Some(side)) => side.revisions.clone(),
        Some(None) => return Err(format!("{}: not the object of a record", obj.id)),
        None => Vec::new(),
    };
    if revisions.len() > r.revisions.len() {
        return Err(format!(
            "{}: the export has {} revisions of record {}, the store {}: not an export of this store",
            obj.id,
            revisions.len(),
            r.id,
            r.revisions.len()
        ));
    }
    let first_new = revisions.len();
    for (n, rev) in r.revisions.iter().enumerate().skip(first_new) {
        revisions.push(RevisionSide {
            updated: rev.updated,
            body: rev.body.is_some(),
            version: format!("v{}", obj.versions.len() + 1 + n - first_new),
        });
    }
    let side = RecordSide {
        id: r.id,
        created: r.created,
        updated: r.updated,
        deleted: r.deleted,
        bucket: r.bucket,
        pids: r.pids.clone(),
        revisions,
    };
    if first_new == r.revisions.len() {
        // No new revision: a version only if something else changed (tags, PIDs, the
        // bucket's versions), holding the current revision's state again.
        let now = sidecar_bytes(obj, Some(&side), bucket.as_ref());
        if earlier.is_some_and(|e| now.as_ref() == Some(&e.sidecar_bytes)) {
            return Ok(false);
        }
        if let Some(rev) = r.revisions.last() {
            add_revision(obj, tx, rev, &files_by_version)?;
        }
        add_history_and_sidecar(obj, tx, Some(&side), bucket.as_ref())?;
        obj.end_version(
            Timestamp::now(),
            format!(
                "revision {} again: the record's files or PIDs changed",
                r.revisions.len() - 1
            ),
        )
        .map_err(io_err)?;
        return Ok(true);
    }
    let last = r.revisions.len() - 1;
    for (n, rev) in r.revisions.iter().enumerate().skip(first_new) {
        add_revision(obj, tx, rev, &files_by_version)?;
        if n == last {
            add_history_and_sidecar(obj, tx, Some(&side), bucket.as_ref())?;
        }
        let message = match &rev.body {
            Some(_) => format!("revision {n}"),
            None => format!("revision {n} (deleted)"),
        };
        obj.end_version(rev.updated, message).map_err(io_err)?;
    }
    Ok(true)
}

/// Writes a bucket's object, or a new version of an earlier export's when the bucket changed.
fn export_bucket(
    obj: &mut ObjectWriter,
    tx: &ReadTx,
    b: &BucketDump,
    earlier: Option<&Earlier>,
) -> Result<bool, String> {
    let now = sidecar_bytes(obj, None, Some(b));
    if earlier.is_some_and(|e| now.as_ref() == Some(&e.sidecar_bytes)) {
        return Ok(false);
    }
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
    add_history_and_sidecar(obj, tx, None, Some(b))?;
    let created = if earlier.is_some() {
        Timestamp::now()
    } else {
        b.updated
    };
    obj.end_version(created, "bucket".into())
        .map_err(|e| format!("cannot write the object of bucket {}: {e}", b.id))?;
    Ok(true)
}

/// One object to write: a record or a bucket without one.
enum Item {
    Record(RecordDump),
    Bucket(BucketDump),
}

/// An export under way: new objects go to `staging`, new versions of objects an earlier
/// export wrote go into them in `root`; nothing is visible until [`Export::publish`].
struct Export<'a> {
    root: &'a Path,
    staging: PathBuf,
    /// Whether `root` holds an earlier export.
    incremental: bool,
    /// Objects with new versions, with their new inventory.
    resumed: Vec<(ObjectWriter, HeadInventory)>,
    /// New objects, by directory name.
    created: Vec<String>,
    counts: Counts,
}

impl Export<'_> {
    fn object(&mut self, tx: &ReadTx, id: String, item: &Item) -> Result<(), String> {
        if interrupted() {
            return Err("interrupted".into());
        }
        let existing = self.incremental && self.root.join(&id).is_dir();
        let earlier = match existing {
            true => Some(read_earlier(&self.root.join(&id))?),
            false => None,
        };
        let mut obj = match &earlier {
            Some(e) => ObjectWriter::resume(self.root, id.clone(), e),
            None => ObjectWriter::new(&self.staging, id.clone()),
        }
        .map_err(|e| format!("cannot write object {id}: {e}"))?;
        let written = match item {
            Item::Record(r) => export_record(&mut obj, tx, r, earlier.as_ref()),
            Item::Bucket(b) => export_bucket(&mut obj, tx, b, earlier.as_ref()),
        };
        let inventory = written.and_then(|changed| match changed {
            true => obj.head_inventory().map(Some).map_err(|e| e.to_string()),
            false => Ok(None),
        });
        match inventory {
            Err(e) => {
                obj.abandon(earlier.is_none());
                Err(e)
            }
            Ok(None) => {
                self.counts.unchanged += 1;
                Ok(())
            }
            Ok(Some(inv)) => {
                self.counts.bytes += obj.bytes;
                self.counts.objects += 1;
                match earlier {
                    Some(_) => self.resumed.push((obj, inv)),
                    None => {
                        publish(&obj.root, &inv).map_err(|e| e.to_string())?;
                        self.created.push(id);
                    }
                }
                Ok(())
            }
        }
    }

    /// A version saying the record or bucket left the store, for an object of an earlier
    /// export whose record or bucket this export did not write.
    fn removed(&mut self, id: String) -> Result<(), String> {
        let earlier = read_earlier(&self.root.join(&id))?;
        if earlier.sidecar.removed {
            return Ok(());
        }
        let mut obj = ObjectWriter::resume(self.root, id.clone(), &earlier)
            .map_err(|e| format!("cannot write object {id}: {e}"))?;
        let sidecar = Sidecar {
            format: FORMAT.into(),
            record: None,
            bucket: None,
            removed: true,
        };
        let written = obj
            .add_bytes(SIDECAR, &pretty(&sidecar))
            .and_then(|()| obj.end_version(Timestamp::now(), "removed from the store".into()))
            .and_then(|()| obj.head_inventory());
        match written {
            Ok(inv) => {
                self.counts.removed += 1;
                self.resumed.push((obj, inv));
                Ok(())
            }
            Err(e) => {
                obj.abandon(false);
                Err(format!("cannot write object {}: {e}", obj.id))
            }
        }
    }

    /// Removes everything this export wrote.
    fn abandon(&self) {
        for (obj, _) in &self.resumed {
            obj.abandon(false);
        }
        let _ = fs::remove_dir_all(&self.staging);
    }

    /// Makes the export durable, then visible: the root's sidecar, the new objects moved in,
    /// the new inventories of earlier objects.
    fn publish(&self, root_sidecar: &[u8]) -> io::Result<()> {
        if !self.incremental {
            write_with_digest(&self.staging, SIDECAR, root_sidecar)?;
            sync_tree(&self.staging)?;
            fs::rename(&self.staging, self.root)?;
        } else {
            sync_tree(&self.staging)?;
            for (obj, inv) in &self.resumed {
                publish(&obj.root, inv)?;
            }
            for id in &self.created {
                fs::rename(self.staging.join(id), self.root.join(id))?;
            }
            let line = format!("{} {SIDECAR}\n", sha512_hex(root_sidecar));
            replace_file(
                &self.root.join(format!("{SIDECAR}.sha512")),
                line.as_bytes(),
            )?;
            replace_file(&self.root.join(SIDECAR), root_sidecar)?;
            fs::remove_dir(&self.staging)?;
            sync_tree(self.root)?;
        }
        let parent = self.root.parent().filter(|p| !p.as_os_str().is_empty());
        File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
    }
}

fn write_objects(export: &mut Export<'_>, tx: &ReadTx) -> Result<(), String> {
    let mut written = BTreeSet::new();
    for id in transfer::record_ids(tx).map_err(|e| e.to_string())? {
        let r = transfer::dump_record(tx, id)
            .map_err(|e| e.to_string())?
            .ok_or(format!("record {id} vanished"))?;
        let name = format!("record-{id}");
        export.object(tx, name.clone(), &Item::Record(r.clone()))?;
        written.insert(name);
        export.counts.records += 1;
        export.counts.buckets += usize::from(r.bucket.is_some());
    }
    for id in transfer::bucket_ids(tx).map_err(|e| e.to_string())? {
        let b = transfer::dump_bucket(tx, id)
            .map_err(|e| e.to_string())?
            .ok_or(format!("bucket {id} vanished"))?;
        if b.record.is_none() {
            let name = format!("bucket-{id}");
            export.object(tx, name.clone(), &Item::Bucket(b))?;
            written.insert(name);
            export.counts.buckets += 1;
        }
    }
    if export.incremental {
        for name in object_dirs(export.root)? {
            if !written.contains(&name) {
                export.removed(name)?;
            }
        }
    }
    Ok(())
}

/// The object directories of a storage root, by name.
fn object_dirs(root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).map_err(|e| format!("cannot read {}: {e}", root.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        if e.path().join("0=ocfl_object_1.1").is_file() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// `recfiles export DIR`: the store as a new OCFL storage root at `dir`, or, into an earlier
/// export, the versions it lacks.
pub fn export(store: &Store, dir: &Path) -> Result<std::process::ExitCode, String> {
    let start = Instant::now();
    catch_sigint();
    // Without a trailing slash, so that `DIR.partial` is a sibling, not a child.
    let dir: &Path = &dir.components().collect::<PathBuf>();
    let incremental = dir.exists();
    if incremental {
        let ours = dir.join("0=ocfl_1.1").is_file()
            && read_checked(dir, SIDECAR)
                .and_then(|b| read_json::<RootSidecar>(&dir.join(SIDECAR), &b))
                .is_ok_and(|r| r.format == FORMAT);
        if !ours {
            return Err(format!(
                "{} already exists and is not a recfiles export: export writes a new \
                 directory, or adds to an earlier export",
                dir.display()
            ));
        }
    }
    let mut staging = dir.as_os_str().to_owned();
    staging.push(".partial");
    let staging = PathBuf::from(staging);
    fs::create_dir(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let mut export = Export {
        root: dir,
        staging,
        incremental,
        resumed: Vec::new(),
        created: Vec::new(),
        counts: Counts::default(),
    };
    let tx = store.snapshot().map_err(|e| e.to_string())?;
    let written = (|| {
        if !incremental {
            write_file(&export.staging.join("0=ocfl_1.1"), b"ocfl_1.1\n")
                .map_err(|e| e.to_string())?;
            let layout = json!({
                "extension": LAYOUT,
                "description": "Extension 0002: Flat Direct Storage Layout (object directory = object id)",
            });
            // The layout has no parameters, so no `extensions/0002-…/config.json` (optional,
            // and ocfl-py 2.1's validator fails on one).
            write_file(&export.staging.join("ocfl_layout.json"), &pretty(&layout))
                .map_err(|e| e.to_string())?;
        }
        write_objects(&mut export, &tx)?;
        let side = RootSidecar {
            format: FORMAT.into(),
            store: transfer::dump_store(&tx).map_err(|e| e.to_string())?,
        };
        export
            .publish(&pretty(&side))
            .map_err(|e| format!("cannot finish {}: {e}", dir.display()))
    })();
    if let Err(e) = written {
        export.abandon();
        if interrupted() {
            eprintln!("recfiles: export interrupted; nothing of it was kept");
            return Ok(std::process::ExitCode::from(130));
        }
        return Err(e);
    }
    let c = &export.counts;
    let line = if incremental {
        format!(
            "exported {} records and {} buckets to {}: {} objects new or with new versions ({} \
             bytes of new content), {} up to date, {} marked removed",
            c.records,
            c.buckets,
            dir.display(),
            c.objects,
            c.bytes,
            c.unchanged,
            c.removed
        )
    } else {
        format!(
            "exported {} records and {} buckets as {} OCFL objects ({} bytes of content) to {}",
            c.records,
            c.buckets,
            c.objects,
            c.bytes,
            dir.display()
        )
    };
    println!("{line} in {:.1} s", start.elapsed().as_secs_f64());
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
    /// The inventory as read (checked against its sidecar digest).
    doc: Value,
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
        doc,
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
        if interrupted() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
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
    catch_sigint();
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
        if side.removed {
            continue;
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
            for rev in &r.revisions {
                let body = if rev.body {
                    let v = &rev.version;
                    let n = version_number(v)
                        .ok_or(format!("{}: {v:?} is not a version", obj.display()))?;
                    let bytes = inv
                        .read_logical(n, "record.json")?
                        .ok_or(format!("{}: version {v} has no record.json", obj.display()))?;
                    Some(String::from_utf8(bytes).map_err(|_| {
                        format!("{}: record.json of {v} is not UTF-8", obj.display())
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
    let report = match transfer::import(store, &set, &mut open) {
        Ok(report) => report,
        Err(_) if interrupted() => {
            eprintln!("recfiles: import interrupted; nothing of it was kept");
            return Ok(std::process::ExitCode::from(130));
        }
        Err(recfiles::Error::UploadStream { source }) => return Err(source.to_string()),
        Err(e) => return Err(e.to_string()),
    };
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
