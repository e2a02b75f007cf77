//! Broker configuration: listeners, limits and router sizing, read from TOML.
//!
//! Every field has a default (see `docs/CONFIG.md`), so an empty file is a valid config.
//! Unknown keys are errors: a typo should not silently fall back to a default.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

/// One TCP listener. Every listener speaks MQTT 3.1.1 and 5 on the same port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name used in logs.
    #[serde(default = "default_listener_name")]
    pub name: String,
    /// Address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Connection limit for this listener (the global `max_connections` also applies).
    #[serde(default)]
    pub max_connections: Option<usize>,
}

fn default_listener_name() -> String {
    "mqtt".to_string()
}

/// Sizing of rumqttd's router (the in-memory commit log per subscribed filter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSettings {
    /// Bytes (topic + payload) per log segment; at least 1024.
    pub max_segment_size: usize,
    /// Segments kept per filter log besides the active one; at least 1.
    pub max_segment_count: usize,
    /// Messages the router hands a QoS 0 subscriber per scheduling round.
    pub max_outgoing_packet_count: u64,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            max_segment_size: 64 * 1024,
            max_segment_count: 3,
            max_outgoing_packet_count: 200,
        }
    }
}

/// The whole broker configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Listeners; the default is one on 127.0.0.1:1883.
    pub listeners: Vec<ListenerConfig>,
    /// Largest packet accepted from a client, header included (bytes).
    pub max_packet_size: usize,
    /// Most simultaneous network connections across all listeners.
    pub max_connections: usize,
    /// Time a new connection has to send its CONNECT (milliseconds).
    pub connect_timeout_ms: u64,
    /// Bytes queued for one slow network subscriber before QoS 0 messages are dropped.
    pub max_queued_bytes: usize,
    /// QoS 1/2 messages queued for one client beyond its in-flight window before messages
    /// are dropped (like mosquitto's `max_queued_messages`).
    pub max_queued_messages: usize,
    /// Messages queued for one slow in-process subscriber before messages are dropped.
    pub local_queue_limit: usize,
    /// Topic aliases a v5 client may use towards the broker.
    pub topic_alias_maximum: u16,
    /// QoS 1/2 messages in flight (sent, not yet acknowledged) towards one client.
    pub max_inflight: u16,
    pub router: RouterSettings,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listeners: vec![ListenerConfig {
                name: default_listener_name(),
                bind: SocketAddr::from(([127, 0, 0, 1], 1883)),
                max_connections: None,
            }],
            max_packet_size: 256 * 1024,
            max_connections: 10_000,
            connect_timeout_ms: 10_000,
            max_queued_bytes: 1024 * 1024,
            max_queued_messages: 1000,
            local_queue_limit: 100_000,
            topic_alias_maximum: 64,
            max_inflight: 100,
            router: RouterSettings::default(),
        }
    }
}

impl BrokerConfig {
    /// A config with one listener on `bind` and defaults elsewhere.
    pub fn with_listener(bind: SocketAddr) -> BrokerConfig {
        BrokerConfig {
            listeners: vec![ListenerConfig {
                name: default_listener_name(),
                bind,
                max_connections: None,
            }],
            ..BrokerConfig::default()
        }
    }

    /// Parses TOML; errors carry line and column.
    pub fn from_toml(text: &str) -> Result<BrokerConfig, BrokerError> {
        let config: BrokerConfig =
            toml::from_str(text).map_err(|e| BrokerError::Config(describe_toml_error(text, &e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<BrokerConfig, BrokerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BrokerError::Config(format!("cannot read {}: {e}", path.display())))?;
        BrokerConfig::from_toml(&text)
            .map_err(|e| BrokerError::Config(format!("{}: {e}", path.display())))
    }

    /// Checks limits that rumqttd would otherwise panic on or that make no sense.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let bad = |m: &str| Err(BrokerError::Config(m.to_string()));
        if self.router.max_segment_size < 1024 {
            return bad("router.max_segment_size must be at least 1024");
        }
        if self.router.max_segment_count < 1 {
            return bad("router.max_segment_count must be at least 1");
        }
        if self.router.max_outgoing_packet_count < 1 {
            return bad("router.max_outgoing_packet_count must be at least 1");
        }
        if !(64..=268_435_460).contains(&self.max_packet_size) {
            return bad("max_packet_size must be between 64 and 268435460");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_inflight == 0 {
            return bad("max_inflight must be at least 1");
        }
        if self.max_queued_messages == 0 {
            return bad("max_queued_messages must be at least 1");
        }
        if self.local_queue_limit == 0 {
            return bad("local_queue_limit must be at least 1");
        }
        Ok(())
    }
}

/// A TOML error on one line: `line L, column C: message`.
pub fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_default() {
        assert_eq!(
            BrokerConfig::from_toml("").unwrap(),
            BrokerConfig::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = BrokerConfig::from_toml("max_pakcet_size = 10").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = BrokerConfig::from_toml("[router]\nmax_segment_size = 10").unwrap_err();
        assert!(e.to_string().contains("1024"), "{e}");
        let e = BrokerConfig::from_toml("max_connections = \"x\"").unwrap_err();
        assert!(e.to_string().contains("line 1, column 19"), "{e}");
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
    }

    #[test]
    fn listeners_parse() {
        let c = BrokerConfig::from_toml(
            "[[listeners]]\nbind = \"0.0.0.0:1883\"\n[[listeners]]\nname = \"lan\"\nbind = \"127.0.0.1:0\"\nmax_connections = 5\n",
        )
        .unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[1].max_connections, Some(5));
    }
}
