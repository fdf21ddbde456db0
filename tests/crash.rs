//! Crash consistency: a child process ingests continuously (small and staged files, multipart
//! uploads, new versions, deletes, removals, identical content) and reports every call it completed; the
//! parent kills it with SIGKILL at random moments and reopens the store each time.
//!
//! After every kill: every reported call is present (each version reads back byte for byte),
//! nothing else is visible except, possibly, the one call in flight when the kill landed,
//! `check()` passes (so no staging row survived the open and no chunk or file is left without
//! a reference) and fixity finds nothing damaged.
//!
//! The child is this test binary itself, re-run with `RECFILES_CRASH_CHILD` set and `--exact
//! crash_child`. It writes `BEGIN …` before a call and `DONE …` after the call returned, one
//! line per write, so the parent knows exactly which calls completed and which one was in
//! flight. 20 rounds by default; `RECFILES_CRASH_ROUNDS` sets more; `RECFILES_CRASH_SEED`
//! replays a run.

mod common;

use common::content;
use recfiles::prelude::*;
use recfiles::{FilesQuery, MultipartLimits};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const KEYS: [&str; 6] = ["a.txt", "b.bin", "c/d.dat", "e", "big-1", "big-2"];
const CHILD_ENV: &str = "RECFILES_CRASH_CHILD";

fn builder() -> StoreBuilder {
    // Small chunks and batches: a "large" file is staged over many transactions, so kills
    // often land in the middle of one.
    Store::builder()
        .chunk_size(4096)
        .staging_batch(16 * 1024)
        .multipart_limits(MultipartLimits {
            min_part_size: 1024,
            max_part_size: 64 * 1024,
            max_parts: 1000,
            ..MultipartLimits::default()
        })
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The child's side: ingest until killed.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful when started by `processes_killed_at_random_lose_nothing`.
    };
    let seed: u64 = std::env::var("RECFILES_CRASH_CHILD_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let mut rng = Rng(seed | 1);
    let store = builder().open(&path).unwrap();
    let bucket = store.buckets().unwrap()[0].id;
    // Uploads a killed child left open are given up (nothing of them is visible).
    for upload in store.snapshot().unwrap().multipart_uploads(bucket).unwrap() {
        store.abort_multipart(upload.id).unwrap();
    }
    let out = std::io::stdout();
    let report = |line: String| {
        // One write per line, flushed at once: the parent sees whole lines or nothing.
        let mut o = out.lock();
        o.write_all(format!("@@ {line}\n").as_bytes()).unwrap();
        o.flush().unwrap();
    };
    let mut recent: Vec<(u64, usize)> = Vec::new();
    for _ in 0..100_000 {
        let key = KEYS[rng.below(KEYS.len() as u64) as usize];
        // Keys with many versions get removals, so the store stays small over long runs.
        let crowded = store.object_versions(bucket, key).unwrap().len() > 4;
        match if crowded { 9 } else { rng.below(10) } {
            0..=4 => {
                let size = if key.starts_with("big") || rng.below(4) == 0 {
                    40_000 + rng.below(300_000) as usize
                } else {
                    rng.below(9000) as usize
                };
                let s = rng.next();
                if size > 2048 && rng.below(3) == 0 {
                    put_multipart(&store, bucket, key, s, size, &mut rng, &report);
                } else {
                    put(&store, bucket, key, s, size, &report);
                }
                recent.push((s, size));
            }
            5 if !recent.is_empty() => {
                // Identical content again: whole-file dedup.
                let (s, size) = recent[rng.below(recent.len() as u64) as usize];
                put(&store, bucket, key, s, size, &report);
            }
            6 | 7 => {
                report(format!("BEGIN DEL {key}"));
                let marker = store.delete_object(bucket, key).unwrap();
                let id = marker.map_or("-".to_string(), |m| m.version_id.to_string());
                report(format!("DONE DEL {key} {id}"));
            }
            _ => {
                let versions = store.object_versions(bucket, key).unwrap();
                if versions.is_empty() {
                    continue;
                }
                let v = &versions[rng.below(versions.len() as u64) as usize];
                report(format!("BEGIN RM {}", v.version_id));
                store.remove_version(v.version_id).unwrap();
                report(format!("DONE RM {}", v.version_id));
            }
        }
    }
}

fn put(
    store: &Store,
    bucket: BucketId,
    key: &str,
    seed: u64,
    size: usize,
    report: &impl Fn(String),
) {
    report(format!("BEGIN PUT {key} {seed} {size}"));
    let v = store
        .put_object(
            bucket,
            key,
            &content(seed, size)[..],
            &PutOptions::default(),
        )
        .unwrap();
    report(format!("DONE PUT {key} {}", v.version_id));
}

