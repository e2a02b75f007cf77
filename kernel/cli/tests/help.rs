//! The command line itself: every command is listed and documented, and the version is
//! the package's. (Commands against a running hcore are system tests, in `tests/`.)

use std::process::Command;

fn hcore(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hcore"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run hcore");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_command_is_listed_and_has_help() {
    let (ok, help) = hcore(&["--help"]);
    assert!(ok, "{help}");
    for command in [
        "run", "demo", "pub", "sub", "call", "state", "storage", "plugins", "version",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from --help:\n{help}"
        );
        let (ok, text) = hcore(&[command, "--help"]);
        assert!(ok && text.contains("Usage"), "{command} --help: {text}");
    }
}

#[test]
fn version_is_the_package_version() {
    let (ok, text) = hcore(&["version"]);
    assert!(ok);
    assert_eq!(text.trim(), format!("hcore {}", env!("CARGO_PKG_VERSION")));
}
