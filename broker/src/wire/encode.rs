//! Encoding of every packet the edge sends, for MQTT 3.1.1 and 5.
//!
//! The edge writes its own packets instead of using rumqttd's encoders: those reach
//! `unreachable!()` for a v3.1.1 packet that carries properties and for v3.1.1 CONNACK
//! codes outside 0..5. Here a v3.1.1 client simply never gets properties. The one packet
//! still encoded by rumqttd is a PUBLISH forwarded by the router (its QoS and packet id are
//! private to rumqttd); see `connection::outbound`.

use bytes::{BufMut, BytesMut};

use crate::types::{Properties, Protocol, QoS};

/// MQTT 5 reason codes used by the edge (and, where they coincide, 3.1.1 return codes).
pub mod reason {
    pub const SUCCESS: u8 = 0x00;
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    pub const MALFORMED_PACKET: u8 = 0x81;
    pub const PROTOCOL_ERROR: u8 = 0x82;
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    pub const CLIENT_ID_NOT_VALID: u8 = 0x85;
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
    pub const NOT_AUTHORIZED: u8 = 0x87;
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    pub const SERVER_BUSY: u8 = 0x89;
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8b;
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8d;
    pub const SESSION_TAKEN_OVER: u8 = 0x8e;
    pub const TOPIC_FILTER_INVALID: u8 = 0x8f;
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    pub const PACKET_ID_NOT_FOUND: u8 = 0x92;
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    pub const QUOTA_EXCEEDED: u8 = 0x97;

    /// MQTT 3.1.1 CONNACK return codes.
    pub mod v311 {
        pub const UNACCEPTABLE_PROTOCOL_VERSION: u8 = 0x01;
        pub const IDENTIFIER_REJECTED: u8 = 0x02;
        pub const SERVER_UNAVAILABLE: u8 = 0x03;
        pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x04;
        pub const NOT_AUTHORIZED: u8 = 0x05;
    }

    /// MQTT 3.1.1 SUBACK failure code.
    pub const V311_SUBSCRIBE_FAILURE: u8 = 0x80;
}

mod prop {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0b;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const REASON_STRING: u8 = 0x1f;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
}

/// Writes a variable byte integer (MQTT's remaining length and property lengths).
pub fn put_varint(out: &mut BytesMut, mut v: usize) {
    loop {
        let mut byte = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if v == 0 {
            break;
        }
    }
}

fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_str(out: &mut BytesMut, s: &[u8]) {
    out.put_u16(s.len() as u16);
    out.put_slice(s);
}

/// Property bytes, built before the packet so their length is known.
#[derive(Default)]
struct PropBuf(BytesMut);

impl PropBuf {
    fn byte(&mut self, id: u8, v: u8) {
        self.0.put_u8(id);
        self.0.put_u8(v);
    }
    fn u16(&mut self, id: u8, v: u16) {
        self.0.put_u8(id);
        self.0.put_u16(v);
    }
    fn u32(&mut self, id: u8, v: u32) {
        self.0.put_u8(id);
        self.0.put_u32(v);
    }
    fn bin(&mut self, id: u8, v: &[u8]) {
        self.0.put_u8(id);
        put_str(&mut self.0, v);
    }
    fn pair(&mut self, k: &str, v: &str) {
        self.0.put_u8(prop::USER_PROPERTY);
        put_str(&mut self.0, k.as_bytes());
        put_str(&mut self.0, v.as_bytes());
    }
    fn varint(&mut self, id: u8, v: usize) {
        self.0.put_u8(id);
        put_varint(&mut self.0, v);
    }
    fn len_with_prefix(&self) -> usize {
        varint_len(self.0.len()) + self.0.len()
    }
    fn write(&self, out: &mut BytesMut) {
        put_varint(out, self.0.len());
        out.put_slice(&self.0);
    }
}

/// What the edge advertises in a v5 CONNACK.
#[derive(Debug, Default, Clone)]
pub struct ConnAckProps<'a> {
    pub assigned_client_id: Option<&'a str>,
    pub receive_maximum: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    pub topic_alias_maximum: Option<u16>,
    /// The keep-alive the server imposes (when it overrides the client's).
    pub server_keep_alive: Option<u16>,
    pub reason_string: Option<&'a str>,
}

