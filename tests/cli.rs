//! The `recfiles` command line, run as a built binary: each subcommand's output and exit code,
//! `--json` parsed back, errors as one line on stderr, and an ingest interrupted by SIGINT.

mod cli_support;
use cli_support::content;
use recfiles::prelude::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_recfiles");

/// A temporary directory with a store path in it.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("s.redb")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `recfiles ARGS --store <store>`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--store")
            .arg(self.store())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok_bytes(args)).unwrap()
    }

    /// Runs a command that must succeed and returns its stdout's bytes.
    fn ok_bytes(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs a command with `--json` and parses its stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Writes a file under the directory, creating its parents.
    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// The only bucket's id.
    fn bucket(&self) -> String {
        let v = self.json(&["ls"]);
        let buckets = v["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 1, "{v}");
        buckets[0]["id"].as_str().unwrap().to_string()
    }
}

/// An error: a non-zero exit, exactly one line on stderr, no panic.
fn assert_one_line_error(out: &Output, contains: &str) {
    cli_support::assert_one_line_error(out, contains);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "stderr: {err}");
}

fn keys(listing: &Value) -> Vec<String> {
    listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ingest_stores_a_tree_under_relative_keys_and_summarises() {
    let env = Env::new();
    // Over 16 KiB, so the copy is deduplicated (smaller inline files are stored per copy).
    let alpha = "alpha".repeat(4000);
    env.write("src/a.txt", alpha.as_bytes());
    env.write("src/sub/b.txt", b"beta");
    env.write("src/sub/deeper/copy.txt", alpha.as_bytes());
    std::os::unix::fs::symlink("a.txt", env.path("src/link")).unwrap();
    let src = env.path("src");
    let out = env.run(&["ingest", src.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files"], 3);
    assert_eq!(summary["bytes"], 40_004);
    // `alpha` is stored once.
    assert_eq!(summary["stored_bytes"], 20_004);
    assert_eq!(summary["skipped"], 1);
    assert_eq!(summary["failed"], 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: skipping") && stderr.contains("link"),
        "{stderr}"
    );
    // stderr is a pipe here: no progress bar.
    assert!(!stderr.contains('\r'), "{stderr:?}");

    let bucket = env.bucket();
    let listing = env.json(&["ls", &bucket]);
    assert_eq!(
        keys(&listing),
        ["a.txt", "sub/b.txt", "sub/deeper/copy.txt"]
    );
    assert_eq!(
        env.ok(&["cat", &format!("{bucket}/sub/deeper/copy.txt")]),
        alpha
    );
}

#[test]
fn ingest_plain_summary_names_files_bytes_and_rate() {
    let env = Env::new();
    env.write("one.bin", &content(1, 10_000));
    let out = env.ok(&["ingest", env.path("one.bin").to_str().unwrap()]);
    assert!(out.starts_with("ingested 1 files into bucket "), "{out}");
    assert!(out.contains("10000 (9.8 KiB) logical"), "{out}");
    assert!(out.contains("10000 (9.8 KiB) stored after dedup"), "{out}");
    assert!(out.contains(" MiB/s"), "{out}");
}

#[test]
fn ingest_with_jobs_stores_every_file() {
    let env = Env::new();
    for i in 0..60 {
        env.write(
            &format!("t/d{}/f{i}.bin", i % 4),
            &content(i, 100 + i as usize * 50),
        );
    }
    let summary = env.json(&["ingest", env.path("t").to_str().unwrap(), "--jobs", "4"]);
    assert_eq!(summary["files"], 60);
    let bucket = env.bucket();
    let listing = env.json(&["ls", &bucket]);
    assert_eq!(keys(&listing).len(), 60);
    let got = env.ok_bytes(&["cat", &format!("{bucket}/d2/f10.bin")]);
    assert_eq!(got, content(10, 600));
    assert_eq!(
        env.ok(&["check"]).lines().last(),
        Some(format!("{}: ok", env.store().display())).as_deref()
    );
}

#[test]
fn ingest_reports_a_missing_path_and_exits_non_zero() {
    let env = Env::new();
    env.write("here.txt", b"x");
    let out = env.run(&[
        "ingest",
        env.path("here.txt").to_str().unwrap(),
        env.path("gone.txt").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files"], 1);
    assert_eq!(summary["unreadable"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("gone.txt"));
}

#[test]
fn ingest_into_a_new_record_lists_the_files_in_the_record() {
    let env = Env::new();
    env.write("d/x.txt", b"x");
    env.write("d/y/z.txt", b"zz");
    env.json(&[
        "ingest",
        env.path("d").to_str().unwrap(),
        "--new-record",
        "--metadata",
        r#"{"title": "Data"}"#,
    ]);
    let records = env.json(&["records"]);
    let list = records["records"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["recid"], "1");
    assert_eq!(list[0]["files"], 2);
    let listing = env.json(&["ls", "recid:1"]);
    assert_eq!(keys(&listing), ["x.txt", "y/z.txt"]);
    let one = env.json(&["records", "1"]);
    assert_eq!(one["metadata"]["title"], "Data");
    let files: Vec<&str> = one["metadata"]["_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["x.txt", "y/z.txt"]);
    // Creation, then one revision: small files are committed together.
    assert_eq!(one["revisions"].as_array().unwrap().len(), 2);

    // Into the same record again.
    env.write("more.txt", b"m");
    env.json(&[
        "ingest",
        env.path("more.txt").to_str().unwrap(),
        "--record",
        "recid:1",
    ]);
    assert_eq!(keys(&env.json(&["ls", "recid:1"])).len(), 3);
}

#[test]
fn put_cat_get_rm_and_restore_work_on_versions() {
    let env = Env::new();
    env.write("v1.txt", b"first");
    env.json(&["ingest", env.path("v1.txt").to_str().unwrap()]);
    let bucket = env.bucket();
    let loc = format!("{bucket}/v1.txt");
    let out = env.run_with_stdin(&["put", &loc], Some(b"second"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.ok(&["cat", &loc]), "second");

    let versions = env.json(&["ls", &bucket, "--versions"]);
    let v: Vec<&Value> = versions["objects"].as_array().unwrap().iter().collect();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["is_head"], true);
    let old = v[1]["version_id"].as_str().unwrap().to_string();
    assert_eq!(env.ok(&["cat", &loc, "--version", &old]), "first");

    let target = env.path("out/got.txt");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    env.ok(&[
        "get",
        &loc,
        "-o",
        target.to_str().unwrap(),
        "--version",
        &old,
    ]);
    assert_eq!(std::fs::read(&target).unwrap(), b"first");

    let out = env.ok(&["rm", &loc]);
    assert!(out.contains("deleted"), "{out}");
    assert!(keys(&env.json(&["ls", &bucket])).is_empty());
    let with_markers = env.json(&["ls", &bucket, "--deleted"]);
    assert_eq!(with_markers["objects"][0]["delete_marker"], true);
    assert_one_line_error(&env.run(&["cat", &loc]), "no file");

    env.ok(&["restore", &loc, "--version", &old]);
    assert_eq!(env.ok(&["cat", &loc]), "first");
    assert_eq!(env.json(&["check"])["ok"], true);
}

#[test]
fn rm_and_restore_through_a_record_keep_its_files_true() {
    let env = Env::new();
    env.write("a.txt", b"a");
    env.json(&[
        "ingest",
        env.path("a.txt").to_str().unwrap(),
        "--new-record",
    ]);
    let first = env.json(&["ls", "recid:1"])["objects"][0]["version_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["rm", "recid:1/a.txt"]);
    assert_eq!(env.json(&["records"])["records"][0]["files"], 0);
    env.ok(&["restore", "recid:1/a.txt", "--version", &first]);
    assert_eq!(env.json(&["records"])["records"][0]["files"], 1);
    assert_eq!(env.ok(&["cat", "recid:1/a.txt"]), "a");
}

#[test]
fn plain_listings_are_aligned_tables() {
    let env = Env::new();
    env.write("t/short", b"1");
    env.write("t/a-much-longer-name.txt", &content(3, 12_345));
    env.json(&["ingest", env.path("t").to_str().unwrap()]);
    let bucket = env.bucket();
    let out = env.ok(&["ls", &bucket]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with(" SIZE  CREATED"), "{out}");
    // Sizes right-aligned under the header; keys start in the same column.
    assert!(lines[1].starts_with("12345  "), "{out}");
    assert!(lines[2].starts_with("    1  "), "{out}");
    let col = lines[0].find("KEY").unwrap();
    assert_eq!(&lines[1][col..], "a-much-longer-name.txt");
    assert_eq!(&lines[2][col..], "short");
    let buckets = env.ok(&["ls"]);
    assert!(buckets.starts_with("BUCKET  "), "{buckets}");
    assert!(buckets.contains(&bucket));
}

#[test]
fn stats_counts_objects_versions_and_dedup() {
    let env = Env::new();
    let big = content(7, 3 << 20);
    env.write("d/one.bin", &big);
    env.write("d/two.bin", &big);
    env.write("d/small.txt", b"small");
    env.json(&["ingest", env.path("d").to_str().unwrap()]);
    let s = env.json(&["stats"]);
    assert_eq!(s["buckets"], 1);
    assert_eq!(s["objects"], 3);
    assert_eq!(s["versions"], 3);
    assert_eq!(s["files"], 2);
    // The default chunk is 1,048,512 bytes (64 short of 1 MiB): 3 MiB takes four.
    assert_eq!(s["chunks"], 4);
    assert_eq!(s["logical_bytes"], 2 * (3 << 20) + 5);
    assert_eq!(s["stored_bytes"], (3 << 20) + 5);
    let ratio = s["dedup_ratio"].as_f64().unwrap();
    assert!((ratio - 2.0).abs() < 0.001, "{ratio}");
    assert!(s["file_size"].as_u64().unwrap() > 3 << 20);
    // 3 MiB of chunks lie in allocated pages of the store file.
    let pages = s["allocated_pages"].as_u64().unwrap() * s["page_size"].as_u64().unwrap();
    assert!(pages >= 3 << 20, "{s}");
    assert!(pages + s["free_bytes"].as_u64().unwrap() <= s["file_size"].as_u64().unwrap());
    let plain = env.ok(&["stats"]);
    assert!(plain.contains("dedup ratio      2.00"), "{plain}");
    assert!(
        plain.contains("pages in use") && plain.contains("free in file"),
        "{plain}"
    );
}

#[test]
fn verify_names_damaged_files_and_exits_non_zero() {
    let env = Env::new();
    let victim = content(11, 3 << 20);
    env.write("d/victim.bin", &victim);
    env.write("d/fine.txt", b"fine");
    env.json(&["ingest", env.path("d").to_str().unwrap()]);
    let clean = env.json(&["verify"]);
    assert_eq!(clean["checked"], 2);
    assert!(clean["damaged"].as_array().unwrap().is_empty());

    // Flip a byte in every copy of a window inside the second chunk.
    let needle = &victim[(3 << 19)..(3 << 19) + 64];
    let mut bytes = std::fs::read(env.store()).unwrap();
    let mut hits = 0;
    let mut from = 0;
    while let Some(i) = bytes[from..].windows(64).position(|w| w == needle) {
        bytes[from + i + 32] ^= 0x5a;
        hits += 1;
        from += i + 1;
    }
    assert!(hits > 0);
    std::fs::write(env.store(), bytes).unwrap();

    let bucket = env.bucket();
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("damaged: {bucket}/victim.bin")),
        "{text}"
    );
    assert!(!text.contains("fine.txt"), "{text}");
    let scoped = env.run(&["verify", "--bucket", &bucket, "--json"]);
    assert_eq!(scoped.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&scoped.stdout).unwrap();
    assert_eq!(report["damaged"].as_array().unwrap().len(), 1);
}

#[test]
fn check_and_compact_report_in_plain_words() {
    let env = Env::new();
    env.write("d/a.bin", &content(5, 2 << 20));
    env.json(&["ingest", env.path("d").to_str().unwrap()]);
    let bucket = env.bucket();
    env.ok(&["rm", &format!("{bucket}/a.bin")]);
    let check = env.ok(&["check"]);
    assert!(check.contains("storage engine   ok"), "{check}");
    assert!(check.contains("invariants       0 problem(s)"), "{check}");
    let compact = env.ok(&["compact"]);
    assert!(compact.contains(" → "), "{compact}");
    assert_eq!(env.json(&["check"])["ok"], true);
}

#[test]
fn read_only_commands_leave_the_file_unchanged() {
    let env = Env::new();
    env.write("a.txt", b"a");
    env.json(&[
        "ingest",
        env.path("a.txt").to_str().unwrap(),
        "--new-record",
    ]);
    let before = std::fs::read(env.store()).unwrap();
    let bucket = env.bucket();
    for args in [
        vec!["ls"],
        vec!["ls", &bucket],
        vec!["ls", "recid:1", "--versions"],
        vec!["records"],
        vec!["records", "1"],
        vec!["stats"],
        vec!["check"],
        vec!["cat", "recid:1/a.txt"],
    ] {
        env.ok(&args);
    }
    assert!(std::fs::read(env.store()).unwrap() == before);
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let env = Env::new();
    assert_one_line_error(&env.run(&["ls"]), "no store file");
    assert_one_line_error(&env.run(&["stats"]), "no store file");
    env.write("a.txt", b"a");
    env.json(&["ingest", env.path("a.txt").to_str().unwrap()]);
    assert_one_line_error(&env.run(&["ls", "not-an-id"]), "neither a bucket id");
    assert_one_line_error(
        &env.run(&["ls", "01a2513e-65fc-74b0-9e59-bf947efbce34"]),
        "no bucket 01a2513e-65fc-74b0-9e59-bf947efbce34",
    );
    assert_one_line_error(&env.run(&["records", "recid:x"]), "not a recid");
    assert_one_line_error(&env.run(&["records", "99"]), "no record recid:99");
    assert_one_line_error(&env.run(&["cat", "recid:99/a.txt"]), "recid:99");
    let bucket = env.bucket();
    assert_one_line_error(&env.run(&["cat", &bucket]), "names no file");
    assert_one_line_error(
        &env.run(&["cat", &format!("{bucket}/a.txt"), "--version", "zz"]),
        "not a version id",
    );

    // A locked bucket refuses an ingest before anything is read.
    let id: BucketId = bucket.parse().unwrap();
    let store = Store::open(env.store()).unwrap();
    store.set_bucket_locked(id, true).unwrap();
    store.close().unwrap();
    assert_one_line_error(
        &env.run(&[
            "ingest",
            env.path("a.txt").to_str().unwrap(),
            "--bucket",
            &bucket,
        ]),
        "is locked",
    );
    assert_one_line_error(
        &env.run_with_stdin(&["put", &format!("{bucket}/b.txt")], Some(b"b")),
        "locked",
    );
}

#[test]
fn a_store_held_by_another_process_is_one_line() {
    let env = Env::new();
    env.write("a.txt", b"a");
    env.json(&["ingest", env.path("a.txt").to_str().unwrap()]);
    let held = Store::open(env.store()).unwrap();
    let out = env.run(&["ls"]);
    assert_one_line_error(&out, "cannot open store");
    drop(held);
}

/// Every key the store holds in its only bucket, read through the library.
fn stored_keys(store: &Path) -> BTreeSet<String> {
    let s = StoreBuilder::new().open_read_only(store).unwrap();
    let buckets = s.buckets().unwrap();
    assert_eq!(buckets.len(), 1);
    let keys = s
        .list_objects(buckets[0].id, &ListOptions::default())
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(s.check().unwrap().is_ok());
    keys
}

#[test]
fn sigint_stops_an_ingest_with_exactly_the_reported_files_stored() {
    let env = Env::new();
    let total = 4000;
    for i in 0..total {
        env.write(&format!("many/{:02}/f{i:05}", i % 50), &content(i, 8000));
    }
    let mut child = Command::new(BIN)
        .args(["ingest", "-v", "--jobs", "2"])
        .arg(env.path("many"))
        .arg("--store")
        .arg(env.store())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut reported = BTreeSet::new();
    // Wait until the ingest is under way, then interrupt it.
    while reported.len() < 20 {
        let line = lines.next().expect("ingest ended early").unwrap();
        let key = line.split('\t').nth(1).unwrap().to_string();
        reported.insert(key);
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for line in lines {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("stored\t") {
            reported.insert(rest.split('\t').next().unwrap().to_string());
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        reported.len() < total as usize,
        "the ingest finished before SIGINT"
    );
    assert_eq!(stored_keys(&env.store()), reported);
}

#[test]
fn a_file_the_store_refuses_is_named_and_the_rest_of_its_batch_goes_in() {
    let env = Env::new();
    env.write("t/a.txt", b"a");
    // A key over the store's 1,024-byte limit, in the same commit batch as a.txt.
    let long = vec!["x".repeat(250); 5].join("/");
    env.write(&format!("t/{long}"), b"refused");
    env.write("t/z.txt", b"z");
    let out = env.run(&["ingest", env.path("t").to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["files"].clone(), summary["failed"].clone()),
        (2.into(), 1.into())
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(stderr.contains("xxxxx"), "{stderr}");
    let bucket = stderr
        .lines()
        .find_map(|l| l.strip_prefix("created bucket "))
        .unwrap()
        .to_string();
    assert_eq!(keys(&env.json(&["ls", &bucket])), ["a.txt", "z.txt"]);
}

#[cfg(unix)]
#[test]
fn ingest_refuses_file_names_that_are_not_utf8_by_name() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    env.write("tree/ok.txt", b"fine");
    // Two names a lossy conversion would both turn into "bad-\u{FFFD}.txt".
    for byte in [0xff, 0xfe] {
        let bytes = [b'b', b'a', b'd', b'-', byte, b'.', b't', b'x', b't'];
        let name = std::ffi::OsStr::from_bytes(&bytes);
        std::fs::write(env.path("tree").join(name), b"latin-1").unwrap();
    }
    let out = env.run(&["ingest", env.path("tree").to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["files"].as_u64(), summary["unreadable"].as_u64()),
        (Some(1), Some(2))
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("its name is not UTF-8").count(), 2, "{err}");
    assert_eq!(
        stored_keys(&env.store()),
        BTreeSet::from(["ok.txt".to_string()])
    );
}

#[test]
fn verify_no_record_names_damage_and_leaves_the_file_unchanged() {
    let env = Env::new();
    let victim = content(12, 3 << 20);
    env.write("d/victim.bin", &victim);
    env.write("d/fine.txt", b"fine");
    env.json(&["ingest", env.path("d").to_str().unwrap()]);
    let before = std::fs::read(env.store()).unwrap();
    let clean = env.json(&["verify", "--no-record"]);
    assert_eq!(
        (clean["checked"].as_u64(), clean["bytes"].as_u64()),
        (Some(2), Some((3 << 20) + 4))
    );
    assert!(clean["damaged"].as_array().unwrap().is_empty());
    assert!(std::fs::read(env.store()).unwrap() == before);

    // One flipped byte in every copy of a window inside the victim's second chunk.
    let needle = &victim[(3 << 19)..(3 << 19) + 64];
    let mut bytes = before;
    let mut from = 0;
    while let Some(i) = bytes[from..].windows(64).position(|w| w == needle) {
        bytes[from + i + 32] ^= 0x5a;
        from += i + 1;
    }
    assert!(from > 0);
    std::fs::write(env.store(), &bytes).unwrap();
    let bucket = env.bucket();
    let out = env.run(&["verify", "--no-record"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("damaged: {bucket}/victim.bin")),
        "{text}"
    );
    assert!(!text.contains("fine.txt"), "{text}");
    assert!(
        std::fs::read(env.store()).unwrap() == bytes,
        "--no-record changed the file"
    );
    let scoped = env.run(&["verify", "--no-record", "--bucket", &bucket, "--json"]);
    assert_eq!(scoped.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&scoped.stdout).unwrap();
    assert_eq!(report["damaged"].as_array().unwrap().len(), 1);
}

#[test]
fn ingest_puts_a_new_bucket_or_record_in_the_location_asked_for() {
    let env = Env::new();
    {
        let store = Store::open(env.store()).unwrap();
        store
            .write(|tx| tx.create_location("archive", "file:///srv/archive", false))
            .unwrap();
        store.close().unwrap();
    }
    env.write("d/a.txt", b"a");
    let d = env.path("d");
    let d = d.to_str().unwrap();
    let locations = |env: &Env| -> Vec<String> {
        env.json(&["ls"])["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["location"].as_str().unwrap().to_string())
            .collect()
    };
    env.json(&["ingest", d]);
    env.json(&["ingest", d, "--location", "archive"]);
    env.json(&["ingest", d, "--new-record", "--location", "archive"]);
    let mut found = locations(&env);
    found.sort();
    assert_eq!(found, ["archive", "archive", "default"]);
    // A location that does not exist: one line, and no bucket or record made.
    let out = env.run(&["ingest", d, "--location", "nowhere"]);
    assert_one_line_error(&out, "nowhere");
    let out = env.run(&["ingest", d, "--new-record", "--location", "nowhere"]);
    assert_one_line_error(&out, "nowhere");
    assert_eq!(locations(&env).len(), 3);
    assert_eq!(
        env.json(&["records"])["records"].as_array().unwrap().len(),
        1
    );
}
