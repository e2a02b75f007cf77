//! Broker configuration: listeners, persistence and every limit, read from TOML.
//!
//! Every field has a default (see `docs/CONFIG.md`), so an empty file is a valid config.
//! Unknown keys are errors: a typo should not silently fall back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Whether clients without a user name may connect here. Unset: only when `bind` is a
    /// loopback address (nobody else can reach it). Set to `true` on any other address
    /// only on purpose: anyone who can reach the port is then let in (a warning says so
    /// at every start).
    #[serde(default)]
    pub allow_anonymous: Option<bool>,
    /// The role anonymous clients of this listener get. The broker does not interpret it:
    /// it is handed to the hooks (`ClientInfo::anonymous_role`).
    #[serde(default)]
    pub anonymous_role: Option<String>,
    /// Serve MQTT over TLS here (MQTT's port for it is 8883).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// TLS on a listener (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, its own certificate first.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// CA certificates whose client certificates are accepted: a client that presents
    /// one logs in as the certificate's common name (CN), without a password.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Refuse clients that present no certificate from `client_ca`.
    #[serde(default)]
    pub require_client_cert: bool,
}

impl ListenerConfig {
    /// A listener on `bind` with the defaults.
    pub fn new(name: impl Into<String>, bind: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            name: name.into(),
            bind,
            max_connections: None,
            allow_anonymous: None,
            anonymous_role: None,
            tls: None,
        }
    }

    /// Are clients without a user name let in?
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous
            .unwrap_or_else(|| self.bind.ip().is_loopback())
    }
}

fn default_listener_name() -> String {
    "mqtt".to_string()
}

/// The whole broker configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Listeners; the default is one on 127.0.0.1:1883.
    pub listeners: Vec<ListenerConfig>,
    /// Where retained messages and persistent sessions are kept across restarts; none:
    /// in memory only.
    pub persistence_dir: Option<PathBuf>,
    /// How often changed retained messages and persistent sessions are saved (and so the
    /// most a crash can lose), milliseconds.
    pub persistence_interval_ms: u64,
    /// Largest packet accepted from a client, header included (bytes).
    pub max_packet_size: usize,
    /// Most simultaneous network connections across all listeners.
    pub max_connections: usize,
    /// Most simultaneous network connections from one IP address.
    pub max_connections_per_address: usize,
    /// New connections one IP address may open per second (a burst of as many is allowed).
    pub max_connects_per_second: u32,
    /// Apply the per-address limits to loopback addresses too (local tools and the hub's
    /// own processes are exempt by default).
    pub limit_loopback: bool,
    /// Time a new connection has to send its CONNECT (milliseconds).
    pub connect_timeout_ms: u64,
    /// Bytes queued for one client (to send now, or while a persistent session's client
    /// is away) before messages to it are dropped.
    pub max_queued_bytes: usize,
    /// QoS 1/2 messages queued for one client beyond its in-flight window (or while a
    /// persistent session's client is away) before messages are dropped (like mosquitto's
    /// `max_queued_messages`).
    pub max_queued_messages: usize,
    /// Messages queued for one slow in-process subscriber before messages are dropped.
    pub local_queue_limit: usize,
    /// Topic aliases a v5 client may use towards the broker, and the most the broker uses
    /// towards a client.
    pub topic_alias_maximum: u16,
    /// QoS 1/2 messages in flight (sent, not yet acknowledged) towards one client.
    pub max_inflight: u16,
    /// QoS 2 publishes one client may have in flight towards the broker (its MQTT 5 Receive
    /// Maximum); more close the connection.
    pub receive_maximum: u16,
    /// Longest topic name or filter, bytes.
    pub max_topic_length: usize,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: usize,
    /// Most subscriptions one client may hold.
    pub max_subscriptions_per_client: usize,
    /// Retained messages kept in all.
    pub max_retained_messages: usize,
    /// Bytes (topic + payload) of retained messages kept in all.
    pub max_retained_bytes: usize,
    /// Bytes of retained messages one client may have stored.
    pub max_retained_bytes_per_client: usize,
    /// Persistent sessions kept; beyond, the one whose client has been away longest ends.
    pub max_persistent_sessions: usize,
    /// How long an MQTT 3.1.1 persistent session (clean session off) outlives its
    /// connection, seconds.
    pub session_expiry_secs: u32,
    /// The longest session expiry an MQTT 5 client may ask for, seconds.
    pub max_session_expiry_secs: u32,
    /// If set, the longest keep-alive a client may use (a client asking for more, or 0, is
    /// given this; MQTT 5 clients are told in the CONNACK), seconds.
    pub max_keep_alive_secs: Option<u16>,
    /// How often `$SYS/broker/...` is published, seconds (0: never).
    pub sys_interval_secs: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listeners: vec![ListenerConfig::new(
                default_listener_name(),
                SocketAddr::from(([127, 0, 0, 1], 1883)),
            )],
            persistence_dir: None,
            persistence_interval_ms: 1000,
            max_packet_size: 16 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_address: 1_000,
            max_connects_per_second: 100,
            limit_loopback: false,
            connect_timeout_ms: 10_000,
            max_queued_bytes: 1024 * 1024,
            max_queued_messages: 1000,
            local_queue_limit: 100_000,
            topic_alias_maximum: 64,
            max_inflight: 100,
            receive_maximum: 100,
            max_topic_length: 4096,
            max_topic_levels: 32,
            max_subscriptions_per_client: 10_000,
            max_retained_messages: 100_000,
            max_retained_bytes: 16 * 1024 * 1024,
            max_retained_bytes_per_client: 8 * 1024 * 1024,
            max_persistent_sessions: 1_000,
            session_expiry_secs: 7 * 86_400,
            max_session_expiry_secs: 30 * 86_400,
            max_keep_alive_secs: None,
            sys_interval_secs: 10,
        }
    }
}

