//! Serving the REST API on a loopback port from a test, and calling it over a real socket:
//! shared by `tests/http.rs` and `tests/s3.rs`.

use recfiles::http::{ServeOptions, serve};
use std::net::SocketAddr;

/// A server running `app` on its own thread and runtime, on a free loopback port.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Sending on it (or dropping it) stops the server gracefully.
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// The server's thread: joined, it has closed every connection.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts `app` with `opts` and returns once it is listening.
pub fn spawn(app: axum::Router, opts: ServeOptions) -> Running {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, app, opts, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
    });
    Running {
        addr: addr_rx.recv().unwrap(),
        stop,
        thread,
    }
}

/// One HTTP request to the server at `addr` (redirects not followed, error statuses returned
/// like any other): its status, headers and body.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = agent.run(req.body(body.to_vec()).unwrap()).unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (status, headers, body)
}
