//! A TCP proxy on 127.0.0.1 between a client and a server, for injecting network faults at
//! an exact point of a protocol exchange: it forwards bytes both ways until the client sends
//! one of the armed byte patterns, then holds or cuts every connection and refuses new ones
//! until healed.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does when the client sends an armed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    /// Drop the matching bytes, close every connection, refuse new ones.
    Cut,
    /// Keep the matching bytes and every connection's later traffic: the client waits for an
    /// answer that does not come. New connections are refused.
    Hold,
}

struct State {
    upstream: SocketAddr,
    armed: Mutex<Option<(Vec<Vec<u8>>, Trip)>>,
    tripped: AtomicBool,
    refusing: AtomicBool,
    holding: AtomicBool,
    /// Bumped to close every open connection.
    cuts: watch::Sender<u64>,
}

/// The proxy; stops listening and closes every connection when dropped.
pub struct FaultProxy {
    pub port: u16,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream_port` on 127.0.0.1.
    pub async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(State {
            upstream: ([127, 0, 0, 1], upstream_port).into(),
            armed: Mutex::new(None),
            tripped: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            cuts: watch::channel(0).0,
        });
        let accept = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if state.refusing.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(serve(state.clone(), client));
                }
            }
        });
        Self {
            port,
            state,
            accept,
        }
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The next time the client sends bytes containing any of `patterns`, `trip` happens
    /// (once; [`heal`](Self::heal) ends it).
    pub fn arm(&self, patterns: &[&[u8]], trip: Trip) {
        self.state.tripped.store(false, Ordering::SeqCst);
        *self.state.armed.lock().unwrap() =
            Some((patterns.iter().map(|p| p.to_vec()).collect(), trip));
    }

    /// Whether an armed pattern was seen.
    pub fn tripped(&self) -> bool {
        self.state.tripped.load(Ordering::SeqCst)
    }

    /// Waits until an armed pattern was seen, up to `limit`.
    pub async fn wait_tripped(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.tripped() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.tripped()
    }

    /// Back to forwarding: disarms, closes held connections, accepts new ones.
    pub fn heal(&self) {
        *self.state.armed.lock().unwrap() = None;
        self.state.cuts.send_modify(|n| *n += 1);
        self.state.holding.store(false, Ordering::SeqCst);
        self.state.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.state.refusing.store(true, Ordering::SeqCst);
        self.state.cuts.send_modify(|n| *n += 1);
    }
}

impl State {
    /// Whether `bytes` trip the armed fault; disarms it when they do.
    fn trips(&self, bytes: &[u8]) -> Option<Trip> {
        let mut armed = self.armed.lock().unwrap();
        let (patterns, trip) = armed.as_ref()?;
        let hit = patterns
            .iter()
            .any(|p| bytes.windows(p.len()).any(|w| w == p.as_slice()));
        if !hit {
            return None;
        }
        let trip = *trip;
        *armed = None;
        self.refusing.store(true, Ordering::SeqCst);
        match trip {
            Trip::Cut => self.cuts.send_modify(|n| *n += 1),
            Trip::Hold => self.holding.store(true, Ordering::SeqCst),
        }
        self.tripped.store(true, Ordering::SeqCst);
        Some(trip)
    }
}

async fn serve(state: Arc<State>, client: TcpStream) {
    let mut cuts = state.cuts.subscribe();
    let Ok(server) = TcpStream::connect(state.upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            match state.trips(&buf[..n]) {
                Some(Trip::Cut) => return,
                Some(Trip::Hold) => std::future::pending::<()>().await,
                None if state.holding.load(Ordering::SeqCst) => std::future::pending::<()>().await,
                None => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            if state.holding.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cuts.changed() => {}
    }
}
