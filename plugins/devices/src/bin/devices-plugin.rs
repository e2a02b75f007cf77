//! `devices-plugin [URL] [CONFIG]`: the devices plugin as its own program (on the hub's
//! machine or any other that reaches the broker). The URL defaults to `HCORE_URL`, the
//! config (TOML, see `config.rs`) to the defaults.

use hcore_devices_plugin::{DevicesConfig, DevicesPlugin};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("HCORE_URL").ok())
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
    let config = match args.next() {
        Some(path) => match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| DevicesConfig::from_toml(&t))
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("devices-plugin: {path}: {e}");
                std::process::exit(1);
            }
        },
        None => DevicesConfig::default(),
    };
    if let Err(e) = hcore_client::run_remote(DevicesPlugin::new(config), &url).await {
        eprintln!("devices-plugin: {e}");
        std::process::exit(1);
    }
}