/// The same content as [`put`], reported the same way, sent as a multipart upload: parts of a
/// random size, in a random order, one of them sent twice. A kill anywhere in it leaves either
/// no new version (an open upload, given up by the next child) or the completed one.
fn put_multipart(
    store: &Store,
    bucket: BucketId,
    key: &str,
    seed: u64,
    size: usize,
    rng: &mut Rng,
    report: &impl Fn(String),
) {
    report(format!("BEGIN PUT {key} {seed} {size} MP"));
    let data = content(seed, size);
    let part_size = 1024 + rng.below(16 * 1024);
    let upload = store
        .init_multipart(bucket, key, size as u64, part_size)
        .unwrap();
    let last = upload.last_part_number();
    let mut order: Vec<u32> = (0..=last).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let again = order[rng.below(order.len() as u64) as usize];
    order.push(again);
    for n in order {
        let from = (u64::from(n) * part_size) as usize;
        let len = upload.expected_part_size(n) as usize;
        store
            .upload_part(upload.id, n, &data[from..from + len])
            .unwrap();
    }
    let v = store.complete_multipart(upload.id).unwrap();
    report(format!("DONE PUT {key} {}", v.version_id));
}

/// key → versions, newest first: (id, content as (seed, size) or `None` for a delete marker).
type Model = BTreeMap<String, Vec<(VersionId, Option<(u64, usize)>)>>;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Put {
        key: String,
        seed: u64,
        size: usize,
        /// Sent as a multipart upload.
        multipart: bool,
    },
    Del {
        key: String,
    },
    Rm {
        version: VersionId,
    },
}

fn parse_begin(words: &[&str]) -> Call {
    match words {
        ["PUT", key, seed, size, how @ ..] if how.is_empty() || how == ["MP"] => Call::Put {
            key: key.to_string(),
            seed: seed.parse().unwrap(),
            size: size.parse().unwrap(),
            multipart: !how.is_empty(),
        },
        ["DEL", key] => Call::Del {
            key: key.to_string(),
        },
        ["RM", v] => Call::Rm {
            version: v.parse().unwrap(),
        },
        other => panic!("unexpected report {other:?}"),
    }
}

/// Applies a call; `id` is the new version's id (`None`: not known, as for the call in flight).
fn apply(model: &mut Model, call: &Call, id: Option<VersionId>) {
    match call {
        Call::Put {
            key, seed, size, ..
        } => {
            let id = id.unwrap_or_else(unknown_id);
            model
                .entry(key.clone())
                .or_default()
                .insert(0, (id, Some((*seed, *size))));
        }
        Call::Del { key } => {
            let live = model
                .get(key)
                .and_then(|vs| vs.first())
                .is_some_and(|v| v.1.is_some());
            if live {
                let id = id.unwrap_or_else(unknown_id);
                model.entry(key.clone()).or_default().insert(0, (id, None));
            }
        }
        Call::Rm { version } => {
            for vs in model.values_mut() {
                vs.retain(|(v, _)| v != version);
            }
            model.retain(|_, vs| !vs.is_empty());
        }
    }
}

/// The placeholder id of a version whose real id is not known (matches any id).
fn unknown_id() -> VersionId {
    "00000000-0000-0000-0000-000000000000".parse().unwrap()
}

/// key → versions newest first, with their bytes (`None` for a delete marker).
type Seen = BTreeMap<String, Vec<(VersionId, Option<Vec<u8>>)>>;

/// What the store holds: key → versions newest first, with their bytes.
fn observe(store: &Store, bucket: BucketId) -> Seen {
    let mut out = BTreeMap::new();
    let all = ListOptions {
        with_deleted: true,
        ..ListOptions::default()
    };
    for head in store.list_objects(bucket, &all).unwrap() {
        let mut versions = Vec::new();
        for v in store.object_versions(bucket, &head.key).unwrap() {
            let bytes = v.file_id.map(|f| {
                let mut b = Vec::new();
                store.open_file(f).unwrap().read_to_end(&mut b).unwrap();
                b
            });
            versions.push((v.version_id, bytes));
        }
        out.insert(head.key, versions);
    }
    out
}

/// Whether the store matches the model; a nil id in the model matches any id.
fn matches(model: &Model, seen: &Seen) -> bool {
    model.len() == seen.len()
        && model.iter().all(|(k, vs)| {
            seen.get(k).is_some_and(|svs| {
                svs.len() == vs.len()
                    && vs.iter().zip(svs).all(|((id, c), (sid, sc))| {
                        (id == sid || id.uuid().is_nil())
                            && match (c, sc) {
                                (Some((seed, size)), Some(bytes)) => {
                                    content(*seed, *size) == *bytes
                                }
                                (None, None) => true,
                                _ => false,
                            }
                    })
            })
        })
}

/// The model as the store showed it (learning the in-flight call's id, if it landed).
fn model_from(seen: &Seen, guide: &Model) -> Model {
    let mut out = Model::new();
    for (k, svs) in seen {
        let gvs = &guide[k];
        let vs = svs
            .iter()
            .zip(gvs)
            .map(|((id, _), (_, c))| (*id, *c))
            .collect();
        out.insert(k.clone(), vs);
    }
    out
}

