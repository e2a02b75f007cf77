//! The plugin contract (the seed's BasePlugin): lifecycle hooks around a client.
//!
//! The same plugin type runs in-process (loaded by the kernel's plugin manager) or as its
//! own program on another machine (`run_remote`). `on_start` sets the plugin up (provide
//! methods, subscribe); `run` is its main loop, if it has one; `on_stop` undoes what needs
//! undoing. An error or panic in any of them marks the plugin failed; the manager restarts
//! it with a capped backoff.

use async_trait::async_trait;

use crate::client::{Client, ClientOptions};
use crate::error::ClientError;
use crate::protocol::Manifest;

/// Errors a plugin reports from its hooks.
pub type PluginError = Box<dyn std::error::Error + Send + Sync>;

/// A plugin. Only `id` and `on_start` are required.
#[async_trait]
pub trait Plugin: Send + 'static {
    /// The plugin id: its client id and identity (see PROTOCOL.md for the rules).
    fn id(&self) -> &str;

    /// Version, description, events; provided methods are added automatically.
    fn manifest(&self) -> Manifest {
        Manifest::default()
    }

    /// Called once before the first start.
    async fn on_load(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    /// Sets the plugin up on a connected client.
    async fn on_start(&mut self, client: &Client) -> Result<(), PluginError>;

    /// The plugin's main loop; the default waits until the plugin is stopped. Returning
    /// `Ok` also just waits for the stop.
    async fn run(&mut self, _client: &Client) -> Result<(), PluginError> {
        std::future::pending::<()>().await;
        Ok(())
    }

    /// Called when the plugin is stopped, before the client disconnects.
    async fn on_stop(&mut self, _client: &Client) -> Result<(), PluginError> {
        Ok(())
    }

    /// Called once when the plugin is unloaded.
    async fn on_unload(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Runs a plugin as its own program against a broker at `url` until Ctrl-C / SIGTERM:
/// connect (with reconnects), on_load, on_start, run, then on_stop, on_unload and a clean
/// shutdown (`offline` status published).
pub async fn run_remote<P: Plugin>(mut plugin: P, url: &str) -> Result<(), ClientError> {
    let options = ClientOptions::new(plugin.id()).manifest(plugin.manifest());
    let client = Client::connect(url, options).await?;
    let fail = |e: PluginError| ClientError::Transport(format!("plugin failed: {e}"));
    plugin.on_load().await.map_err(fail)?;
    plugin.on_start(&client).await.map_err(fail)?;
    let result = tokio::select! {
        r = plugin.run(&client) => r.map_err(fail),
        _ = shutdown_signal() => Ok(()),
    };
    let stop = plugin.on_stop(&client).await.map_err(fail);
    let unload = plugin.on_unload().await.map_err(fail);
    client.shutdown().await?;
    result.and(stop).and(unload)
}

/// Resolves on Ctrl-C or SIGTERM: when a plugin program (or any hcore program) should
/// stop cleanly.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
