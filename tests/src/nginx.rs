//! nginx running the reverse-proxy configuration docs/deploy.md gives
//! operators (docs/deploy/nginx.conf, with the listen and upstream addresses
//! replaced), in front of one node or several.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    /// The command line that names this instance, for `-s stop`.
    args: Vec<std::ffi::OsString>,
    bin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // A killed master leaves its workers running: stop it the way
        // nginx is stopped, which ends the workers first.
        let stopped = Command::new(&self.bin).args(&self.args).args(["-s", "stop"]).status();
        if !stopped.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The nginx binary, if this machine has one (scripts/test installs
/// nginx-light).
pub fn bin() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_owned)
}

impl Nginx {
    /// nginx with the documented configuration, balancing over `upstreams`
    /// (one `server` line per node, as docs/deploy.md tells operators).
    pub async fn start(bin: &str, upstreams: &[SocketAddr]) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let documented =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy/nginx.conf"))
                .expect("docs/deploy/nginx.conf");
        let line = "    server 127.0.0.1:8080 max_fails=1 fail_timeout=10s;\n";
        assert!(
            documented.contains(line) && documented.contains("listen 80;"),
            "the documented upstream line"
        );
        let servers: String =
            upstreams.iter().map(|a| line.replace("127.0.0.1:8080", &a.to_string())).collect();
        let site =
            documented.replace(line, &servers).replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        let d = dir.path().display();
        let main = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main).expect("write nginx.conf");
        let args: Vec<std::ffi::OsString> = vec![
            "-e".into(),
            format!("{d}/error.log").into(),
            "-p".into(),
            d.to_string().into(),
            "-c".into(),
            conf.into(),
        ];
        let child = Command::new(bin)
            .args(&args)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        crate::within("nginx to listen", async {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        Nginx { child, addr, args, bin: bin.to_owned(), _dir: dir }
    }
}
