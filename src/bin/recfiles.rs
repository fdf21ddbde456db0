//! The `recfiles` command line: `serve` the REST API from a store file, manage its `token`s,
//! and work on a store directly: `ingest` a directory tree, browse (`ls`, `cat`, `get`,
//! `records`, `stats`), change (`put`, `rm`, `restore`) and maintain it (`verify`, `check`,
//! `compact`), and `export` it as an OCFL storage root or `import` one. Read-only commands open
//! the store read-only.

#[path = "recfiles/ocfl.rs"]
mod ocfl;
#[path = "recfiles/store_cmds.rs"]
mod store_cmds;

use clap::{Parser, Subcommand};
use recfiles::http::{Access, Config, ServeOptions};
use recfiles::{FilesQuery, MultipartLimits, Store, StoreBuilder, TokenScope};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "recfiles",
    version,
    about = "Records and their files in one store file"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Invenio's REST API (Files-REST, records, record files) from a store file.
    Serve(ServeArgs),
    /// Check every invariant of a store file; exits non-zero when a problem is found.
    Check {
        /// The store file.
        #[arg(long, default_value = "./recfiles.redb")]
        store: PathBuf,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Store(store_cmds::StoreCommand),
    /// Manage the bearer tokens the server accepts.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The store file (created if missing).
    #[arg(long, default_value = "./recfiles.redb")]
    store: PathBuf,
    /// Address to listen on. Anything but loopback needs a token in the store.
    #[arg(long, default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
    /// Prefix of the REST API routes.
    #[arg(long, default_value = "/api")]
    api_prefix: String,
    /// Prefix of the download view `<ui-prefix>/records/<pid>/files/<filename>`.
    #[arg(long, default_value = "")]
    ui_prefix: String,
    /// Smallest multipart part size, in bytes (default 5 MiB).
    #[arg(long)]
    part_min: Option<u64>,
    /// Largest multipart part size, in bytes (default 5 GiB).
    #[arg(long)]
    part_max: Option<u64>,
    /// Most parts of one multipart upload (default 10,000).
    #[arg(long)]
    max_parts: Option<u64>,
    /// Log level: error, warn, info (one line per request), debug or trace.
    #[arg(long, default_value = "info")]
    log: tracing::Level,
    /// Most connections served at once.
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// Seconds a client has to send its request headers.
    #[arg(long, default_value_t = 30)]
    header_timeout: u64,
    /// Seconds in-flight requests get to finish after SIGINT or SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// The location of the buckets created over HTTP (`POST /files`, a new record's bucket),
    /// by name: e.g. one whose content lives on an S3-compatible cluster (a binary built with
    /// the `s3` feature). Default: the store's default location.
    #[arg(long)]
    location: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (shown this once only).
    Create {
        /// The store file.
        #[arg(long, default_value = "./recfiles.redb")]
        store: PathBuf,
        /// `read` (GET and HEAD) or `write` (everything).
        #[arg(long)]
        scope: String,
        /// A name to recognise the token by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the tokens (without their secrets).
    List {
        /// The store file.
        #[arg(long, default_value = "./recfiles.redb")]
        store: PathBuf,
        /// Print one JSON document (`{"tokens": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (or a unique prefix of at least 4 digits).
    Revoke {
        /// The store file.
        #[arg(long, default_value = "./recfiles.redb")]
        store: PathBuf,
        /// The token's id, as `token list` shows it.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).map(|()| ExitCode::SUCCESS),
        Command::Token { command } => token(command).map(|()| ExitCode::SUCCESS),
        Command::Check { store, json } => store_cmds::check(&store, json),
        Command::Store(command) => store_cmds::run(command),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("recfiles: {message}");
            ExitCode::FAILURE
        }
    }
}

fn open(path: &Path, limits: MultipartLimits) -> Result<Store, String> {
    StoreBuilder::new()
        .md5(true)
        .multipart_limits(limits)
        .open(path)
        .map_err(|e| format!("cannot open store {}: {e}", path.display()))
}

fn token(command: TokenCommand) -> Result<(), String> {
    match command {
        TokenCommand::Create { store, scope, name } => {
            let scope: TokenScope = scope.parse().map_err(|e| format!("{e}"))?;
            let s = open(&store, MultipartLimits::default())?;
            let (token, secret) = s
                .create_token(scope, name.as_deref())
                .map_err(|e| e.to_string())?;
            eprintln!(
                "created token {} ({} scope); its secret is shown only now:",
                token.id,
                token.scope.as_str()
            );
            println!("{secret}");
        }
        TokenCommand::List { store, json } => {
            let s = open(&store, MultipartLimits::default())?;
            let tokens = s.tokens().map_err(|e| e.to_string())?;
            if json {
                let docs: Vec<serde_json::Value> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id,
                            "name": t.name,
                            "scope": t.scope.as_str(),
                            "created": t.created.to_rfc3339(),
                        })
                    })
                    .collect();
                let doc = serde_json::json!({ "tokens": docs });
                println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            } else {
                for t in tokens {
                    println!(
                        "{}  {:5}  {}  {}",
                        t.id,
                        t.scope.as_str(),
                        t.created.to_rfc3339(),
                        t.name.as_deref().unwrap_or("")
                    );
                }
            }
        }
        TokenCommand::Revoke { store, id } => {
            let s = open(&store, MultipartLimits::default())?;
            match s.revoke_token(&id).map_err(|e| e.to_string())? {
                Some(t) => eprintln!("revoked token {}", t.id),
                None => return Err(format!("no single token has the id {id:?}")),
            }
        }
    }
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_max_level(args.log)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let mut limits = MultipartLimits::default();
    if let Some(v) = args.part_min {
        limits.min_part_size = v;
    }
    if let Some(v) = args.part_max {
        limits.max_part_size = v;
    }
    if let Some(v) = args.max_parts {
        limits.max_parts = v;
    }
    let store = open(&args.store, limits)?;
    if let Some(name) = &args.location
        && store
            .read(|r| r.location(name))
            .map_err(|e| e.to_string())?
            .is_none()
    {
        return Err(format!(
            "--location {name:?}: the store has no such location (`recfiles ls --json` lists \
             each bucket's; an application creates locations)"
        ));
    }
    let access = Access::from_store(&store).map_err(|e| e.to_string())?;
    if matches!(access, Access::Open) && !args.bind.ip().is_loopback() {
        return Err(format!(
            "refusing to serve {} without access control: the store has no token. Create one \
             with `recfiles token create --store {} --scope write`, or bind a loopback \
             address (127.0.0.1) for a local development server",
            args.bind,
            args.store.display()
        ));
    }
    let config = Config {
        api_prefix: args.api_prefix,
        ui_prefix: args.ui_prefix,
        access: access.clone(),
        bucket_location: args.location,
    };
    let app = recfiles::http::router(store.clone(), config);
    let opts = ServeOptions {
        header_read_timeout: Duration::from_secs(args.header_timeout),
        max_connections: args.max_connections,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let mode = match access {
            Access::Open => "open access (no token in the store)",
            Access::Tokens(_) => "bearer tokens required",
        };
        tracing::info!(
            "serving {} on http://{local} ({mode})",
            args.store.display()
        );
        recfiles::http::serve(listener, app, opts, stop_signal())
            .await
            .map_err(|e| e.to_string())
    });
    // Blocking store calls still running (a slow upload) get a bounded time to end.
    runtime.shutdown_timeout(Duration::from_secs(args.shutdown_grace));
    drop(store);
    tracing::info!("stopped; the store is closed");
    result
}

/// Completes at SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
}
