//! The real `callahead-server` binary as a child process, for the tests of
//! what a crash leaves behind: `kill()` is a real SIGKILL, nothing flushed,
//! no destructor run; `start()` again on the same database recovers.
//! `terminate()` is the operator's graceful stop (SIGTERM).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The server binary: `$CALLAHEAD_SERVER_BIN`, or the one cargo built beside
/// this test (built now if it is missing).
pub fn server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CALLAHEAD_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    // target/<profile>/deps/<test> -> target/<profile>/callahead-server
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let bin = profile_dir.join("callahead-server");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "callahead-server", "--bin", "callahead-server"])
            .status()
            .expect("cargo build runs");
        assert!(status.success(), "building callahead-server failed");
    }
    bin
}

pub struct ServerProcess {
    pub db: PathBuf,
    /// `serve` arguments besides `--listen` and `--db`.
    pub args: Vec<String>,
    /// Environment besides the test's own (a provider's credentials).
    pub env: Vec<(String, String)>,
    pub admin_token: String,
    child: Option<Child>,
    addr: Option<SocketAddr>,
    /// Every start's stderr goes here (appended), for a failing test to show.
    pub log: PathBuf,
    /// The loopback port to listen on; 0 takes a free one at each start. A
    /// node behind a load balancer comes back on its own port.
    pub port: u16,
    /// Starts the server under this soft open-file limit (`ulimit -Sn`), as
    /// a login shell or a service manager would.
    pub soft_open_files: Option<u32>,
}

impl ServerProcess {
    pub fn new(dir: &Path, admin_token: &str, args: &[&str]) -> ServerProcess {
        ServerProcess {
            db: dir.join("server.db"),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            admin_token: admin_token.to_owned(),
            child: None,
            addr: None,
            log: dir.join("server.log"),
            port: 0,
            soft_open_files: None,
        }
    }

    /// Starts the binary on a free loopback port and waits until it listens.
    pub async fn start(&mut self) -> SocketAddr {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("server log");
        let mut command = match self.soft_open_files {
            None => Command::new(server_bin()),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -Sn {n} && exec \"$0\" \"$@\"")]).arg(server_bin());
                sh
            }
        };
        let mut child = command
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--db"])
            .arg(&self.db)
            .args(&self.args)
            .env("CALLAHEAD_ADMIN_TOKEN", &self.admin_token)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = crate::within("the server process to listen", async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("callahead-server listening on http://") {
                    return url.trim().parse::<SocketAddr>().expect("listen address");
                }
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("the server exited before listening; its log:\n{log}");
        })
        .await;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        self.addr = Some(addr);
        addr
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
        }
        self.addr = None;
    }

    /// SIGTERM, the graceful stop: waits for the exit, failing the test if
    /// the process is still there after `bound`.
    pub async fn terminate(&mut self, bound: std::time::Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = child.id().expect("a running child has a pid");
        let sent =
            std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
        self.addr = None;
        tokio::time::timeout(bound, child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit within {bound:?} of SIGTERM"))
            .expect("wait for the server")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("server running")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}
