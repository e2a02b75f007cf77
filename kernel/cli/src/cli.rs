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
    /// Start everything in-process on a free port and walk through what hcore does.
    Demo(DemoArgs),
    /// Publish a message.
    Pub(PubArgs),
    /// Watch messages: time, events, calls paired with replies, state records, status.
    Sub(SubArgs),
    /// Call `service.method` with JSON params and print the result.
    Call(CallArgs),
    /// Read and write the kernel's state.
    State(StateArgs),
    /// Read and write this client's storage namespace (administrators: read any).
    Storage(StorageArgs),
    /// List, start and stop plugins.
    Plugins(PluginsArgs),
    /// The devices the devices plugin knows (Zigbee2MQTT, Home Assistant discovery,
    /// Tasmota): list them, read one, command one.
    Devices(DevicesArgs),
    /// Manage who may connect with a user name and password (the users files in the data
    /// directory; a running hcore picks up changes at once).
    Users(UsersArgs),
    /// Write the users and policy in an external broker's formats (mosquitto).
    Export(ExportArgs),
    /// Make a private CA (once) and certificates it signs, for TLS listeners and clients.
    Certs(CertsArgs),
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

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pause between steps, milliseconds (time to watch with mosquitto_sub).
    #[arg(long, default_value_t = 700)]
    pub pace_ms: u64,
}

/// How to reach a running hcore.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Broker URL; several, comma-separated, for the nodes of a cluster (each failed
    /// attempt tries the next).
    #[arg(
        long,
        env = "HCORE_URL",
        default_value = "mqtt://127.0.0.1:1883",
        global = true
    )]
    pub url: String,
    #[arg(long, env = "HCORE_USERNAME", global = true)]
    pub username: Option<String>,
    #[arg(long, env = "HCORE_PASSWORD", global = true, hide_env_values = true)]
    pub password: Option<String>,
    /// CA certificate to trust for an mqtts:// broker (default: the system's).
    #[arg(long, env = "HCORE_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) to log in with on an mqtts:// broker: its CN is the user.
    #[arg(
        long = "cert",
        id = "tls_cert",
        env = "HCORE_CERT",
        global = true,
        requires = "tls_key"
    )]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long = "key",
        id = "tls_key",
        env = "HCORE_KEY",
        global = true,
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,
    /// Client id: the identity of calls and the storage namespace.
    #[arg(long = "id", id = "client_id", default_value = "cli", global = true)]
    pub client_id: String,
    /// How long to wait for a reply, seconds.
    #[arg(long, default_value_t = 5.0, global = true)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct PubArgs {
    #[command(flatten)]
    pub conn: Conn,
    pub topic: String,
    pub payload: String,
    /// Retain the message.
    #[arg(long)]
    pub retain: bool,
}

#[derive(Debug, Args)]
pub struct SubArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Topic filters (default: everything under the root).
    pub filters: Vec<String>,
    /// Print `topic payload` lines, unformatted (like `mosquitto_sub -v`).
    #[arg(long, conflicts_with = "pretty")]
    pub raw: bool,
    /// Print JSON on several lines, indented.
    #[arg(long)]
    pub pretty: bool,
    /// Exit after this many messages.
    #[arg(long, short = 'C')]
    pub count: Option<usize>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// `service.method`.
    pub method: String,
    /// Params as JSON (default `{}`).
    pub params: Option<String>,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub op: StateOp,
}

#[derive(Debug, Subcommand)]
pub enum StateOp {
    /// Print the record at a key.
    Get { key: String },
    /// Write a JSON value.
    Set {
        key: String,
        value: String,
        /// Only if the current version is this (0: must not exist).
        #[arg(long)]
        expect_version: Option<u64>,
    },
    /// Delete a key.
    Delete { key: String },
    /// List keys with a prefix.
    List { prefix: Option<String> },
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Read another client's namespace (get and list only; administrators only).
    #[arg(long)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub op: StorageOp,
}

#[derive(Debug, Subcommand)]
pub enum StorageOp {
    Get { key: String },
    Set { key: String, value: String },
    Delete { key: String },
    List { prefix: Option<String> },
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub op: DevicesOp,
}

#[derive(Debug, Subcommand)]
pub enum DevicesOp {
    /// Every device: id, availability, last seen, name, sources.
    List {
        /// The whole list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One device: what it is, its properties and what it reported.
    Get { id: String },
    /// Ask a device for new values, e.g. `set lamp '{"state": "ON", "brightness": 200}'`;
    /// says whether the device confirmed them.
    Set {
        id: String,
        properties: String,
        /// How long to wait for the device's confirmation, milliseconds.
        #[arg(long, default_value_t = 5000)]
        wait_ms: u64,
    },
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub op: PluginsOp,
}

#[derive(Debug, Subcommand)]
pub enum PluginsOp {
    /// Every plugin the hub has seen: in-process, run by a plugin host, or remote.
    List,
    /// Start a managed plugin (in-process, or on its plugin host); waits until it runs.
    Start { id: String },
    /// Stop a managed plugin; waits until it has stopped.
    Stop { id: String },
    /// Stop, then start a managed plugin.
    Restart { id: String },
    /// The last lines a managed plugin wrote (a hosted plugin's stdout and stderr, an
    /// in-process plugin's log events).
    Logs {
        id: String,
        /// How many of the newest lines.
        #[arg(long, short = 'n', default_value_t = 100)]
        lines: usize,
    },
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Config file (its `[kernel] data_dir` holds the users files).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// The data directory (default: as for `hcore run`).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Where the CA and the certificates live (ca.pem, ca.key, <name>.pem, <name>.key).
    #[arg(long, global = true, default_value = "certs")]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// A server certificate (server.pem, server.key) for these host names and addresses.
    Server {
        #[arg(required = true)]
        hosts: Vec<String>,
    },
    /// A client certificate (NAME.pem, NAME.key) whose CN, NAME, is the user it logs in as.
    Client { name: String },
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Config file (its data directory holds the users; its `plugins` get logins).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// The data directory (default: as for `hcore run`).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ExportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// mosquitto's `passwd`, `acl` and `mosquitto.conf` in DIR (point mosquitto at the
    /// conf; run `hcore run --broker` with the same data directory: the kernel and the
    /// in-process plugins log in with the logins this makes).
    Mosquitto { dir: PathBuf },
    /// nats-server's `authorization.conf` in DIR, for every node of a NATS cluster to
    /// `include` (its users need bcrypt hashes: `hcore users passwd` makes them).
    Nats { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user. The password is read from stdin when it is not a terminal; otherwise
    /// one is generated and printed once.
    Add {
        name: String,
        /// admin, plugin, device or observer.
        #[arg(long, default_value = "plugin")]
        role: String,
    },
    /// Set a user's password (read from stdin when it is not a terminal, else generated
    /// and printed once) and, with --role, its role.
    Passwd {
        name: String,
        #[arg(long)]
        role: Option<String>,
    },
    /// Remove a user.
    Remove { name: String },
    /// List users and their roles.
    List,
}