#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    calls_completed: u64,
    in_flight_at_kill: u64,
    in_flight_landed: u64,
    staged_put_in_flight: u64,
    multipart_put_in_flight: u64,
}

fn round(path: &Path, seed: u64, model: &mut Model, tally: &mut Tally, rng: &mut Rng) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env("RECFILES_CRASH_CHILD_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let kill_after = 1 + rng.below(8);
    let mut done = 0;
    let mut reports: Vec<String> = Vec::new();
    let mut line = String::new();
    // Wait for a number of completed calls (synchronisation), then let the child run on for a
    // random short while (only to vary where the kill lands) and kill it.
    while done < kill_after {
        line.clear();
        if lines.read_line(&mut line).unwrap() == 0 {
            panic!("child exited early; reports so far: {reports:?}");
        }
        // libtest may print "test crash_child ... " on the same line, before the first report.
        if let Some(r) = line.find("@@ ").map(|i| &line[i + 3..]) {
            if r.starts_with("DONE") {
                done += 1;
            }
            reports.push(r.trim_end().to_string());
        }
    }
    std::thread::sleep(std::time::Duration::from_micros(rng.below(20_000)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    tally.kills += 1;
    // Everything the child wrote before it died is still in the pipe.
    let mut rest = String::new();
    lines.read_to_string(&mut rest).unwrap();
    for l in rest.split_inclusive('\n') {
        if let Some(r) = l.find("@@ ").map(|i| &l[i + 3..])
            && r.ends_with('\n')
        {
            reports.push(r.trim_end().to_string());
        }
    }

    // Replay the reports: completed calls into the model, at most one call in flight.
    let mut in_flight: Option<Call> = None;
    for r in &reports {
        let words: Vec<&str> = r.split(' ').collect();
        match words[0] {
            "BEGIN" => {
                assert!(in_flight.is_none(), "two calls in flight: {reports:?}");
                in_flight = Some(parse_begin(&words[1..]));
            }
            "DONE" => {
                let call = in_flight.take().expect("DONE without BEGIN");
                let id = match (&call, words.last()) {
                    (Call::Put { .. } | Call::Del { .. }, Some(id)) if *id != "-" => {
                        Some(id.parse().unwrap())
                    }
                    _ => None,
                };
                if let (Call::Del { key }, Some(&"-")) = (&call, words.last()) {
                    let live = model
                        .get(key)
                        .and_then(|vs| vs.first())
                        .is_some_and(|v| v.1.is_some());
                    assert!(!live, "delete of a live key {key} made no marker");
                }
                apply(model, &call, id);
                tally.calls_completed += 1;
            }
            _ => panic!("bad report {r}"),
        }
    }

    let store = builder().open(path).unwrap();
    let report = store.check().unwrap();
    assert!(
        report.is_ok(),
        "round with seed {seed}: integrity check after the kill: {report:?}"
    );
    let bucket = store.buckets().unwrap()[0].id;
    let seen = observe(&store, bucket);
    if matches(model, &seen) {
        if in_flight.is_some() {
            tally.in_flight_at_kill += 1;
        }
    } else {
        let call = in_flight.clone().unwrap_or_else(|| {
            panic!("seed {seed}: store differs from every reported call and nothing was in flight")
        });
        let mut with_call = model.clone();
        apply(&mut with_call, &call, None);
        assert!(
            matches(&with_call, &seen),
            "seed {seed}: store matches neither the reported calls nor them plus the call in \
             flight ({call:?})"
        );
        tally.in_flight_at_kill += 1;
        tally.in_flight_landed += 1;
        *model = model_from(&seen, &with_call);
    }
    if let Some(Call::Put {
        size, multipart, ..
    }) = in_flight
    {
        if multipart {
            tally.multipart_put_in_flight += 1;
        } else if size > 16 * 1024 {
            tally.staged_put_in_flight += 1;
        }
    }
    let fixity = store.verify_all().unwrap();
    assert!(
        fixity.damaged.is_empty(),
        "damaged after a kill: {fixity:?}"
    );
}

#[test]
fn processes_killed_at_random_lose_nothing() {
    let rounds: u64 = std::env::var("RECFILES_CRASH_ROUNDS").map_or(20, |v| v.parse().unwrap());
    let seed: u64 = std::env::var("RECFILES_CRASH_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |v| v.parse().unwrap(),
    );
    eprintln!("crash test seed {seed} (RECFILES_CRASH_SEED={seed} replays the kill schedule)");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    {
        let store = builder().open(&path).unwrap();
        store.create_bucket(&BucketOptions::default()).unwrap();
    }
    let mut model = Model::new();
    let mut tally = Tally::default();
    for _ in 0..rounds {
        let child_seed = rng.next();
        round(&path, child_seed, &mut model, &mut tally, &mut rng);
    }
    eprintln!("crash test: {tally:?}");
    assert_eq!(tally.kills, rounds);
    assert!(
        tally.calls_completed >= rounds,
        "every round completes calls before the kill"
    );
}
