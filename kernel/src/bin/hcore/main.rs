//! `hcore`: a thin binary over the broker, kernel and SDK crates.

mod cli;
mod run;
mod settings;

use std::io::IsTerminal;

use clap::Parser;

/// rumqttd's router logs every connection and subscription at info; hcore's edge already
/// logs what matters.
const DEFAULT_LOG: &str = "info,rumqttd=warn";

fn main() {
    let cli = cli::Cli::parse();
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| DEFAULT_LOG.to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(&format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Run(args) => run::run(args).await,
            cli::Command::Version => {
                println!("hcore {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        }
    });
    if let Err(e) = result {
        fail(&e);
    }
}

/// One clear line on stderr and a non-zero exit: no panic, no backtrace.
fn fail(message: &str) -> ! {
    eprintln!("hcore: {message}");
    std::process::exit(1);
}
