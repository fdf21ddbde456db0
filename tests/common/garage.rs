//! A real Garage server for the tests of content on an S3-compatible object store: one node on
//! loopback, with a sqlite metadata engine, its own directory and free ports, a bucket and a
//! key allowed on it; or a cluster of three such nodes, each its own zone, every block kept on
//! all three (`Cluster`). The `garage` binary comes from `cargo install --locked garage` (`.ci/run`
//! installs it); without it, `Garage::start` says so loudly and returns `None`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The access key every test server gets (Garage's format: `GK` and 24 hex digits).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits).
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The region the servers answer as.
pub const REGION: &str = "garage";

/// The `garage` binary: `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`.
pub fn garage_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GARAGE_BIN") {
        return Some(PathBuf::from(p));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("garage");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let home = std::env::var_os("HOME")?;
    let p = Path::new(&home).join(".cargo/bin/garage");
    p.is_file().then_some(p)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Stops one node's process; it can be handed to another thread (a reader, a backend) that
/// must stop the node at a precise point of an operation.
#[derive(Clone)]
pub struct Killer(Arc<Mutex<Option<Child>>>);

impl Killer {
    /// Stops the process as a crash would (killed) and returns once it is gone (its sockets
    /// closed); nothing when it is not running.
    pub fn kill(&self) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut c) = slot.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One Garage process: its configuration, log and ports. Stopping it keeps its directories,
/// so it can be started again as the same node.
struct Node {
    child: Killer,
    config: PathBuf,
    log: PathBuf,
    /// `http://127.0.0.1:<port>`, the S3 API.
    endpoint: String,
}

