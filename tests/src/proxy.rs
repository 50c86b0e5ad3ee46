//! A loopback TCP proxy the test controls: `cut()` drops every open
//! connection (a tunnel or a cell handover), `set_online(false)` also refuses
//! new ones until `set_online(true)` (the courier drives into a dead zone).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    addr: SocketAddr,
    online: Arc<AtomicBool>,
    /// Bumped on every cut; each connection watches it and closes.
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    target: Arc<Mutex<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let online = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let accepted = Arc::new(AtomicU64::new(0));
        let target = Arc::new(Mutex::new(target));
        let task = {
            let target = target.clone();
            let online = online.clone();
            let generation = generation.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if !online.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mut cut = generation.subscribe();
                    let upstream = *target.lock().unwrap_or_else(|e| e.into_inner());
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                        let mut inbound = inbound;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Proxy { addr, online, generation, accepted, target, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection now; new ones are accepted if online.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::SeqCst);
        if !online {
            self.cut();
        }
    }

    /// Points new connections at another upstream (a restarted server).
    pub fn set_target(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    /// Connections accepted while online (to see that a client reconnected).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}
