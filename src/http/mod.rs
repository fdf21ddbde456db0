//! The REST API: Invenio-Files-REST, Invenio-Records-REST and the records' files endpoints,
//! served from one store (the `http` feature, on by default).
//!
//! [`router`] builds an [`axum::Router`] an application can mount in its own server; [`serve`]
//! runs it the way `recfiles serve` does (HTTP/1 with half-close, a header-read timeout, a cap
//! on connections, graceful shutdown). The engine is synchronous: every store call runs on
//! tokio's blocking pool, request bodies reach the store through a bounded bridge to
//! `std::io::Read`, and downloads stream out of a [`FileReader`](crate::FileReader) in chunks.
//!
//! Routes, under the API prefix (`/api` by default):
//!
//! | route | methods |
//! |---|---|
//! | `/files` | POST: a bucket in the default location (or [`Config::bucket_location`]) |
//! | `/files/<bucket>` | GET, HEAD (`?versions`, `?uploads`, `?versions&with_deleted`), PATCH, DELETE |
//! | `/files/<bucket>/<key>` | GET, HEAD, PUT, POST, DELETE (single uploads, versions, multipart) |
//! | `/records` | GET (paginated by recid), POST |
//! | `/records/<pid>` | GET, PUT, DELETE |
//! | `/records/<pid>/files` | GET, HEAD: the record's bucket |
//! | `/records/<pid>/files/<key>` | GET, HEAD, PUT, POST, DELETE on the record's bucket |
//! | `/openapi.json` | GET: the OpenAPI 3 document, built from the same route table as the router |
//!
//! and under the UI prefix (empty by default) the download view
//! `/records/<pid>/files/<filename>` (`?download` for an attachment).

mod body;
mod error;
mod files;
mod json;
mod records;
mod routes;
mod send;
mod server;

pub use error::ApiError;
pub use server::{ServeOptions, serve};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use std::sync::Arc;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::Store;
use crate::tokens::{ApiToken, TokenScope, token_matches};
use routes::Prefix;

/// Who may call the API.
#[derive(Debug, Clone, Default)]
pub enum Access {
    /// Everyone may do everything (a development server on loopback).
    #[default]
    Open,
    /// Every request needs a bearer token of these (hash, token) pairs: `read` for GET and
    /// HEAD, `write` for the rest.
    Tokens(Arc<Vec<(blake3::Hash, ApiToken)>>),
}

impl Access {
    /// `Tokens` with the store's tokens, or `Open` when it has none.
    pub fn from_store(store: &Store) -> crate::Result<Access> {
        let tokens = store.token_hashes()?;
        Ok(if tokens.is_empty() {
            Access::Open
        } else {
            Access::Tokens(Arc::new(tokens))
        })
    }
}

/// How the API is mounted.
#[derive(Debug, Clone)]
pub struct Config {
    /// Prefix of the REST routes, `/api` by default (`""` for none).
    pub api_prefix: String,
    /// Prefix of the download view, empty by default. When it equals the API prefix the view
    /// is not mounted (the API's file route serves the same bytes).
    pub ui_prefix: String,
    /// Who may call the API.
    pub access: Access,
    /// The location of the buckets the API creates (`POST /files` and a new record's bucket),
    /// by name; `None` for the store's default location. Invenio's `POST /files` has no way
    /// to ask for a location, so the server decides (e.g. `recfiles serve --location`).
    pub bucket_location: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_prefix: "/api".into(),
            ui_prefix: String::new(),
            access: Access::Open,
            bucket_location: None,
        }
    }
}

/// A prefix as routes want it: a leading `/`, no trailing one, `""` for none.
fn normalise(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) api: String,
    pub(crate) access: Access,
    /// See [`Config::bucket_location`].
    pub(crate) bucket_location: Option<String>,
}

impl AppState {
    /// The options of a bucket the API creates.
    pub(crate) fn new_bucket(&self) -> crate::BucketOptions {
        crate::BucketOptions {
            location: self.bucket_location.clone(),
            ..Default::default()
        }
    }
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("a store call panicked: {e}"))),
    }
}

/// The API as a router (see the module docs for the routes).
pub fn router(store: Store, config: Config) -> Router {
    let api = normalise(&config.api_prefix);
    let ui = normalise(&config.ui_prefix);
    let state = Arc::new(AppState {
        store,
        api: api.clone(),
        access: config.access,
        bucket_location: config.bucket_location,
    });
    let table = routes::table();
    let openapi = Arc::new(routes::openapi(&table, &api, &ui));
    let mut r = Router::new();
    for route in table {
        let prefix = match route.prefix {
            Prefix::Api => &api,
            // The API's own file route serves the same bytes when the prefixes collide.
            Prefix::Ui if ui == api => continue,
            Prefix::Ui => &ui,
        };
        let mut methods = MethodRouter::new();
        for op in &route.ops {
            methods = (op.mount)(methods);
        }
        let path = format!("{prefix}{}", route.path);
        if route.slash_alias {
            r = r.route(&format!("{path}/"), methods.clone());
        }
        r = r.route(&path, methods);
    }
    let r = r.layer(axum::Extension(OpenApi(openapi)));
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        // One line per request, at INFO, when the response is ready.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// The OpenAPI document, built once from the route table.
#[derive(Clone)]
struct OpenApi(Arc<serde_json::Value>);

/// `GET <api>/openapi.json`.
async fn openapi_json(
    axum::Extension(OpenApi(doc)): axum::Extension<OpenApi>,
    req: Request,
) -> Response {
    let pretty = json::Query::parse(req.uri().query()).pretty();
    json::json_response(StatusCode::OK, &doc, pretty)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for the requested URL.",
    )
}

/// The bearer token of a request: `Authorization: Bearer <token>`, or `?access_token=`.
fn presented_token(req: &Request) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    json::Query::parse(req.uri().query())
        .get("access_token")
        .map(str::to_string)
}

/// Checks the request's token against the scope its method needs: 401 without a valid
/// token, 403 with one whose scope is too small.
async fn authorize(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Access::Tokens(tokens) = &st.access else {
        return next.run(req).await;
    };
    let needed = if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        TokenScope::Read
    } else {
        TokenScope::Write
    };
    match presented_token(&req).and_then(|t| token_matches(tokens, &t).cloned()) {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            // werkzeug's text, as Invenio answers an anonymous caller; the header says how.
            "The server could not verify that you are authorized to access the URL requested. \
             You either supplied the wrong credentials (e.g. a bad password), or your browser \
             doesn't understand how to supply the credentials required.",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer")
        .into_response(),
        Some(t) if !t.scope.allows(needed) => ApiError::new(
            StatusCode::FORBIDDEN,
            "You do not have a permission for this action",
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}
