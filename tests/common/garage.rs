//! A real Garage server for the tests of content on an S3-compatible object store: one node on
//! loopback, with a sqlite metadata engine, its own directory and free ports, a bucket and a
//! key allowed on it. The `garage` binary comes from `cargo install --locked garage` (`.ci/run`
//! installs it); without it, `Garage::start` says so loudly and returns `None`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The access key every test server gets (Garage's format: `GK` and 24 hex digits).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits).
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The region the servers answer as.
pub const REGION: &str = "garage";

/// One Garage node, stopped and removed when dropped.
pub struct Garage {
    child: Option<Child>,
    binary: PathBuf,
    config: PathBuf,
    /// `http://127.0.0.1:<port>`, the S3 API.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

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

impl Garage {
    /// Starts a node and creates `buckets` with the test key allowed on each. `None` (after a
    /// loud message) when the `garage` binary is not installed.
    pub fn start(buckets: &[&str]) -> Option<Garage> {
        let Some(binary) = garage_binary() else {
            eprintln!(
                "\n\n*** SKIPPED: the `garage` binary is not installed (cargo install --locked \
                 garage); the S3 tests need a real Garage server. .ci/run installs it. ***\n\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let (s3, rpc) = (free_port(), free_port());
        let config = dir.path().join("garage.toml");
        let text = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
            secret = SECRET,
        );
        std::fs::write(&config, text).expect("write the config");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start garage");
        let g = Garage {
            child: Some(child),
            binary,
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            _dir: dir,
        };
        // The node answers its command line once it is up.
        let node = g.until_ok(&["node", "id", "-q"]);
        let node = node
            .trim()
            .split('@')
            .next()
            .expect("a node id")
            .to_string();
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.cli(&["layout", "apply", "--version", "1"]);
        g.cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "recfiles-test",
            KEY_ID,
            SECRET,
        ]);
        for b in buckets {
            g.create_bucket(b);
        }
        Some(g)
    }

    /// Creates a bucket (names need at least 3 characters) the test key may read and write.
    pub fn create_bucket(&self, name: &str) {
        // Right after the layout is applied, the bucket table may still be settling.
        self.until_ok(&["bucket", "create", name]);
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_ID,
        ]);
    }

    /// Runs the command line against this node; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        match self.try_cli(args) {
            Ok(out) => out,
            Err(e) => panic!("garage {args:?} failed: {e}\n{}", self.log()),
        }
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
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

    /// Retries a command until the node accepts it (it is starting), for at most a minute.
    fn until_ok(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.try_cli(args) {
                Ok(out) => return out,
                Err(e) if Instant::now() > deadline => {
                    panic!("garage {args:?} kept failing: {e}\n{}", self.log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }

    /// An `object_store` client of `bucket` on this node, as any S3 client would see it.
    pub fn client(&self, bucket: &str) -> Arc<dyn object_store::ObjectStore> {
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
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

    /// The content backend of `s3://bucket/prefix` on this node.
    pub fn backend(&self, bucket: &str, prefix: &str) -> Arc<recfiles::ObjectStoreBackend> {
        Arc::new(recfiles::ObjectStoreBackend::new(self.client(bucket), prefix).expect("a backend"))
    }

    /// Stops the server (as a crash would: killed).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}
