//! `recfiles export` and `import`, run as the built binary: an export is an OCFL 1.1 storage
//! root that ocfl-py's validator accepts; ingest → export → import → export gives the same
//! bytes; a damaged export, or one whose ids the store holds already, is refused with one line
//! and the store is left as it was.

mod cli_support;
use cli_support::{assert_one_line_error, content};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_recfiles");

fn run(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

fn ok(store: &Path, args: &[&str]) -> String {
    let out = run(store, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `stats --json` without what depends on the file's page layout rather than its content
/// (pages in use and free space).
fn stats(store: &Path) -> Value {
    let mut s: Value = serde_json::from_str(&ok(store, &["stats", "--json"])).unwrap();
    let map = s.as_object_mut().unwrap();
    for layout in ["allocated_pages", "free_bytes"] {
        assert!(map.remove(layout).is_some(), "stats --json lacks {layout}");
    }
    s
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A store with a record over several revisions (a replaced file, a deleted one, a file
/// larger than the 16 MiB staging batch, keys that need encoding) and a bucket of its own.
fn populated(dir: &Path, big: bool) -> PathBuf {
    let store = dir.join("source.redb");
    let tree = dir.join("tree");
    write(&tree.join("a.txt"), b"hello");
    write(&tree.join("sub/deep/b.bin"), &content(1, 100_000));
    if big {
        write(&tree.join("big.bin"), &content(2, 17 << 20));
    }
    ok(
        &store,
        &[
            "ingest",
            "--new-record",
            "--metadata",
            r#"{"title":"t"}"#,
            tree.to_str().unwrap(),
        ],
    );
    let other = dir.join("other.txt");
    write(&other, b"a new a.txt");
    ok(&store, &["put", "recid:1/a.txt", other.to_str().unwrap()]);
    ok(&store, &["rm", "recid:1/sub/deep/b.bin"]);
    // Keys no directory tree gives: `..`, an empty segment, a key under another key.
    for (n, key) in ["odd name/../x", "a//b", "a.txt/inner"].iter().enumerate() {
        let f = dir.join(format!("k{n}"));
        write(&f, key.as_bytes());
        ok(
            &store,
            &["put", &format!("recid:1/{key}"), f.to_str().unwrap()],
        );
    }
    ok(&store, &["ingest", tree.join("a.txt").to_str().unwrap()]);
    store
}

/// Every file under `root`, by relative path, with its bytes.
fn tree_of(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Any content file of the export with `len` bytes.
fn content_file(export: &Path, len: usize) -> PathBuf {
    let tree = tree_of(export);
    let (rel, _) = tree
        .iter()
        .find(|(p, b)| b.len() == len && p.to_string_lossy().contains("/content/files/"))
        .unwrap();
    export.join(rel)
}

#[test]
fn export_import_export_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated(dir.path(), true);
    let first = dir.path().join("first");
    let out = ok(&source, &["export", first.to_str().unwrap()]);
    assert!(
        out.starts_with("exported 1 records and 2 buckets as 2 OCFL objects"),
        "{out}"
    );

    let copy = dir.path().join("copy.redb");
    let out = ok(&copy, &["import", first.to_str().unwrap()]);
    assert!(out.starts_with("imported 1 records, 2 buckets"), "{out}");
    ok(&copy, &["check"]);
    let second = dir.path().join("second");
    ok(&copy, &["export", second.to_str().unwrap()]);

    let (a, b) = (tree_of(&first), tree_of(&second));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (path, bytes) in &a {
        assert!(&b[path] == bytes, "{} differs", path.display());
    }
    // The copy serves the same content, old versions included.
    let big = content(2, 17 << 20);
    let cat = Command::new(BIN)
        .args(["cat", "recid:1/big.bin", "--store"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(cat.stdout == big);
    assert_eq!(stats(&copy), {
        let mut s = stats(&source);
        s["file_size"] = stats(&copy)["file_size"].clone();
        s
    });
    // A revision's state holds the files its `_files` named then: the removed b.bin is in an
    // earlier version's content, and the key with `..` and a space is encoded.
    assert!(
        a.keys()
            .any(|p| p.ends_with("content/files/sub/deep/b.bin"))
    );
    for encoded in ["odd%20name/%2E%2E/x", "a%2F%2Fb", "a.txt%2Finner"] {
        assert!(
            a.keys()
                .any(|p| p.ends_with(format!("content/files/{encoded}"))),
            "no content/files/{encoded}"
        );
    }
}

/// ocfl-py's validator: `RECFILES_OCFL_VALIDATE`, or `ocfl-validate.py` on the PATH.
fn validator() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RECFILES_OCFL_VALIDATE") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ocfl-validate.py"))
        .find(|p| p.is_file())
}

#[test]
fn an_export_is_a_valid_ocfl_storage_root() {
    let Some(validate) = validator() else {
        assert!(
            std::env::var_os("RECFILES_REQUIRE_OCFL_VALIDATOR").is_none(),
            "ocfl-py's validator is required here but was not found (.ci/run installs it)"
        );
        eprintln!("SKIPPED: ocfl-validate.py not found (pip install ocfl-py; .ci/run does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = populated(dir.path(), false);
    let export = dir.path().join("export");
    ok(&source, &["export", export.to_str().unwrap()]);
    let out = Command::new(&validate).arg(&export).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the validator refused the export:\n{text}"
    );
    assert!(!text.contains("[E"), "{text}");
    // No logical path lies under another in any version (OCFL's E095; ocfl-py 2.1 does not
    // check it).
    for e in std::fs::read_dir(&export).unwrap() {
        let inv = e.unwrap().path().join("inventory.json");
        if !inv.is_file() {
            continue;
        }
        let inv: Value = serde_json::from_slice(&std::fs::read(&inv).unwrap()).unwrap();
        for (v, block) in inv["versions"].as_object().unwrap() {
            let paths: Vec<&str> = block["state"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|p| p.as_array().unwrap().iter().map(|p| p.as_str().unwrap()))
                .collect();
            for p in &paths {
                for q in &paths {
                    assert!(!q.starts_with(&format!("{p}/")), "{v}: {q} lies under {p}");
                }
            }
        }
    }
    // Each object on its own, which ocfl-py reports as VALID.
    for e in std::fs::read_dir(&export).unwrap() {
        let p = e.unwrap().path();
        if p.join("0=ocfl_object_1.1").is_file() {
            let out = Command::new(&validate).arg(&p).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && text.contains("is VALID"), "{text}");
        }
    }
}

#[test]
fn a_damaged_export_is_refused_and_the_store_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated(dir.path(), true);
    let export = dir.path().join("export");
    ok(&source, &["export", export.to_str().unwrap()]);
    // One flipped byte, in a small file and in the big one (staged before the transaction).
    for len in [100_000, 17 << 20] {
        let file = content_file(&export, len);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[len / 2] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let target = dir.path().join(format!("t{len}.redb"));
        let out = run(&target, &["import", export.to_str().unwrap()]);
        assert_one_line_error(&out, "is damaged");
        assert_one_line_error(&out, file.file_name().unwrap().to_str().unwrap());
        let s = stats(&target);
        for k in ["records", "buckets", "files", "chunks"] {
            assert_eq!(s[k], 0, "{k} after a refused import: {s}");
        }
        ok(&target, &["check"]);
        bytes[len / 2] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
    }
    // An inventory edited without its sidecar digest.
    let inv = std::fs::read_dir(&export)
        .unwrap()
        .map(|e| e.unwrap().path().join("inventory.json"))
        .find(|p| p.is_file())
        .unwrap();
    let mut text = std::fs::read_to_string(&inv).unwrap();
    text.push(' ');
    std::fs::write(&inv, text).unwrap();
    let target = dir.path().join("t.redb");
    let out = run(&target, &["import", export.to_str().unwrap()]);
    assert_one_line_error(&out, "inventory.json is damaged");
}

#[test]
fn an_import_into_a_store_holding_its_ids_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated(dir.path(), false);
    let export = dir.path().join("export");
    ok(&source, &["export", export.to_str().unwrap()]);
    let before = stats(&source);
    let out = run(&source, &["import", export.to_str().unwrap()]);
    assert_one_line_error(&out, "already holds");
    let mut after = stats(&source);
    after["file_size"] = before["file_size"].clone();
    assert_eq!(after, before);
}

#[test]
fn an_export_into_an_earlier_one_adds_versions_and_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated(dir.path(), false);
    let spare = dir.path().join("spare.txt");
    write(&spare, b"a bucket that will go");
    ok(&source, &["ingest", spare.to_str().unwrap()]);
    let second = dir.path().join("second.txt");
    write(&second, b"a second record");
    ok(
        &source,
        &["ingest", "--new-record", second.to_str().unwrap()],
    );
    let export = dir.path().join("export");
    ok(&source, &["export", export.to_str().unwrap()]);
    let before = tree_of(&export);

    // A record's file tagged (no new revision), a record's new revision, a bucket's file
    // tagged, a bucket removed, a new record.
    {
        let store = recfiles::StoreBuilder::new().open(&source).unwrap();
        let first = store.resolve_pid("recid", "1").unwrap();
        let listed = store
            .list_objects(
                first.bucket_id().unwrap(),
                &recfiles::ListOptions::default(),
            )
            .unwrap();
        store
            .set_object_tag(listed[0].version_id, "seen", "yes")
            .unwrap();
        let mut second = store.resolve_pid("recid", "2").unwrap();
        second.body_mut().insert("title".into(), "changed".into());
        store.commit_record(&mut second).unwrap();
        let records: Vec<_> = [first.bucket_id(), second.bucket_id()].into();
        let buckets = store.buckets().unwrap();
        let alone: Vec<_> = buckets
            .iter()
            .filter(|b| !records.contains(&Some(b.id)))
            .collect();
        assert_eq!(alone.len(), 2);
        let tagged = store
            .list_objects(alone[0].id, &recfiles::ListOptions::default())
            .unwrap();
        store
            .set_object_tag(tagged[0].version_id, "seen", "yes")
            .unwrap();
        store.remove_bucket(alone[1].id).unwrap();
        store
            .create_record(serde_json::json!({"title": "new"}))
            .unwrap();
    }
    let out = ok(&source, &["export", export.to_str().unwrap()]);
    assert!(
        out.contains("4 objects new or with new versions")
            && out.contains("0 up to date, 1 marked removed"),
        "{out}"
    );
    let after = tree_of(&export);
    for (path, bytes) in &before {
        let name = path.file_name().unwrap().to_str().unwrap();
        // Only object and root inventories and the root's sidecar are replaced.
        let replaced = path.components().count() <= 2
            && (name.starts_with("inventory.json") || name.starts_with("recfiles.json"));
        if !replaced {
            assert!(
                after.get(path) == Some(bytes),
                "{} was rewritten",
                path.display()
            );
        }
    }
    assert!(!dir.path().join("export.partial").exists());
    if let Some(validate) = validator() {
        let out = Command::new(&validate).arg(&export).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // Read back, it is the store as it is now: the same bytes as a new export of the source.
    let copy = dir.path().join("copy.redb");
    ok(&copy, &["import", export.to_str().unwrap()]);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&copy, &["export", a.to_str().unwrap()]);
    ok(&source, &["export", b.to_str().unwrap()]);
    assert!(tree_of(&a) == tree_of(&b));

    // Nothing changed since: nothing is written.
    let out = ok(&source, &["export", export.to_str().unwrap()]);
    assert!(
        out.contains(": 0 objects new or with new versions"),
        "{out}"
    );
    assert!(tree_of(&export) == after);
}

#[test]
fn export_refuses_an_existing_directory_and_import_a_non_export() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.redb");
    ok(&store, &["ingest", dir.path().to_str().unwrap()]);
    let taken = dir.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    assert_one_line_error(
        &run(&store, &["export", taken.to_str().unwrap()]),
        "already exists and is not a recfiles export",
    );
    assert_one_line_error(
        &run(&store, &["import", taken.to_str().unwrap()]),
        "not an OCFL 1.1 storage root",
    );
    let missing = dir.path().join("missing.redb");
    assert_one_line_error(
        &run(
            &missing,
            &["export", dir.path().join("e").to_str().unwrap()],
        ),
        "no store file",
    );
    assert!(!dir.path().join("e").exists() && !dir.path().join("e.partial").exists());
}

