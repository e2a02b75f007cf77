//! `hcore-host`: runs the plugin host of `--config` until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use clap::Parser;

/// Runs and supervises plugins for an hcore hub (see deploy/RASPBERRY-PI.md).
#[derive(Debug, Parser)]
#[command(name = "hcore-host", version)]
struct Args {
    /// The host's config file (TOML).
    #[arg(
        long,
        short,
        env = "HCORE_HOST_CONFIG",
        default_value = "/etc/hcore/host.toml"
    )]
    config: PathBuf,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // journald adds its own timestamps and does not render colours.
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .init();
    let config = match hcore_host::HostConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => fail(&e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(&format!("cannot start the async runtime: {e}")),
    };
    if let Err(e) = runtime.block_on(hcore_host::run(config, hcore_client::shutdown_signal())) {
        fail(&e.to_string());
    }
}

fn fail(message: &str) -> ! {
    eprintln!("hcore-host: {message}");
    std::process::exit(1);
}
