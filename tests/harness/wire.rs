//! A raw TCP MQTT client and packet builders, for hostile-input tests.

use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};
use hcore_broker::wire::encode::put_varint;
use hcore_broker::wire::frame::parse_header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

pub struct Wire {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Wire {
    pub async fn connect(addr: SocketAddr) -> Wire {
        Wire::from_stream(TcpStream::connect(addr).await.unwrap())
    }

    pub fn from_stream(stream: TcpStream) -> Wire {
        let _ = stream.set_nodelay(true);
        Wire {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Next packet as (first byte, body), or None on EOF / timeout.
    pub async fn read_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(h)) = parse_header(&self.buf, usize::MAX) {
                if self.buf.len() >= h.frame_len() {
                    let frame = self.buf.split_to(h.frame_len());
                    return Some((h.byte1, frame[h.header_len..].to_vec()));
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// True if the server closes the connection (EOF or reset) before the timeout,
    /// ignoring anything it sends first.
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut scratch = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn put_str(b: &mut BytesMut, s: &[u8]) {
    b.put_u16(s.len() as u16);
    b.put_slice(s);
}

fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(byte1);
    put_varint(&mut b, body.len());
    b.put_slice(body);
    b.to_vec()
}

/// CONNECT for MQTT 3.1.1 (level 4) or 5.
pub fn connect_packet(level: u8, client_id: &str, keep_alive: u16, clean: bool) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, b"MQTT");
    body.put_u8(level);
    body.put_u8(if clean { 0x02 } else { 0 });
    body.put_u16(keep_alive);
    if level == 5 {
        body.put_u8(0);
    }
    put_str(&mut body, client_id.as_bytes());
    packet(0x10, &body)
}

/// CONNECT (3.1.1) with a will.
pub fn connect_with_will(
    client_id: &str,
    keep_alive: u16,
    topic: &str,
    payload: &[u8],
    retain: bool,
) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, b"MQTT");
    body.put_u8(4);
    body.put_u8(0x02 | 0x04 | if retain { 0x20 } else { 0 });
    body.put_u16(keep_alive);
    put_str(&mut body, client_id.as_bytes());
    put_str(&mut body, topic.as_bytes());
    put_str(&mut body, payload);
    packet(0x10, &body)
}

pub fn publish_packet(topic: &[u8], payload: &[u8], qos: u8, pkid: u16, retain: bool) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, topic);
    if qos > 0 {
        body.put_u16(pkid);
    }
    body.put_slice(payload);
    packet(0x30 | (qos << 1) | retain as u8, &body)
}

pub fn subscribe_packet(pkid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_u16(pkid);
    put_str(&mut body, filter.as_bytes());
    body.put_u8(qos);
    packet(0x82, &body)
}

pub const PINGREQ: [u8; 2] = [0xc0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// A raw v3.1.1 client that is connected (CONNACK 0 received).
pub async fn raw_connected(addr: SocketAddr, client_id: &str, keep_alive: u16) -> Wire {
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_packet(4, client_id, keep_alive, true))
        .await;
    let (b1, body) = raw.read_packet().await.expect("CONNACK");
    assert_eq!(b1, 0x20);
    assert_eq!(body, vec![0, 0]);
    raw
}

/// CONNECT with user name and password.
pub fn connect_login(level: u8, client_id: &str, user: &str, pass: &str) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, b"MQTT");
    body.put_u8(level);
    body.put_u8(0x02 | 0x80 | 0x40);
    body.put_u16(30);
    if level == 5 {
        body.put_u8(0);
    }
    put_str(&mut body, client_id.as_bytes());
    put_str(&mut body, user.as_bytes());
    put_str(&mut body, pass.as_bytes());
    packet(0x10, &body)
}

/// Any packet from raw parts (for hostile tests).
pub fn raw_packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    packet(byte1, body)
}

