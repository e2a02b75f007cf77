//! `hcore users` as an administrator uses it: add a user with the password on stdin, list,
//! change, remove; the running `hcore` accepts the new user at once, and the client
//! commands log in with `mqtt://user:password@host:port` or `HCORE_PASSWORD`.

use std::process::{Output, Stdio};

use hcore_tests::binary::*;
use hcore_tests::TempDir;
use tokio::io::AsyncWriteExt;

/// Runs `hcore users ...` on `dir` with `stdin` as its standard input.
async fn users(dir: &TempDir, args: &[&str], stdin: &str) -> Output {
    let mut c = hcore();
    c.arg("users")
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_managed_from_the_command_line_while_hcore_runs() {
    let dir = TempDir::new();
    let (_hcore, url) = spawn_hcore(dir.path()).await;
    let host = url.trim_start_matches("mqtt://");

    let o = users(&dir, &["add", "kitchen", "--role", "plugin"], "pw-1\n").await;
    assert!(o.status.success(), "{}", text(&o));
    let o = users(&dir, &["add", "kitchen"], "again\n").await;
    assert!(
        !o.status.success() && text(&o).contains("exists"),
        "{}",
        text(&o)
    );
    let o = users(&dir, &["add", "nobody"], "").await;
    assert!(text(&o).contains("no password on stdin"), "{}", text(&o));
    let o = users(&dir, &["add", "x", "--role", "boss"], "pw\n").await;
    assert!(text(&o).contains("unknown role"), "{}", text(&o));
    let o = users(&dir, &["list"], "").await;
    assert_eq!(String::from_utf8_lossy(&o.stdout), "kitchen\tplugin\n");

    // The running hcore knows the user at once: URL credentials, then HCORE_PASSWORD.
    let with_url = format!("mqtt://kitchen:pw-1@{host}");
    let o = hcore()
        .args([
            "state",
            "set",
            "kitchen/temp",
            "21",
            "--url",
            &with_url,
            "--id",
            "kitchen",
        ])
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = hcore()
        .args([
            "state",
            "get",
            "kitchen/temp",
            "--url",
            &url,
            "--id",
            "kitchen",
        ])
        .args(["--username", "kitchen"])
        .env("HCORE_PASSWORD", "wrong")
        .output()
        .await
        .unwrap();
    assert!(!o.status.success(), "a wrong password: {}", text(&o));

    let o = users(&dir, &["passwd", "kitchen", "--role", "observer"], "pw-2\n").await;
    assert!(o.status.success(), "{}", text(&o));
    let o = users(&dir, &["list"], "").await;
    assert_eq!(String::from_utf8_lossy(&o.stdout), "kitchen\tobserver\n");
    let o = users(&dir, &["remove", "kitchen"], "").await;
    assert!(o.status.success(), "{}", text(&o));
    let o = users(&dir, &["remove", "kitchen"], "").await;
    assert!(!o.status.success() && text(&o).contains("no user kitchen"));
    // The password file is mosquitto's format and private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("passwd"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "passwd readable by others: {mode:o}");
}
