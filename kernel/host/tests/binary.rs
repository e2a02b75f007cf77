//! The `hcore-host` program as a user meets it on a Pi: a missing or broken config is
//! one clear line on stderr and a non-zero exit, before anything runs. (Running plugins
//! for a hub is tested in the top-level `tests/plugin_hosts.rs`.)

use std::process::Command;

fn run(config: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hcore-host"))
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_or_broken_config_is_one_clear_line() {
    let dir = std::env::temp_dir().join(format!("hcore-host-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (code, err) = run(&dir.join("nope.toml"));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("hcore-host: cannot read") && err.contains("nope.toml"),
        "{err}"
    );
    let broken = dir.join("host.toml");
    std::fs::write(
        &broken,
        "[host]\nbroker = \"mqtt://hub\"\n[[plugin]]\nid = \"a\"\ncommand = \"x\"\nrestart = \"sometimes\"\n",
    )
    .unwrap();
    let (code, err) = run(&broken);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown variant") && err.lines().count() <= 6,
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