/// CONNECT for MQTT 5 with encoded properties (`props`, without their length) and an
/// optional QoS 0, non-retained will without properties.
pub fn connect_v5(
    client_id: &str,
    keep_alive: u16,
    props: &[u8],
    will: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, b"MQTT");
    body.put_u8(5);
    body.put_u8(0x02 | if will.is_some() { 0x04 } else { 0 });
    body.put_u16(keep_alive);
    put_varint(&mut body, props.len());
    body.put_slice(props);
    put_str(&mut body, client_id.as_bytes());
    if let Some((topic, payload)) = will {
        body.put_u8(0);
        put_str(&mut body, topic.as_bytes());
        put_str(&mut body, payload);
    }
    packet(0x10, &body)
}

/// PUBLISH for MQTT 5 with encoded properties (`props`, without their length).
pub fn publish_v5(topic: &str, payload: &[u8], qos: u8, pkid: u16, props: &[u8]) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, topic.as_bytes());
    if qos > 0 {
        body.put_u16(pkid);
    }
    put_varint(&mut body, props.len());
    body.put_slice(props);
    body.put_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

/// The properties of an MQTT 5 CONNACK body (after flags and reason code).
pub fn connack_properties(body: &[u8]) -> Vec<(u8, PropertyValue)> {
    properties(&body[2..]).0
}

/// A QoS 0 MQTT 5 PUBLISH body: (topic, properties, payload).
pub fn split_publish_v5(body: &[u8]) -> (String, Vec<(u8, PropertyValue)>, Vec<u8>) {
    let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8(body[2..2 + len].to_vec()).unwrap();
    let (props, used) = properties(&body[2 + len..]);
    (topic, props, body[2 + len + used..].to_vec())
}

/// One decoded MQTT 5 property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    Int(u32),
    Bytes(Vec<u8>),
    Pair(Vec<u8>, Vec<u8>),
}

impl PropertyValue {
    pub fn int(&self) -> u32 {
        match self {
            PropertyValue::Int(v) => *v,
            other => panic!("not a number: {other:?}"),
        }
    }
}

/// First value of property `id`, if present.
pub fn property(props: &[(u8, PropertyValue)], id: u8) -> Option<PropertyValue> {
    props.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone())
}

fn varint(b: &[u8]) -> (u32, usize) {
    let (mut v, mut shift) = (0u32, 0);
    for (i, byte) in b.iter().enumerate() {
        v |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
        shift += 7;
    }
    panic!("truncated variable byte integer");
}

/// Properties (length-prefixed) at the start of `b`, and the bytes they took.
fn properties(b: &[u8]) -> (Vec<(u8, PropertyValue)>, usize) {
    let (len, n) = varint(b);
    let (mut rest, mut out) = (&b[n..n + len as usize], Vec::new());
    let take_bin = |r: &mut &[u8]| {
        let l = usize::from(u16::from_be_bytes([r[0], r[1]]));
        let v = r[2..2 + l].to_vec();
        *r = &r[2 + l..];
        v
    };
    while let Some((&id, r)) = rest.split_first() {
        rest = r;
        let value = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28..=0x2a => {
                let v = rest[0];
                rest = &rest[1..];
                PropertyValue::Int(v.into())
            }
            0x13 | 0x21 | 0x22 | 0x23 => {
                let v = u16::from_be_bytes([rest[0], rest[1]]);
                rest = &rest[2..];
                PropertyValue::Int(v.into())
            }
            0x02 | 0x11 | 0x18 | 0x27 => {
                let v = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                rest = &rest[4..];
                PropertyValue::Int(v)
            }
            0x0b => {
                let (v, n) = varint(rest);
                rest = &rest[n..];
                PropertyValue::Int(v)
            }
            0x26 => {
                let k = take_bin(&mut rest);
                PropertyValue::Pair(k, take_bin(&mut rest))
            }
            _ => PropertyValue::Bytes(take_bin(&mut rest)),
        };
        out.push((id, value));
    }
    (out, n + len as usize)
}

/// The same CONNECT with clean start / clean session off (a persistent session).
pub fn without_clean_start(mut connect: Vec<u8>) -> Vec<u8> {
    // Fixed header: type byte and a remaining length of 1-4 bytes; then the protocol
    // name (6 bytes) and level (1 byte) before the flags.
    let len_bytes = connect[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    connect[1 + len_bytes + 7] &= !0x02;
    connect
}
