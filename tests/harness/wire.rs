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
