//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hcore",
    version,
    about = "hcore: an MQTT-native home-automation kernel"
)]
pub struct Cli {
    /// Log filter (tracing syntax, e.g. `info,hcore_kernel=debug`); RUST_LOG also works.
    #[arg(long, global = true)]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker, the kernel and the configured in-process plugins.
    Run(RunArgs),
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (TOML, see docs/CONFIG.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the database lives (default: $XDG_DATA_HOME/hcore or ~/.local/share/hcore).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (repeatable; default 127.0.0.1:1883).
    #[arg(long)]
    pub listen: Vec<SocketAddr>,
    /// Use an external broker (mqtt://host:port) instead of embedding one.
    #[arg(long)]
    pub broker: Option<String>,
    /// Load a bundled in-process plugin (repeatable), e.g. `example`.
    #[arg(long)]
    pub plugin: Vec<String>,
}
