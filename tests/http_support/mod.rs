//! Serving the REST API on a loopback port from a test: shared by `tests/http.rs` and
//! `tests/s3.rs`.

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
