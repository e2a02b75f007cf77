//! `hcore`: a thin binary over the broker, kernel and SDK crates.

mod certs;
mod cli;
mod commands;
mod demo;
mod devices;
mod run;
mod sub;
mod users;

use std::io::IsTerminal;

use clap::Parser;

/// What is logged without `--log` or `RUST_LOG`.
const DEFAULT_LOG: &str = "info";

fn main() {
    let cli = cli::Cli::parse();
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| DEFAULT_LOG.to_string());
    init_logging(&filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(&format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        use commands::Failure;
        match cli.command {
            cli::Command::Run(args) => run::run(args).await.map_err(Failure::from),
            cli::Command::Demo(args) => demo::demo(args).await.map_err(Failure::from),
            cli::Command::Pub(args) => commands::publish(args).await,
            cli::Command::Sub(args) => sub::subscribe(args).await,
            cli::Command::Call(args) => commands::call(args).await,
            cli::Command::State(args) => commands::state(args).await,
            cli::Command::Storage(args) => commands::storage(args).await,
            cli::Command::Plugins(args) => commands::plugins(args).await,
            cli::Command::Devices(args) => devices::devices(args).await,
            cli::Command::Users(args) => users::users(args).map_err(Failure::from),
            cli::Command::Export(args) => users::export(args).map_err(Failure::from),
            cli::Command::Certs(args) => certs::certs(args).map_err(Failure::from),
            cli::Command::Version => {
                println!("hcore {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        }
    });
    // Commands end the process without waiting for background tasks (reconnect loops).
    runtime.shutdown_background();
    if let Err(commands::Failure(message, code)) = result {
        fail_with(&message, code);
    }
}

/// Logs to stderr through `filter` (RUST_LOG syntax), and keeps in-process plugins'
/// lines for `plugins.logs`.
fn init_logging(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .finish()
        .with(hcore_kernel::plugin_logs::PluginLogLayer)
        .init();
}

/// One clear line on stderr and a non-zero exit: no panic, no backtrace.
fn fail(message: &str) -> ! {
    fail_with(message, 1)
}

fn fail_with(message: &str, code: i32) -> ! {
    eprintln!("hcore: {message}");
    std::process::exit(code);
}
