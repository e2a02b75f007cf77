//! One network connection's state, shared by the parts of its loop (`run`, `inbound`,
//! `subscribe`), and why a connection ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::endpoint::outbox::Outbox;
use crate::endpoint::Endpoint;
use crate::hooks::ClientInfo;
use crate::sessions::Session;
use crate::state::BrokerState;
use crate::types::{Message, Protocol};
use crate::wire::encode::reason;

/// Why a connection ends.
#[derive(Debug)]
pub(super) enum Close {
    /// DISCONNECT with reason 0: the will is discarded.
    Clean,
    /// DISCONNECT with reason 0x04: publish the will.
    WithWill,
    Eof,
    Io(String),
    KeepAlive,
    /// The client broke the protocol; `code` is the v5 DISCONNECT reason.
    Violation {
        code: u8,
        why: String,
    },
    TakenOver,
    Shutdown,
}

impl Close {
    pub fn violation(code: u8, why: impl Into<String>) -> Close {
        Close::Violation {
            code,
            why: why.into(),
        }
    }

    /// Is this an abnormal end for which the will is published? A takeover is not: the
    /// client is demonstrably alive on its new connection.
    pub fn publishes_will(&self) -> bool {
        !matches!(self, Close::Clean | Close::TakenOver | Close::Shutdown)
    }

    pub fn disconnect_code(&self) -> Option<u8> {
        match self {
            Close::Violation { code, .. } => Some(*code),
            Close::KeepAlive => Some(reason::KEEP_ALIVE_TIMEOUT),
            Close::TakenOver => Some(reason::SESSION_TAKEN_OVER),
            Close::Shutdown => Some(reason::SERVER_SHUTTING_DOWN),
            _ => None,
        }
    }
}

/// Connection state.
pub(super) struct Conn {
    pub st: Arc<BrokerState>,
    pub proto: Protocol,
    pub info: ClientInfo,
    pub session: Arc<Session>,
    pub endpoint: Arc<Endpoint>,
    pub outbox: Arc<Outbox>,
    /// Inbound MQTT 5 topic aliases.
    pub aliases: HashMap<u16, String>,
    /// Inbound QoS 2 publishes received and not yet released (their PUBREL is due).
    pub qos2_in: HashSet<u16>,
    pub refused_logged: bool,
    pub will: Option<Box<Message>>,
    pub will_delay: u32,
}
