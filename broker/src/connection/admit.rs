//! Deciding whether a CONNECT is accepted: client id, will, authentication hook, session
//! takeover, and the router link. A refusal gets a CONNACK with the reason code of the
//! client's protocol version before the socket closes.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::handshake::ConnectRequest;
use crate::hooks::{ClientInfo, ConnectInfo, ConnectRefusal};
use crate::metrics::Metrics;
use crate::router::Link;
use crate::sessions::{router_id, SessionClaim};
use crate::state::BrokerState;
use crate::topic::validate_topic;
use crate::types::{Message, Protocol};
use crate::wire::encode::{self, reason, ConnAckProps};

/// An accepted connection, ready to run.
pub(crate) struct Admitted {
    pub info: ClientInfo,
    pub claim: SessionClaim,
    pub link: Link,
    pub will: Option<Message>,
    pub will_delay: u32,
    pub keep_alive: u16,
    pub persistent: bool,
    pub assigned_id: bool,
    pub client_receive_max: Option<u16>,
    pub client_max_packet: Option<u32>,
}

/// Why a CONNECT is refused, with the CONNACK codes for both protocol versions.
struct Refusal {
    v311: u8,
    v5: u8,
    why: String,
}

impl Refusal {
    fn new(v311: u8, v5: u8, why: impl Into<String>) -> Refusal {
        Refusal {
            v311,
            v5,
            why: why.into(),
        }
    }
}

/// Admits the connection or refuses it (CONNACK sent, `None` returned).
pub(crate) async fn admit(
    st: &BrokerState,
    stream: &mut TcpStream,
    req: ConnectRequest,
    peer: SocketAddr,
) -> Option<Admitted> {
    let proto = req.proto;
    match try_admit(st, req, peer).await {
        Ok(admitted) => Some(admitted),
        Err(refusal) => {
            Metrics::inc(&st.metrics.connections_refused);
            tracing::info!(%peer, %proto, "refusing CONNECT: {}", refusal.why);
            let mut out = BytesMut::new();
            let code = if proto == Protocol::V5 {
                refusal.v5
            } else {
                refusal.v311
            };
            let props = ConnAckProps {
                reason_string: Some(&refusal.why),
                ..Default::default()
            };
            encode::connack(proto, false, code, &props, &mut out);
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            None
        }
    }
}

async fn try_admit(
    st: &BrokerState,
    req: ConnectRequest,
    peer: SocketAddr,
) -> Result<Admitted, Refusal> {
    let proto = req.proto;
    let v5_expiry = req
        .properties
        .as_ref()
        .and_then(|p| p.session_expiry_interval)
        .unwrap_or(0);
    // MQTT 5: a session outlives the connection only with a session expiry interval.
    let persistent = match proto {
        Protocol::V5 => v5_expiry > 0,
        _ => !req.clean_start,
    };
    let mut client_id = req.client_id;
    let assigned_id = client_id.is_empty();
    if assigned_id {
        if proto != Protocol::V5 && !req.clean_start {
            return Err(Refusal::new(
                reason::v311::IDENTIFIER_REJECTED,
                reason::CLIENT_ID_NOT_VALID,
                "an empty client id needs clean session",
            ));
        }
        client_id = format!("auto-{}", uuid::Uuid::new_v4().simple());
    }
    let username = req.login.as_ref().map(|l| l.username.as_str());
    let password = req.login.as_ref().map(|l| l.password.as_str());
    let connect = ConnectInfo {
        client_id: &client_id,
        username: username.filter(|u| !u.is_empty()),
        password,
        peer: Some(peer),
        protocol: proto,
    };
    match st.hooks.authenticate(&connect) {
        Ok(()) => {}
        Err(ConnectRefusal::BadCredentials) => {
            return Err(Refusal::new(
                reason::v311::BAD_USERNAME_OR_PASSWORD,
                reason::BAD_USERNAME_OR_PASSWORD,
                "bad user name or password",
            ))
        }
        Err(ConnectRefusal::NotAuthorized) => {
            return Err(Refusal::new(
                reason::v311::NOT_AUTHORIZED,
                reason::NOT_AUTHORIZED,
                "not authorized",
            ))
        }
    }
    let info = ClientInfo {
        client_id: client_id.clone(),
        username: connect.username.map(str::to_string),
        peer: Some(peer),
        protocol: proto,
    };
    let (will, will_delay) = match req.will {
        Some((will, props)) => {
            let delay = props.as_ref().and_then(|p| p.delay_interval).unwrap_or(0);
            let Some(message) = Message::from_will(will, props) else {
                return Err(Refusal::new(
                    reason::v311::NOT_AUTHORIZED,
                    reason::TOPIC_NAME_INVALID,
                    "will topic is not UTF-8",
                ));
            };
            if let Err(e) = validate_topic(&message.topic) {
                return Err(Refusal::new(
                    reason::v311::NOT_AUTHORIZED,
                    reason::TOPIC_NAME_INVALID,
                    format!("will topic: {e}"),
                ));
            }
            if message.topic.starts_with('$') || !st.hooks.authorize_publish(&info, &message.topic)
            {
                return Err(Refusal::new(
                    reason::v311::NOT_AUTHORIZED,
                    reason::NOT_AUTHORIZED,
                    format!("not authorized to publish the will to {}", message.topic),
                ));
            }
            (Some(message), delay)
        }
        None => (None, 0),
    };
    let (claim, took_over) = st.sessions.claim(&client_id).await;
    if took_over {
        Metrics::inc(&st.metrics.takeovers);
        tracing::info!(client_id, %peer, "session taken over by a new connection");
    }
    st.sessions.cancel_delayed_will(&client_id);
    let rid = router_id(&client_id);
    if req.clean_start && persistent {
        // MQTT 5 clean start with a session expiry: discard the old session, then keep
        // the new one. The router only knows "clean" or "persistent", so purge first.
        if let Ok(mut purge) = st.router.link(rid.clone(), true).await {
            let disconnect = rumqttd::protocol::Packet::Disconnect(
                rumqttd::protocol::Disconnect {
                    reason_code: rumqttd::protocol::DisconnectReasonCode::NormalDisconnection,
                },
                None,
            );
            let _ = st.router.push(&mut purge.tx, vec![disconnect]);
        }
    }
    let link = match st.router.link(rid, !persistent).await {
        Ok(link) => link,
        Err(e) => {
            st.sessions.release(&claim);
            return Err(Refusal::new(
                reason::v311::SERVER_UNAVAILABLE,
                reason::SERVER_UNAVAILABLE,
                format!("router has no room for this connection ({e})"),
            ));
        }
    };
    let props = req.properties.as_ref();
    Ok(Admitted {
        info,
        claim,
        link,
        will,
        will_delay,
        keep_alive: req.keep_alive,
        persistent,
        assigned_id,
        client_receive_max: props.and_then(|p| p.receive_maximum),
        client_max_packet: props.and_then(|p| p.max_packet_size),
    })
}
