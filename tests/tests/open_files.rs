//! A server started from a shell whose soft open-file limit is the usual
//! 1,024 (here 128, to keep the test small) still holds more connections
//! than that: at start it raises its soft limit as far as
//! `--max-connections` needs (at most to the hard limit). Without it
//! the accept loop runs out of descriptors and every connection past the
//! limit waits in the listen queue until others close.

use callahead_e2e::{within, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SOFT: u32 = 128;
const OPEN: usize = 400;

#[tokio::test]
async fn a_low_soft_open_file_limit_does_not_cap_the_connections() {
    let hard = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("read the open-file limit").1;
    assert!(
        hard > OPEN as u64 + 512,
        "this test needs a hard open-file limit above {} (have {hard})",
        OPEN + 512
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // Idle connections are not closed during the test: each one past the
    // limit must be accepted, not wait for an earlier one to time out.
    let mut server = ServerProcess::new(
        dir.path(),
        "an-admin-token-of-at-least-32-characters",
        &["--header-timeout", "3600"],
    );
    server.soft_open_files = Some(SOFT);
    let addr = server.start().await;

    // Every connection stays open while the next one is made, and each must
    // be served: the 400 of them need three times the soft limit.
    let mut open = Vec::with_capacity(OPEN);
    for n in 0..OPEN {
        let mut stream = within(&format!("connection {n} to be accepted"), TcpStream::connect(addr))
            .await
            .expect("connect");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: callahead\r\n\r\n").await.expect("send a request");
        let mut head = [0u8; 12];
        within(&format!("connection {n} to be answered"), stream.read_exact(&mut head))
            .await
            .unwrap_or_else(|e| panic!("connection {n} got no answer ({e}); log:\n{}", server.server_log()));
        assert_eq!(&head, b"HTTP/1.1 200", "connection {n}");
        open.push(stream);
    }
    // Held until here, so the server had all of them open at once.
    drop(open);
}