/// CONNACK. `code` is a v5 reason code or a v3.1.1 return code, matching `proto`.
pub fn connack(
    proto: Protocol,
    session_present: bool,
    code: u8,
    props: &ConnAckProps<'_>,
    out: &mut BytesMut,
) {
    out.put_u8(0x20);
    if proto != Protocol::V5 {
        out.put_u8(2);
        out.put_u8(session_present as u8);
        out.put_u8(code);
        return;
    }
    let mut p = PropBuf::default();
    if let Some(id) = props.assigned_client_id {
        p.bin(prop::ASSIGNED_CLIENT_IDENTIFIER, id.as_bytes());
    }
    if let Some(v) = props.receive_maximum {
        p.u16(prop::RECEIVE_MAXIMUM, v);
    }
    if let Some(v) = props.maximum_packet_size {
        p.u32(prop::MAXIMUM_PACKET_SIZE, v);
    }
    if let Some(v) = props.topic_alias_maximum {
        p.u16(prop::TOPIC_ALIAS_MAXIMUM, v);
    }
    if let Some(v) = props.server_keep_alive {
        p.u16(prop::SERVER_KEEP_ALIVE, v);
    }
    if let Some(s) = props.reason_string {
        p.bin(prop::REASON_STRING, s.as_bytes());
    }
    put_varint(out, 2 + p.len_with_prefix());
    out.put_u8(session_present as u8);
    out.put_u8(code);
    p.write(out);
}

/// The four QoS acknowledgement packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP. v3.1.1 ignores `reason`.
pub fn ack(proto: Protocol, kind: AckKind, pkid: u16, reason: u8, out: &mut BytesMut) {
    let byte1 = match kind {
        AckKind::PubAck => 0x40,
        AckKind::PubRec => 0x50,
        AckKind::PubRel => 0x62,
        AckKind::PubComp => 0x70,
    };
    out.put_u8(byte1);
    if proto == Protocol::V5 && reason != reason::SUCCESS {
        out.put_u8(3);
        out.put_u16(pkid);
        out.put_u8(reason);
    } else {
        out.put_u8(2);
        out.put_u16(pkid);
    }
}

/// SUBACK with one code per requested filter.
pub fn suback(proto: Protocol, pkid: u16, codes: &[u8], out: &mut BytesMut) {
    out.put_u8(0x90);
    let props = usize::from(proto == Protocol::V5);
    put_varint(out, 2 + props + codes.len());
    out.put_u16(pkid);
    if props == 1 {
        out.put_u8(0);
    }
    out.put_slice(codes);
}

/// UNSUBACK; v3.1.1 carries no codes.
pub fn unsuback(proto: Protocol, pkid: u16, codes: &[u8], out: &mut BytesMut) {
    out.put_u8(0xb0);
    if proto != Protocol::V5 {
        out.put_u8(2);
        out.put_u16(pkid);
        return;
    }
    put_varint(out, 3 + codes.len());
    out.put_u16(pkid);
    out.put_u8(0);
    out.put_slice(codes);
}

pub fn pingresp(out: &mut BytesMut) {
    out.put_slice(&[0xd0, 0x00]);
}

/// v5 DISCONNECT from the server. MQTT 3.1.1 has no server DISCONNECT; nothing is written.
pub fn disconnect(proto: Protocol, code: u8, reason_string: Option<&str>, out: &mut BytesMut) {
    if proto != Protocol::V5 {
        return;
    }
    let mut p = PropBuf::default();
    if let Some(s) = reason_string {
        p.bin(prop::REASON_STRING, s.as_bytes());
    }
    out.put_u8(0xe0);
    put_varint(out, 1 + p.len_with_prefix());
    out.put_u8(code);
    p.write(out);
}

/// A PUBLISH the edge builds itself (retained messages, shared-subscription deliveries,
/// wills are routed, not encoded here).
pub struct OutPublish<'a> {
    pub topic: &'a [u8],
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
    pub pkid: u16,
    pub properties: Option<&'a Properties>,
    /// Replaces the message expiry interval (remaining lifetime of a stored message).
    pub expiry_override: Option<u32>,
    pub subscription_ids: &'a [usize],
    /// MQTT 5 topic alias (with an empty `topic` once the client knows it).
    pub topic_alias: Option<u16>,
}

