//! `hcore run`: the embedded broker, the kernel and the configured in-process plugins
//! (or the kernel and plugins as clients of an external broker), until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hcore_broker::ListenerConfig;
use hcore_kernel::{Hub, PluginFactory};

use crate::cli::RunArgs;
use hcore_kernel::settings::{default_data_dir, Settings};

/// The plugins this binary can load in-process, by name, with their `[plugin.<name>]`
/// settings.
pub fn bundled(name: &str, settings: Option<&toml::Table>) -> Result<PluginFactory, String> {
    let section = settings.cloned().unwrap_or_default();
    match name {
        hcore_example_plugin::ID => Ok(Arc::new(|| {
            Box::new(hcore_example_plugin::ExamplePlugin::new())
        })),
        hcore_devices_plugin::ID => {
            let config: hcore_devices_plugin::DevicesConfig = section
                .try_into()
                .map_err(|e| format!("[plugin.devices]: {e}"))?;
            Ok(Arc::new(move || {
                Box::new(hcore_devices_plugin::DevicesPlugin::new(config.clone()))
            }))
        }
        _ => Err(format!(
            "unknown plugin {name:?} (bundled: example, devices)"
        )),
    }
}

/// The settings of `--config` (or the defaults), with the data directory `--data-dir`
/// names, else the config's, else the per-user default.
pub fn settings(config: Option<&Path>, data_dir: Option<PathBuf>) -> Result<Settings, String> {
    let mut settings = match config {
        Some(path) => Settings::load(path)?,
        None => Settings::default(),
    };
    if let Some(dir) = data_dir {
        settings.kernel.data_dir = dir;
    } else if config.is_none()
        || settings.kernel.data_dir == hcore_kernel::KernelConfig::default().data_dir
    {
        settings.kernel.data_dir = default_data_dir();
    }
    Ok(settings)
}

pub async fn run(args: RunArgs) -> Result<(), String> {
    let mut settings = settings(args.config.as_deref(), args.data_dir)?;
    if !args.listen.is_empty() {
        settings.broker.listeners = args
            .listen
            .iter()
            .enumerate()
            .map(|(i, bind)| {
                let name = if i == 0 {
                    "mqtt".into()
                } else {
                    format!("mqtt{i}")
                };
                ListenerConfig::new(name, *bind)
            })
            .collect();
    }
    if args.broker.is_some() {
        settings.broker_url = args.broker;
    }
    settings.plugins.extend(args.plugin);
    let mut plugins = Vec::new();
    for name in &settings.plugins {
        let factory = bundled(name, settings.plugin.get(name))?;
        plugins.push((name.clone(), factory));
    }
    if settings.broker_url.is_none() {
        let binds: Vec<SocketAddr> = settings.broker.listeners.iter().map(|l| l.bind).collect();
        warn_if_open(&binds);
    }
    let hub = Hub::start(&settings, plugins)
        .await
        .map_err(|e| e.to_string())?;
    let kernel = hub.kernel();
    for id in kernel.plugins().ids() {
        tracing::info!(plugin = %id, "in-process plugin loaded");
    }
    hcore_client::shutdown_signal().await;
    tracing::info!("shutting down: stopping plugins, answering calls in flight, finishing writes, then the broker");
    hub.shutdown().await;
    Ok(())
}

fn warn_if_open(binds: &[SocketAddr]) {
    for b in binds {
        if !b.ip().is_loopback() {
            tracing::warn!(
                addr = %b,
                "listening beyond loopback with anonymous access: any client on the network can connect"
            );
        }
    }
}
