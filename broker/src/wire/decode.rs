//! Decoding of client packets with rumqttd's v4/v5 codecs, made safe for hostile input.
//!
//! The edge picks the codec per connection from the CONNECT packet's protocol level, so one
//! port serves MQTT 3.1.1 and 5. Each frame handed to a decoder has already passed
//! `frame::check_client_packet`, and the decoder runs under `catch_unwind`: a decoder bug
//! closes one connection instead of taking its task (and its cleanup) down.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::BytesMut;
use rumqttd::protocol::{v4::V4, v5::V5, Packet, Protocol as Codec};

use super::frame::FixedHeader;
use crate::types::{Protocol, QoS};

/// What the protocol name and level of a CONNECT say.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectProtocol {
    Supported(Protocol),
    /// MQTT, but a level we do not speak (3 = MQTT 3.1 "MQIsdp").
    UnsupportedLevel(u8),
    NotMqtt,
}

/// Reads the protocol name and level of a CONNECT frame.
pub fn connect_protocol(frame: &[u8], header: &FixedHeader) -> ConnectProtocol {
    let body = &frame[header.header_len.min(frame.len())..];
    if body.len() < 2 {
        return ConnectProtocol::NotMqtt;
    }
    let name_len = u16::from_be_bytes([body[0], body[1]]) as usize;
    let Some(name) = body.get(2..2 + name_len) else {
        return ConnectProtocol::NotMqtt;
    };
    let Some(&level) = body.get(2 + name_len) else {
        return ConnectProtocol::NotMqtt;
    };
    match (name, level) {
        (b"MQTT", 4) => ConnectProtocol::Supported(Protocol::V311),
        (b"MQTT", 5) => ConnectProtocol::Supported(Protocol::V5),
        (b"MQTT", l) | (b"MQIsdp", l) => ConnectProtocol::UnsupportedLevel(l),
        _ => ConnectProtocol::NotMqtt,
    }
}

/// A frame the codec refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes exactly one complete frame.
pub fn decode(proto: Protocol, mut frame: BytesMut) -> Result<Packet, DecodeError> {
    let result = catch_unwind(AssertUnwindSafe(|| match proto {
        Protocol::V5 => V5.read_mut(&mut frame, usize::MAX),
        _ => V4.read_mut(&mut frame, usize::MAX),
    }));
    match result {
        Ok(Ok(packet)) => Ok(packet),
        Ok(Err(e)) => Err(DecodeError(format!("malformed packet: {e}"))),
        Err(_) => Err(DecodeError("malformed packet (decoder panicked)".into())),
    }
}

/// QoS and packet id of a PUBLISH frame, read from the raw bytes (rumqttd keeps both
/// private in its decoded `Publish`).
pub fn publish_qos_pkid(frame: &[u8], header: &FixedHeader) -> (QoS, u16) {
    let qos = QoS::from_u8((header.byte1 >> 1) & 0b11).unwrap_or(QoS::AtMostOnce);
    if qos == QoS::AtMostOnce {
        return (qos, 0);
    }
    let body = &frame[header.header_len.min(frame.len())..];
    let pkid = body
        .get(0..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .and_then(|topic_len| body.get(2 + topic_len..4 + topic_len))
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .unwrap_or(0);
    (qos, pkid)
}

#[cfg(test)]
mod tests {
    use super::super::frame::parse_header;
    use super::*;

    #[test]
    fn detects_protocol_level() {
        let v4 = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        let h = parse_header(&v4, 1000).unwrap().unwrap();
        assert_eq!(
            connect_protocol(&v4, &h),
            ConnectProtocol::Supported(Protocol::V311)
        );
        let v31 = [
            0x10, 14, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60, 0, 0,
        ];
        let h = parse_header(&v31, 1000).unwrap().unwrap();
        assert_eq!(
            connect_protocol(&v31, &h),
            ConnectProtocol::UnsupportedLevel(3)
        );
        let junk = [0x10, 3, 0, 9, 1];
        let h = parse_header(&junk, 1000).unwrap().unwrap();
        assert_eq!(connect_protocol(&junk, &h), ConnectProtocol::NotMqtt);
    }

    #[test]
    fn peeks_publish_pkid() {
        let p = [0x32, 7, 0, 3, b'a', b'/', b'b', 0x01, 0x02];
        let h = parse_header(&p, 1000).unwrap().unwrap();
        assert_eq!(publish_qos_pkid(&p, &h), (QoS::AtLeastOnce, 0x0102));
    }

    #[test]
    fn random_frames_never_panic() {
        // A small deterministic fuzz: every decoder result is Ok or Err, never a panic
        // escaping `decode`.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let mut bytes = vec![0u8; len + 2];
            let mut s = seed;
            for b in bytes.iter_mut() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                *b = (s >> 33) as u8;
            }
            let types = [0x10u8, 0x30, 0x32, 0x40, 0x50, 0x62, 0x70, 0x82, 0xa2, 0xe0];
            bytes[0] = types[(seed % types.len() as u64) as usize];
            bytes[1] = len as u8;
            for proto in [Protocol::V311, Protocol::V5] {
                let _ = decode(proto, BytesMut::from(&bytes[..]));
            }
        }
    }
}
