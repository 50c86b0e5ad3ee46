//! `--db postgres://…` (docs/adr/0009) from outside: a database that cannot
//! be reached is a clear error that never prints the URL's password, and
//! `backup` points to PostgreSQL's own tools. (The store runs on both
//! engines in `server/src/store/backend_tests*.rs`; the whole server and
//! end-to-end suites run on PostgreSQL under `CALLAHEAD_TEST_DB=postgres`.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_callahead-server");
const URL: &str = "postgres://alice:s3cret-pw@127.0.0.1:1/callahead";

#[test]
fn serve_on_an_unreachable_postgresql_says_so_without_the_password() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db", URL])
        .env("CALLAHEAD_ADMIN_TOKEN", "postgres-test-admin-token-0123456789")
        .env_remove("CALLAHEAD_SECRET_KEY")
        .output()
        .expect("run the server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(stderr.contains("postgres://alice:***@127.0.0.1:1/callahead"), "names where: {stderr}");
    assert!(!stderr.contains("s3cret-pw") && !stdout.contains("s3cret-pw"), "no password: {stderr}");
}

#[test]
fn backup_of_a_postgresql_url_points_to_its_own_tools() {
    let dir = tempfile::tempdir().expect("tempdir");
    let to = dir.path().join("copy.db");
    let out = Command::new(BIN).args(["backup", "--db", URL, "--to"]).arg(&to).output().expect("run backup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(stderr.contains("postgres://alice:***@127.0.0.1:1/callahead"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
    assert!(!to.exists());
}