impl Node {
    /// Writes the configuration of a node under `dir` and starts it.
    fn create(binary: &Path, dir: &Path, replication: u8) -> Node {
        std::fs::create_dir_all(dir).expect("node dir");
        let (s3, rpc) = (free_port(), free_port());
        let config = dir.join("garage.toml");
        let text = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = {replication}
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
"#,
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = SECRET,
        );
        std::fs::write(&config, text).expect("write the config");
        let mut node = Node {
            child: Killer(Arc::new(Mutex::new(None))),
            config,
            log: dir.join("server.log"),
            endpoint: format!("http://127.0.0.1:{s3}"),
        };
        node.start(binary);
        node
    }

    /// Starts the process (again), its log appended to.
    fn start(&mut self, binary: &Path) {
        let mut slot = self.child.0.lock().expect("the node's process");
        assert!(slot.is_none(), "the node is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start garage");
        *slot = Some(child);
    }

    fn kill(&mut self) {
        self.child.kill();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs garage's command line against the node configured by `config`.
fn try_cli(binary: &Path, config: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(binary)
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Polls `attempt` until it succeeds (a node is starting, a layout is spreading), for at most
/// a minute; then panics with the last error and `log`.
fn until_ok<T>(
    what: &str,
    log: impl Fn() -> String,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match attempt() {
            Ok(out) => return out,
            Err(e) if Instant::now() > deadline => panic!("{what} kept failing: {e}\n{}", log()),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The `garage` binary, or `None` after a loud message.
fn binary_or_skip() -> Option<PathBuf> {
    let binary = garage_binary();
    if binary.is_none() {
        eprintln!(
            "\n\n*** SKIPPED: the `garage` binary is not installed (cargo install --locked \
             garage); the S3 tests need a real Garage server. .ci/run installs it. ***\n\n"
        );
    }
    binary
}

/// The node's id, as `layout assign` and `node connect` want it (`<hex>@<addr>`).
fn node_id(binary: &Path, node: &Node) -> String {
    until_ok(
        "garage node id",
        || node.log(),
        || try_cli(binary, &node.config, &["node", "id", "-q"]),
    )
    .trim()
    .to_string()
}

/// An `object_store` client of `bucket` at `endpoint`, as any S3 client would see it.
fn client_at(endpoint: &str, bucket: &str) -> Arc<dyn object_store::ObjectStore> {
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region(REGION)
        .with_bucket_name(bucket)
        .with_access_key_id(KEY_ID)
        .with_secret_access_key(SECRET)
        .with_retry(object_store::RetryConfig {
            max_retries: 1,
            retry_timeout: Duration::from_secs(5),
            ..Default::default()
        })
        .build()
        .expect("an S3 client");
    Arc::new(s3)
}

/// The test key, and `buckets` with the key allowed on each, created through `config`'s node.
fn create_key_and_buckets(binary: &Path, node: &Node, buckets: &[&str]) {
    let cli = |args: &[&str]| {
        try_cli(binary, &node.config, args)
            .unwrap_or_else(|e| panic!("garage {args:?} failed: {e}\n{}", node.log()))
    };
    cli(&[
        "key",
        "import",
        "--yes",
        "-n",
        "recfiles-test",
        KEY_ID,
        SECRET,
    ]);
    for b in buckets {
        // Right after the layout is applied, the bucket table may still be settling.
        until_ok(
            "garage bucket create",
            || node.log(),
            || try_cli(binary, &node.config, &["bucket", "create", b]),
        );
        cli(&[
            "bucket", "allow", "--read", "--write", "--owner", b, "--key", KEY_ID,
        ]);
    }
}

/// One Garage node, stopped and removed when dropped.
pub struct Garage {
    node: Node,
    binary: PathBuf,
    /// `http://127.0.0.1:<port>`, the S3 API.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Garage {
    /// Starts a node and creates `buckets` with the test key allowed on each. `None` (after a
    /// loud message) when the `garage` binary is not installed.
    pub fn start(buckets: &[&str]) -> Option<Garage> {
        let binary = binary_or_skip()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let node = Node::create(&binary, dir.path(), 1);
        let id = node_id(&binary, &node);
        let id = id.split('@').next().expect("a node id");
        let g = Garage {
            endpoint: node.endpoint.clone(),
            node,
            binary,
            _dir: dir,
        };
        // A node that answers `node id` may still refuse layout changes for a moment (seen
        // under heavy load): retried until it takes them.
        for args in [
            &["layout", "assign", "-z", "dc1", "-c", "1G", id][..],
            &["layout", "apply", "--version", "1"][..],
        ] {
            until_ok(
                "garage layout",
                || g.node.log(),
                || try_cli(&g.binary, &g.node.config, args),
            );
        }
        create_key_and_buckets(&g.binary, &g.node, buckets);
        Some(g)
    }

    /// Runs the command line against this node; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        try_cli(&self.binary, &self.node.config, args)
            .unwrap_or_else(|e| panic!("garage {args:?} failed: {e}\n{}", self.node.log()))
    }

    /// An `object_store` client of `bucket` on this node, as any S3 client would see it.
    pub fn client(&self, bucket: &str) -> Arc<dyn object_store::ObjectStore> {
        client_at(&self.endpoint, bucket)
    }

    /// The content backend of `s3://bucket/prefix` on this node.
    pub fn backend(&self, bucket: &str, prefix: &str) -> Arc<recfiles::ObjectStoreBackend> {
        Arc::new(recfiles::ObjectStoreBackend::new(self.client(bucket), prefix).expect("a backend"))
    }

    /// Stops the server (as a crash would: killed).
    pub fn kill(&mut self) {
        self.node.kill();
    }
}

/// Three Garage nodes on loopback forming one cluster: each in a zone of its own, every block
/// and table entry kept on all three (replication factor 3, so writes and reads need two of
/// them). Every node serves the S3 API; stopped and removed when dropped.
pub struct Cluster {
    nodes: Vec<Node>,
    binary: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three nodes, connects them, applies a layout with one zone per node and creates
    /// `buckets` with the test key allowed on each; returns once every node serves them.
    /// `None` (after a loud message) when the `garage` binary is not installed.
    pub fn start(buckets: &[&str]) -> Option<Cluster> {
        let binary = binary_or_skip()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Node> = (0..3)
            .map(|i| Node::create(&binary, &dir.path().join(format!("node{i}")), 3))
            .collect();
        let ids: Vec<String> = nodes.iter().map(|n| node_id(&binary, n)).collect();
        let c = Cluster {
            nodes,
            binary,
            _dir: dir,
        };
        for id in &ids[1..] {
            c.cli(0, &["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let hex = id.split('@').next().expect("a node id");
            let zone = format!("dc{}", i + 1);
            // A node is assignable once the first one has heard of it.
            until_ok(
                "garage layout assign",
                || c.nodes[0].log(),
                || {
                    try_cli(
                        &c.binary,
                        &c.nodes[0].config,
                        &["layout", "assign", "-z", &zone, "-c", "1G", hex],
                    )
                },
            );
        }
        until_ok(
            "garage layout apply",
            || c.nodes[0].log(),
            || {
                try_cli(
                    &c.binary,
                    &c.nodes[0].config,
                    &["layout", "apply", "--version", "1"],
                )
            },
        );
        create_key_and_buckets(&c.binary, &c.nodes[0], buckets);
        for i in 0..3 {
            for b in buckets {
                c.until_serving(i, b);
            }
        }
        Some(c)
    }

    /// Runs the command line against node `i`; panics with its output on failure.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        try_cli(&self.binary, &self.nodes[i].config, args)
            .unwrap_or_else(|e| panic!("garage {args:?} failed: {e}\n{}", self.nodes[i].log()))
    }

    /// Node `i`'s S3 API, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.nodes[i].endpoint
    }

    /// An `object_store` client of `bucket` talking to node `i`.
    pub fn client(&self, i: usize, bucket: &str) -> Arc<dyn object_store::ObjectStore> {
        client_at(&self.nodes[i].endpoint, bucket)
    }

    /// The content backend of `s3://bucket/prefix`, talking to node `i`.
    pub fn backend(
        &self,
        i: usize,
        bucket: &str,
        prefix: &str,
    ) -> Arc<recfiles::ObjectStoreBackend> {
        Arc::new(
            recfiles::ObjectStoreBackend::new(self.client(i, bucket), prefix).expect("a backend"),
        )
    }

    /// Stops node `i` as a crash would (killed); its data stays for [`Cluster::restart`].
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// A handle that stops node `i` from anywhere (see [`Killer`]).
    pub fn killer(&self, i: usize) -> Killer {
        self.nodes[i].child.clone()
    }

    /// Starts node `i` again and returns once it serves `bucket` (listing it through its S3
    /// API).
    pub fn restart(&mut self, i: usize, bucket: &str) {
        self.nodes[i].start(&self.binary);
        self.until_serving(i, bucket);
    }

    /// Polls node `i` until a listing of `bucket` through its S3 API succeeds.
    fn until_serving(&self, i: usize, bucket: &str) {
        let backend = self.backend(i, bucket, "");
        until_ok(
            "listing the bucket",
            || self.nodes[i].log(),
            || {
                recfiles::ContentBackend::list(backend.as_ref(), "")
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        );
    }
}