/// Starts `recfiles export`, waits until it is copying a file named `name`, interrupts it.
fn interrupt_export(store: &Path, export: &Path, watch: &Path, name: &str) -> Output {
    let child = Command::new(BIN)
        .args(["export", export.to_str().unwrap(), "--store"])
        .arg(store)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let copying = |dir: &Path| {
        dir.is_dir()
            && tree_of(dir)
                .keys()
                .any(|p| p.file_name().is_some_and(|n| n == name))
    };
    while !copying(watch) {
        std::thread::yield_now();
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

#[test]
fn an_interrupted_export_leaves_nothing_and_the_next_one_completes() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated(dir.path(), true);
    let export = dir.path().join("export");
    let partial = dir.path().join("export.partial");
    let out = interrupt_export(&source, &export, &partial, "big.bin");
    assert_eq!(
        out.status.code(),
        Some(130),
        "the export finished before SIGINT"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("export interrupted"));
    assert!(!export.exists() && !partial.exists());

    // Into an earlier export: interrupted while a new version copies a new large file.
    ok(&source, &["export", export.to_str().unwrap()]);
    let before = tree_of(&export);
    let big = dir.path().join("big2.bin");
    write(&big, &content(3, 17 << 20));
    ok(&source, &["put", "recid:1/big2.bin", big.to_str().unwrap()]);
    let out = interrupt_export(&source, &export, &export, "big2.bin");
    assert_eq!(
        out.status.code(),
        Some(130),
        "the export finished before SIGINT"
    );
    assert!(
        tree_of(&export) == before,
        "an interrupted export left something behind"
    );
    assert!(!partial.exists());
    let out = ok(&source, &["export", export.to_str().unwrap()]);
    assert!(out.contains("1 objects new or with new versions"), "{out}");
    let copy = dir.path().join("copy.redb");
    ok(&copy, &["import", export.to_str().unwrap()]);
    let cat = Command::new(BIN)
        .args(["cat", "recid:1/big2.bin", "--store"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(cat.stdout == content(3, 17 << 20));
}
