//! Deciding whether a CONNECT is accepted: client id, will, authentication hook, session
//! takeover, and the session it gets (a resumed persistent one, or a new one). A refusal
//! gets a CONNACK with the reason code of the client's protocol version before the socket
//! closes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::handshake::ConnectRequest;
use crate::config::ListenerConfig;
use crate::hooks::{ClientInfo, ConnectInfo, ConnectRefusal};
use crate::metrics::Metrics;
use crate::sessions::{Opened, QueueLimits, Session, SessionClaim};
use crate::state::BrokerState;
use crate::topic::validate_topic;
use crate::transport::Stream;
use crate::types::{Message, Protocol};
use crate::wire::encode::{self, reason, ConnAckProps};

/// An accepted connection, ready to run.
pub(crate) struct Admitted {
    pub info: ClientInfo,
    pub claim: SessionClaim,
    pub opened: Opened,
    pub will: Option<Message>,
    pub will_delay: u32,
    /// Keep-alive in force (the client's, or the server's when it imposes one).
    pub keep_alive: u16,
    /// The server's keep-alive, when it overrides the client's (MQTT 5 CONNACK).
    pub server_keep_alive: Option<u16>,
    pub assigned_id: bool,
    pub client_receive_max: Option<u16>,
    pub client_max_packet: Option<u32>,
    pub client_topic_aliases: u16,
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
    stream: &mut Stream,
    req: ConnectRequest,
    peer: SocketAddr,
    listener: &ListenerConfig,
    certified: Option<String>,
) -> Option<Admitted> {
    let proto = req.proto;
    match try_admit(st, req, peer, listener, certified).await {
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

/// The will of a CONNECT, checked like a publish.
fn will_of(
    st: &BrokerState,
    info: &ClientInfo,
    req: &mut ConnectRequest,
) -> Result<(Option<Message>, u32), Refusal> {
    let Some((will, props)) = req.will.take() else {
        return Ok((None, 0));
    };
    let delay = props.as_ref().and_then(|p| p.delay_interval).unwrap_or(0);
    let Some(message) = Message::from_will(will, props) else {
        return Err(Refusal::new(
            reason::v311::NOT_AUTHORIZED,
            reason::TOPIC_NAME_INVALID,
            "will topic is not UTF-8",
        ));
    };
    if let Err(e) = validate_topic(&message.topic, &st.config) {
        return Err(Refusal::new(
            reason::v311::NOT_AUTHORIZED,
            reason::TOPIC_NAME_INVALID,
            format!("will topic: {e}"),
        ));
    }
    if message.payload.len() > st.config.max_packet_size {
        return Err(Refusal::new(
            reason::v311::NOT_AUTHORIZED,
            reason::PACKET_TOO_LARGE,
            "will larger than max_packet_size",
        ));
    }
    if !st.may_publish_message(info, &message) {
        return Err(Refusal::new(
            reason::v311::NOT_AUTHORIZED,
            reason::NOT_AUTHORIZED,
            format!("not authorized to publish the will to {}", message.topic),
        ));
    }
    Ok((Some(message), delay))
}

/// Who a CONNECT says it is.
struct Login {
    username: Option<String>,
    password: Option<String>,
    /// The user name is a verified client certificate's CN.
    certificate: bool,
}

/// The user name and password of a CONNECT; a verified client certificate's CN is the
/// user name (a different user name in the CONNECT is refused).
fn login_of(
    req: &ConnectRequest,
    listener: &ListenerConfig,
    certified: Option<String>,
) -> Result<Login, Refusal> {
    let bad = |why: &'static str| {
        Refusal::new(
            reason::v311::BAD_USERNAME_OR_PASSWORD,
            reason::BAD_USERNAME_OR_PASSWORD,
            why,
        )
    };
    let username = req.login.as_ref().map(|l| l.username.as_str());
    let username = username.filter(|u| !u.is_empty());
    if username.is_some_and(|u| u.contains('\0')) {
        return Err(bad("a user name must not contain NUL"));
    }
    let password = req.login.as_ref().map(|l| l.password.clone());
    if let Some(cn) = certified {
        if username.is_some_and(|u| u != cn) {
            return Err(bad("the user name is not the client certificate's CN"));
        }
        return Ok(Login {
            username: Some(cn),
            password: None,
            certificate: true,
        });
    }
    if username.is_none() && !listener.anonymous_allowed() {
        return Err(Refusal::new(
            reason::v311::NOT_AUTHORIZED,
            reason::NOT_AUTHORIZED,
            "a user name and password are required on this listener (allow_anonymous)",
        ));
    }
    Ok(Login {
        username: username.map(str::to_string),
        password,
        certificate: false,
    })
}

/// The authentication hook. With a password to check (deliberately slow: a KDF) it runs
/// on the blocking pool, so it never holds up the connections this worker thread serves.
async fn authenticate(
    st: &BrokerState,
    client_id: &str,
    login: Login,
    peer: SocketAddr,
    protocol: Protocol,
) -> Result<(), ConnectRefusal> {
    let slow = login.username.is_some() && !login.certificate;
    let check = move |hooks: &dyn crate::hooks::Hooks, client_id: &str| {
        hooks.authenticate(&ConnectInfo {
            client_id,
            username: login.username.as_deref(),
            password: login.password.as_deref(),
            certificate: login.certificate,
            peer: Some(peer),
            protocol,
        })
    };
    if !slow {
        return check(st.hooks.as_ref(), client_id);
    }
    let hooks = st.hooks.clone();
    let client_id = client_id.to_string();
    tokio::task::spawn_blocking(move || check(hooks.as_ref(), &client_id))
        .await
        .unwrap_or(Err(ConnectRefusal::NotAuthorized))
}

async fn try_admit(
    st: &BrokerState,
    mut req: ConnectRequest,
    peer: SocketAddr,
    listener: &ListenerConfig,
    certified: Option<String>,
) -> Result<Admitted, Refusal> {
    let proto = req.proto;
    let props = req.properties.take();
    // MQTT 5: a session outlives the connection only with a session expiry interval;
    // MQTT 3.1.1: a session without clean-session does, for `session_expiry_secs`.
    let v5_expiry = props
        .as_ref()
        .and_then(|p| p.session_expiry_interval)
        .unwrap_or(0);
    let expiry_secs = match proto {
        Protocol::V5 => v5_expiry.min(st.config.max_session_expiry_secs),
        _ if req.clean_start => 0,
        _ => st.config.session_expiry_secs,
    };
    let persistent = expiry_secs > 0;
    let mut client_id = std::mem::take(&mut req.client_id);
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
    if client_id.contains('\0') {
        return Err(Refusal::new(
            reason::v311::IDENTIFIER_REJECTED,
            reason::CLIENT_ID_NOT_VALID,
            "a client id must not contain NUL",
        ));
    }
    let login = login_of(&req, listener, certified)?;
    let username = login.username.clone();
    let verdict = authenticate(st, &client_id, login, peer, proto).await;
    match verdict {
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
    let anonymous_role = match username {
        None => listener.anonymous_role.clone(),
        Some(_) => None,
    };
    let info = ClientInfo {
        client_id: client_id.clone(),
        username,
        anonymous_role,
        peer: Some(peer),
        protocol: proto,
    };
    let (will, will_delay) = will_of(st, &info, &mut req)?;
    let key = info.session_key();
    let (claim, took_over) = st.sessions.claim(&key).await;
    if took_over {
        Metrics::inc(&st.metrics.takeovers);
        tracing::info!(client_id, %peer, "session taken over by a new connection");
    }
    st.sessions.cancel_delayed_will(&key);
    let limits = QueueLimits {
        messages: st.config.max_queued_messages,
        bytes: st.config.max_queued_bytes,
    };
    let opened = st.sessions.open(&key, req.clean_start, || {
        Session::new(
            st.next_session_id(),
            info.clone(),
            persistent,
            Duration::from_secs(u64::from(expiry_secs)),
            limits,
        )
    });
    if let Some(old) = &opened.replaced {
        st.end_session(old);
    }
    if opened.resumed {
        let mut state = opened.session.lock();
        state.persistent = persistent;
        state.expiry = Duration::from_secs(u64::from(expiry_secs));
    }
    let server_keep_alive = st
        .config
        .max_keep_alive_secs
        .filter(|max| req.keep_alive == 0 || req.keep_alive > *max);
    Ok(Admitted {
        info,
        claim,
        opened,
        will,
        will_delay,
        keep_alive: server_keep_alive.unwrap_or(req.keep_alive),
        server_keep_alive: server_keep_alive.filter(|_| proto == Protocol::V5),
        assigned_id,
        client_receive_max: props.as_ref().and_then(|p| p.receive_maximum),
        client_max_packet: props.as_ref().and_then(|p| p.max_packet_size),
        client_topic_aliases: props.as_ref().and_then(|p| p.topic_alias_max).unwrap_or(0),
    })
}
