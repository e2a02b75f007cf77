//! Reading a connection's first packet: it must be a CONNECT, complete within the connect
//! timeout, no larger than `max_packet_size`, with a protocol level we speak. The level
//! picks the codec (3.1.1 or 5) for the rest of the connection.

use std::net::SocketAddr;
use std::time::Duration;

use crate::transport::Stream;
use bytes::BytesMut;
use rumqttd::protocol::{ConnectProperties, LastWill, LastWillProperties, Login, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::metrics::Metrics;
use crate::state::BrokerState;
use crate::types::Protocol;
use crate::wire::decode::{self, ConnectProtocol};
use crate::wire::encode::{self, reason, ConnAckProps};
use crate::wire::frame::{self, packet_type};

/// A decoded CONNECT.
pub(crate) struct ConnectRequest {
    pub proto: Protocol,
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub properties: Option<ConnectProperties>,
    pub will: Option<(LastWill, Option<LastWillProperties>)>,
    pub login: Option<Login>,
}

/// Reads the CONNECT. On failure the reason is logged, a CONNACK is sent where the spec
/// allows one, and `None` is returned: the caller just drops the socket.
pub(crate) async fn read_connect(
    st: &BrokerState,
    stream: &mut Stream,
    buf: &mut BytesMut,
    peer: SocketAddr,
) -> Option<ConnectRequest> {
    let timeout = Duration::from_millis(st.config.connect_timeout_ms);
    let deadline = tokio::time::Instant::now() + timeout;
    let max = st.config.max_packet_size;
    let header = loop {
        match frame::parse_header(buf, max) {
            Ok(Some(h)) if buf.len() >= h.frame_len() => break h,
            Ok(Some(h)) if h.packet_type() != packet_type::CONNECT => break h,
            Ok(_) => {}
            Err(e) => {
                refuse(st, peer, &format!("first packet: {e}"));
                return None;
            }
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Err(_) => {
                refuse(
                    st,
                    peer,
                    &format!("no complete CONNECT within {} ms", timeout.as_millis()),
                );
                return None;
            }
            Ok(Ok(0)) if buf.is_empty() => {
                Metrics::inc(&st.metrics.connections_refused);
                tracing::debug!(%peer, "connection closed before sending anything");
                return None;
            }
            Ok(Ok(0)) => {
                refuse(st, peer, "connection closed in the middle of CONNECT");
                return None;
            }
            Ok(Err(e)) => {
                refuse(st, peer, &format!("read error before CONNECT: {e}"));
                return None;
            }
            Ok(Ok(_)) => {}
        }
    };
    if header.packet_type() != packet_type::CONNECT {
        refuse(
            st,
            peer,
            &format!("first packet is type {}, not CONNECT", header.packet_type()),
        );
        return None;
    }
    if let Err(e) = frame::check_client_packet(&header) {
        refuse(st, peer, &format!("CONNECT: {e}"));
        return None;
    }
    let proto = match decode::connect_protocol(&buf[..header.frame_len()], &header) {
        ConnectProtocol::Supported(p) => p,
        ConnectProtocol::UnsupportedLevel(level) => {
            refuse(
                st,
                peer,
                &format!("unsupported MQTT protocol level {level}"),
            );
            let mut out = BytesMut::new();
            encode::connack(
                Protocol::V311,
                false,
                reason::v311::UNACCEPTABLE_PROTOCOL_VERSION,
                &ConnAckProps::default(),
                &mut out,
            );
            let _ = stream.write_all(&out).await;
            return None;
        }
        ConnectProtocol::NotMqtt => {
            refuse(st, peer, "CONNECT does not name the MQTT protocol");
            return None;
        }
    };
    let frame = buf.split_to(header.frame_len());
    match decode::decode(proto, frame) {
        Ok(Packet::Connect(connect, properties, will, will_props, login)) => Some(ConnectRequest {
            proto,
            client_id: connect.client_id,
            clean_start: connect.clean_session,
            keep_alive: connect.keep_alive,
            properties,
            will: will.map(|w| (w, will_props)),
            login,
        }),
        Ok(_) => {
            refuse(st, peer, "CONNECT decoded as another packet");
            None
        }
        Err(e) => {
            refuse(st, peer, &format!("CONNECT: {e}"));
            if proto == Protocol::V5 {
                let mut out = BytesMut::new();
                let props = ConnAckProps {
                    reason_string: Some("malformed CONNECT"),
                    ..Default::default()
                };
                encode::connack(proto, false, reason::MALFORMED_PACKET, &props, &mut out);
                let _ = stream.write_all(&out).await;
            }
            None
        }
    }
}

fn refuse(st: &BrokerState, peer: SocketAddr, why: &str) {
    Metrics::inc(&st.metrics.connections_refused);
    tracing::info!(%peer, "closing connection: {why}");
}
