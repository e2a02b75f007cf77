//! Authentication and authorization hooks: how the embedder (the kernel) decides who may
//! connect and what each connection may publish and subscribe to.
//!
//! Hooks are synchronous and called on the connection's task for every CONNECT, PUBLISH
//! (including wills) and SUBSCRIBE filter, so they must be fast and must not block (keep
//! credentials and policies in memory).

use std::net::SocketAddr;

use crate::types::Protocol;

/// What a CONNECT presents.
#[derive(Debug, Clone, Copy)]
pub struct ConnectInfo<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    /// The user name is the CN of a client certificate the TLS listener verified: there
    /// is no password to check.
    pub certificate: bool,
    pub peer: Option<SocketAddr>,
    pub protocol: Protocol,
}

/// Why a CONNECT is refused; maps to CONNACK 0x04/0x05 (v3.1.1) or 0x86/0x87 (v5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    BadCredentials,
    NotAuthorized,
}

/// The identity of an accepted connection, given to the authorization hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: String,
    pub username: Option<String>,
    /// For a client without a user name: its listener's `anonymous_role`, if set.
    pub anonymous_role: Option<String>,
    pub peer: Option<SocketAddr>,
    pub protocol: Protocol,
}

impl ClientInfo {
    /// The name of this client's session. A client id is unique within a user name, not
    /// across the broker: a connection takes over only a session of the same user, so a
    /// user cannot kick off, or resume the session of, a client of another user by reusing
    /// its client id (mosquitto keys sessions on the client id alone). NUL, which MQTT
    /// forbids in strings and the handshake refuses, separates the two.
    pub fn session_key(&self) -> String {
        match &self.username {
            Some(user) => format!("{user}\u{0}{}", self.client_id),
            None => self.client_id.clone(),
        }
    }
}

/// A message a client wants to publish, as the publish hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct PublishInfo<'a> {
    /// After topic alias resolution.
    pub topic: &'a str,
    pub payload: &'a [u8],
    /// MQTT 5 correlation data, if any.
    pub correlation: Option<&'a [u8]>,
    pub retain: bool,
}

impl<'a> PublishInfo<'a> {
    /// The view of a whole message.
    pub fn of(m: &'a crate::types::Message) -> PublishInfo<'a> {
        PublishInfo {
            topic: &m.topic,
            payload: &m.payload,
            correlation: m
                .properties
                .as_ref()
                .and_then(|p| p.correlation_data.as_deref()),
            retain: m.retain,
        }
    }
}

/// The embedder's policy. Every method defaults to "allow".
pub trait Hooks: Send + Sync + 'static {
    /// Called once per CONNECT, before anything else happens for the connection.
    fn authenticate(&self, _connect: &ConnectInfo<'_>) -> Result<(), ConnectRefusal> {
        Ok(())
    }

    /// Called for every PUBLISH and every will, before anything is stamped or routed.
    /// It sees the payload and correlation data, so a reply can be checked against the
    /// request it answers.
    fn authorize_publish(&self, _client: &ClientInfo, _publish: &PublishInfo<'_>) -> bool {
        true
    }

    /// Called for a PUBLISH or will with the retain flag, once `authorize_publish` allowed
    /// it: false refuses the message as if it were not authorized (the kernel keeps
    /// request and reply topics free of retained messages).
    fn authorize_retain(&self, _client: &ClientInfo, _topic: &str) -> bool {
        true
    }

    /// Called for every filter of every SUBSCRIBE. For `$share/<group>/<filter>` the
    /// hook sees `<filter>`: access depends on what can be read, not on the group.
    fn authorize_subscribe(&self, _client: &ClientInfo, _filter: &str) -> bool {
        true
    }

    /// Called for every message about to be delivered to a client (network or
    /// in-process). Returning false skips this delivery only: a `#` subscriber can be kept
    /// from reading topics private to other clients, the way mosquitto applies read ACLs
    /// per message.
    fn authorize_delivery(&self, _client: &ClientInfo, _topic: &str) -> bool {
        true
    }

    /// Called before a message goes to a member of a shared subscription group: false
    /// passes that member over (the group's next member gets it instead). The kernel uses
    /// it so that only registered providers of a method take its calls.
    fn authorize_group_delivery(&self, _client: &ClientInfo, _topic: &str) -> bool {
        true
    }

    /// Told about every delivery the delivery hook allowed: which client got which
    /// message. The kernel uses it to know which replica of a service took a call.
    /// Called on the delivering connection's task: keep it cheap.
    fn observe_delivery(
        &self,
        _client: &ClientInfo,
        _topic: &str,
        _payload: &[u8],
        _correlation: Option<&[u8]>,
    ) {
    }

    /// User properties the edge records on a publish to `topic` by `client` (its identity,
    /// its role): the hook calls `stamp(name, value)` for each; any property of that name
    /// the publisher sent is removed first, so a receiver can trust them (a v3.1.1
    /// publisher gets them too; v3.1.1 subscribers never see properties). Called for every
    /// publish and will: keep it cheap.
    fn stamps(
        &self,
        _client: &ClientInfo,
        _topic: &str,
        _stamp: &mut dyn FnMut(&'static str, &str),
    ) {
    }
}

/// Allows everything: the broker's default policy (the kernel installs its own).
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl Hooks for AllowAll {}
