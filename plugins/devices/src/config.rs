//! Where the plugin looks for devices: a `[plugin.devices]` section of hcore.toml for
//! the bundled plugin, or a TOML file for `devices-plugin`.
//!
//! ```toml
//! zigbee2mqtt = "zigbee2mqtt"        # Zigbee2MQTT's base_topic ("" turns it off)
//! homeassistant = "homeassistant"    # Home Assistant's discovery prefix ("" turns it off)
//! tasmota = true                     # Tasmota's native topics and discovery
//! confirm_timeout_ms = 5000          # how long devices.set waits for the device's report
//! ```

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesConfig {
    pub zigbee2mqtt: String,
    pub homeassistant: String,
    pub tasmota: bool,
    pub confirm_timeout_ms: u64,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            zigbee2mqtt: "zigbee2mqtt".into(),
            homeassistant: "homeassistant".into(),
            tasmota: true,
            confirm_timeout_ms: 5000,
        }
    }
}

impl DevicesConfig {
    pub fn from_toml(text: &str) -> Result<DevicesConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}
