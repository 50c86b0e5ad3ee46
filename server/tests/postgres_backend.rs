//! `--db postgres://…` (docs/adr/0009): until every aggregate `serve`
//! needs runs on PostgreSQL, the binary refuses the URL at once, names what
//! is missing, and never prints the URL's password. (The ported aggregates
//! are tested on both engines in `server/src/store/backend_tests.rs`.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_callahead-server");
const URL: &str = "postgres://alice:s3cret-pw@127.0.0.1:1/callahead";

#[test]
fn serve_refuses_a_postgresql_url_and_names_what_is_missing() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db", URL])
        .env("CALLAHEAD_ADMIN_TOKEN", "postgres-test-admin-token-0123456789")
        .env_remove("CALLAHEAD_SECRET_KEY")
        .output()
        .expect("run the server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(stderr.contains("PostgreSQL is not yet a complete backend"), "{stderr}");
    assert!(
        stderr.contains("not yet: stops and routes, calls and attempts"),
        "names what is missing: {stderr}"
    );
    assert!(stderr.contains("ported so far: the schema"), "{stderr}");
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
