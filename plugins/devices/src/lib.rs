//! The devices plugin: existing MQTT devices (Zigbee2MQTT, Home Assistant MQTT
//! discovery, Tasmota) become hcore devices. It reads each ecosystem's topics, keeps
//! one device per physical device (`devices.list`, `devices.get`), writes what each
//! reports to hcore state (`devices/<id>`: `{"reported", "availability", "last_seen"}`),
//! turns desired changes (`devices.set`, or a publish on
//! `<root>/state/devices/<id>/set`) into the device's own command and says whether the
//! device confirmed it, announces `devices/added|removed|availability` events, and keeps
//! the devices it knows in its storage across restarts. Built on the SDK alone: bundled
//! (`hcore run --plugin devices`) or as its own program (`devices-plugin`).

pub mod config;
mod core;
pub mod model;
mod registry;
mod service;
pub mod sources;

use std::sync::Arc;

use hcore_client::protocol::Manifest;
use hcore_client::{async_trait, Client, Plugin, PluginError};
use serde_json::{Map, Value};

pub use config::DevicesConfig;
use registry::{Known, Registry};

/// The plugin id (its identity: its methods, state keys and storage).
pub const ID: &str = "devices";

/// Devices read from storage at start, per page.
const PAGE: usize = 200;

pub struct DevicesPlugin {
    config: DevicesConfig,
    core: Option<Arc<core::Core>>,
}

impl DevicesPlugin {
    pub fn new(config: DevicesConfig) -> DevicesPlugin {
        DevicesPlugin { config, core: None }
    }
}

#[async_trait]
impl Plugin for DevicesPlugin {
    fn id(&self) -> &str {
        ID
    }

    fn manifest(&self) -> Manifest {
        Manifest {
            version: env!("CARGO_PKG_VERSION").to_string(),
            description:
                "Zigbee2MQTT, Home Assistant discovery and Tasmota devices as hcore devices".into(),
            events: ["devices/added", "devices/removed", "devices/availability"]
                .map(String::from)
                .to_vec(),
            state_commands: vec!["devices/+".into()],
            ..Manifest::default()
        }
    }

    async fn on_start(&mut self, client: &Client) -> Result<(), PluginError> {
        let registry = restore(client).await?;
        tracing::info!(
            devices = registry.len(),
            "known devices restored (availability unknown until they speak)"
        );
        let sources = sources::Sources::new(&self.config);
        let filters = sources.filters();
        let core = core::Core::start(client, registry, sources, self.config.confirm_timeout_ms);
        service::provide(client, core.clone()).await?;
        for filter in filters {
            let c = core.clone();
            client
                .subscribe_inline(&filter, Arc::new(move |m| c.on_message(m)))
                .await?;
        }
        let (c, cl) = (core.clone(), client.clone());
        let prefix = format!("{}/state/devices/", client.topics().root());
        client
            .subscribe_inline(
                &format!("{prefix}+/set"),
                Arc::new(move |m| state_command(&cl, &c, &prefix, m)),
            )
            .await?;
        self.core = Some(core);
        Ok(())
    }

    /// The last reports are written before the plugin goes.
    async fn on_stop(&mut self, client: &Client) -> Result<(), PluginError> {
        if let Some(core) = self.core.take() {
            core.flush(client).await;
        }
        Ok(())
    }
}

/// The devices kept in storage, every page of them.
async fn restore(client: &Client) -> Result<Registry, PluginError> {
    let mut registry = Registry::default();
    let mut after: Option<String> = None;
    loop {
        let page = client
            .storage()
            .list("device/", PAGE, after.as_deref())
            .await?;
        for item in page.items {
            match serde_json::from_value::<Known>(item.value) {
                Ok(known) => registry.restore(known),
                Err(e) => tracing::warn!(key = item.key, "stored device unreadable ({e}); skipped"),
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(registry),
        }
    }
}

/// `<root>/state/devices/<id>/set` with the desired properties as a JSON object.
fn state_command(client: &Client, core: &Arc<core::Core>, prefix: &str, m: &hcore_client::Message) {
    let Some(id) = m
        .topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix("/set"))
    else {
        return;
    };
    let properties = match serde_json::from_slice::<Map<String, Value>>(&m.payload) {
        Ok(p) => p,
        Err(e) => {
            return tracing::warn!(
                topic = m.topic,
                "not a JSON object of properties ({e}); ignored"
            )
        }
    };
    let cmd = model::DevicesSet {
        id: id.to_string(),
        properties,
        timeout_ms: None,
    };
    let (client, core) = (client.clone(), core.clone());
    tokio::spawn(async move {
        match service::set(&client, &core, cmd, None).await {
            Ok(o) => tracing::debug!(device = o.id, status = o.status, "state command"),
            Err(e) => tracing::warn!("state command refused: {}", e.message),
        }
    });
}