pub fn publish(proto: Protocol, p: &OutPublish<'_>, out: &mut BytesMut) {
    let mut byte1 = 0x30 | ((p.qos as u8) << 1);
    if p.retain {
        byte1 |= 1;
    }
    if p.dup {
        byte1 |= 0x08;
    }
    let mut props = PropBuf::default();
    if proto == Protocol::V5 {
        if let Some(pr) = p.properties {
            if let Some(v) = pr.payload_format_indicator {
                props.byte(prop::PAYLOAD_FORMAT_INDICATOR, v);
            }
            if let Some(v) = p.expiry_override.or(pr.message_expiry_interval) {
                props.u32(prop::MESSAGE_EXPIRY_INTERVAL, v);
            }
            if let Some(v) = &pr.content_type {
                props.bin(prop::CONTENT_TYPE, v.as_bytes());
            }
            if let Some(v) = &pr.response_topic {
                props.bin(prop::RESPONSE_TOPIC, v.as_bytes());
            }
            if let Some(v) = &pr.correlation_data {
                props.bin(prop::CORRELATION_DATA, v);
            }
            for (k, v) in &pr.user_properties {
                props.pair(k, v);
            }
        }
        for id in p.subscription_ids {
            props.varint(prop::SUBSCRIPTION_IDENTIFIER, *id);
        }
        if let Some(alias) = p.topic_alias {
            props.u16(prop::TOPIC_ALIAS, alias);
        }
    }
    let pkid_len = if p.qos == QoS::AtMostOnce { 0 } else { 2 };
    let props_len = if proto == Protocol::V5 {
        props.len_with_prefix()
    } else {
        0
    };
    let remaining = 2 + p.topic.len() + pkid_len + props_len + p.payload.len();
    out.reserve(5 + remaining);
    out.put_u8(byte1);
    put_varint(out, remaining);
    put_str(out, p.topic);
    if pkid_len > 0 {
        out.put_u16(p.pkid);
    }
    if proto == Protocol::V5 {
        props.write(out);
    }
    out.put_slice(p.payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v311_connack_has_no_properties() {
        let mut b = BytesMut::new();
        connack(Protocol::V311, false, 5, &ConnAckProps::default(), &mut b);
        assert_eq!(&b[..], &[0x20, 2, 0, 5]);
    }

    #[test]
    fn v5_connack_with_properties() {
        let mut b = BytesMut::new();
        let props = ConnAckProps {
            receive_maximum: Some(10),
            ..Default::default()
        };
        connack(Protocol::V5, true, 0, &props, &mut b);
        assert_eq!(&b[..], &[0x20, 6, 1, 0, 3, 0x21, 0, 10]);
    }

    #[test]
    fn acks_and_subacks() {
        let mut b = BytesMut::new();
        ack(
            Protocol::V5,
            AckKind::PubAck,
            7,
            reason::NOT_AUTHORIZED,
            &mut b,
        );
        assert_eq!(&b[..], &[0x40, 3, 0, 7, 0x87]);
        b.clear();
        ack(
            Protocol::V311,
            AckKind::PubRel,
            7,
            reason::NOT_AUTHORIZED,
            &mut b,
        );
        assert_eq!(&b[..], &[0x62, 2, 0, 7]);
        b.clear();
        suback(Protocol::V311, 1, &[0, 0x80], &mut b);
        assert_eq!(&b[..], &[0x90, 4, 0, 1, 0, 0x80]);
        b.clear();
        suback(Protocol::V5, 1, &[1], &mut b);
        assert_eq!(&b[..], &[0x90, 4, 0, 1, 0, 1]);
    }

    #[test]
    fn publish_drops_properties_for_v311() {
        let props = Properties {
            response_topic: Some("r".into()),
            ..Default::default()
        };
        let p = OutPublish {
            topic: b"a/b",
            payload: b"hi",
            qos: QoS::AtLeastOnce,
            retain: true,
            dup: false,
            pkid: 300,
            properties: Some(&props),
            expiry_override: None,
            subscription_ids: &[],
            topic_alias: None,
        };
        let mut b = BytesMut::new();
        publish(Protocol::V311, &p, &mut b);
        assert_eq!(
            &b[..],
            &[0x33, 9, 0, 3, b'a', b'/', b'b', 1, 44, b'h', b'i']
        );
        b.clear();
        publish(Protocol::V5, &p, &mut b);
        assert_eq!(
            &b[..],
            &[0x33, 14, 0, 3, b'a', b'/', b'b', 1, 44, 4, 0x08, 0, 1, b'r', b'h', b'i']
        );
    }
}
