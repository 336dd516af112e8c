//! A real etcd server for the fleet tests: Debian's `etcd` binary (package `etcd-server`) on
//! free loopback ports with a temporary data directory, stopped like SIGKILL and restarted on
//! the same ports and data.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One etcd member on loopback.
pub struct Etcd {
    client: SocketAddr,
    peer: SocketAddr,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

/// The etcd binary: `$ETCD_BIN`, else `etcd` on the PATH.
fn binary() -> PathBuf {
    std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

/// Whether an etcd binary can be run here.
pub fn available() -> bool {
    Command::new(binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

impl Etcd {
    /// Starts etcd and waits until it answers `/health`.
    pub async fn start() -> Etcd {
        let etcd = Etcd {
            client: free_port(),
            peer: free_port(),
            dir: tempfile::tempdir().expect("a data dir"),
            child: Mutex::new(None),
        };
        etcd.launch().await;
        etcd
    }

    /// The client URL, as `[fleet] etcd` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.client)
    }

    fn launch_child(&self) -> Child {
        let peer = format!("http://{}", self.peer);
        Command::new(binary())
            .arg("--name")
            .arg("test")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(self.url())
            .arg("--advertise-client-urls")
            .arg(self.url())
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("test={peer}"))
            .arg("--logger=zap")
            .arg("--log-level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts (install Debian's etcd-server, or set ETCD_BIN)")
    }

    async fn launch(&self) {
        let child = self.launch_child();
        *self.child.lock().expect("lock") = Some(child);
        crate::poll_until(Duration::from_secs(20), || self.healthy()).await;
    }

    /// Whether etcd answers `GET /health` with `"health":"true"`.
    pub async fn healthy(&self) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(self.client).await else {
            return false;
        };
        let request = format!("GET /health HTTP/1.0\r\nHost: {}\r\n\r\n", self.client);
        if s.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer)).await;
        read.is_ok() && String::from_utf8_lossy(&answer).contains("\"health\":\"true\"")
    }

    /// Kills etcd (SIGKILL) and waits for it to be gone.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data, and waits until it answers.
    pub async fn restart(&self) {
        self.kill();
        self.launch().await;
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