impl crate::topic::TopicLimits for BrokerConfig {
    fn max_topic_len(&self) -> usize {
        self.max_topic_length
    }

    fn max_topic_levels(&self) -> usize {
        self.max_topic_levels
    }
}

impl BrokerConfig {
    /// A config with one listener on `bind` and defaults elsewhere.
    pub fn with_listener(bind: SocketAddr) -> BrokerConfig {
        BrokerConfig {
            listeners: vec![ListenerConfig::new(default_listener_name(), bind)],
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

    /// Checks limits that make no sense.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let bad = |m: &str| Err(BrokerError::Config(m.to_string()));
        if !(64..=268_435_460).contains(&self.max_packet_size) {
            return bad("max_packet_size must be between 64 and 268435460");
        }
        if !(1..=crate::topic::MAX_TOPIC_LEN).contains(&self.max_topic_length) {
            return bad("max_topic_length must be between 1 and 65535");
        }
        for (name, v) in [
            ("max_connections", self.max_connections),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
            (
                "max_connects_per_second",
                self.max_connects_per_second as usize,
            ),
            ("max_inflight", usize::from(self.max_inflight)),
            ("receive_maximum", usize::from(self.receive_maximum)),
            ("max_queued_messages", self.max_queued_messages),
            ("max_queued_bytes", self.max_queued_bytes),
            ("local_queue_limit", self.local_queue_limit),
            ("max_topic_levels", self.max_topic_levels),
            (
                "persistence_interval_ms",
                self.persistence_interval_ms as usize,
            ),
            (
                "max_subscriptions_per_client",
                self.max_subscriptions_per_client,
            ),
        ] {
            if v == 0 {
                return bad(&format!("{name} must be at least 1"));
            }
        }
        if self.max_keep_alive_secs == Some(0) {
            return bad("max_keep_alive_secs must be at least 1 (leave it out for no limit)");
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
        let e = BrokerConfig::from_toml("max_inflight = 0").unwrap_err();
        assert!(e.to_string().contains("max_inflight"), "{e}");
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
