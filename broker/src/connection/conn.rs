//! One network connection's state, shared by the halves of its loop (`session`,
//! `inbound`, `outbound`, `subscribe`), and why a connection ends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use rumqttd::local::LinkTx;

use super::outbox::Outbox;
use super::suback::PendingSub;
use crate::gaps::FilterIndex;
use crate::hooks::ClientInfo;
use crate::pressure::PressureFlag;
use crate::state::BrokerState;
use crate::subs::Subscriptions;
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
    RouterGone,
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

/// Connection state shared by the inbound and outbound halves of the loop.
pub(super) struct Conn {
    pub st: Arc<BrokerState>,
    pub proto: Protocol,
    pub info: ClientInfo,
    pub tx: LinkTx,
    pub outbox: Arc<Outbox>,
    pub subs: Subscriptions,
    pub aliases: HashMap<u16, String>,
    pub pending_subacks: HashMap<u16, VecDeque<PendingSub>>,
    /// QoS 2 publishes refused by authorization (v3.1.1): their PUBREL is answered here.
    pub refused_qos2: HashSet<u16>,
    pub filters: FilterIndex,
    pub pressure: PressureFlag,
    pub router_alive: bool,
    pub refused_logged: bool,
    pub will: Option<Message>,
    pub will_delay: u32,
    pub persistent: bool,
}
