//! A minimal MQTT 3.1.1 client for the benchmark: raw tokio sockets with TCP_NODELAY, no
//! channels or tasks in the path, so the numbers measure the broker rather than a client
//! library.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hcore_broker::wire::encode::put_varint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub struct Reader {
    rd: OwnedReadHalf,
    buf: BytesMut,
}

pub struct Writer {
    wr: OwnedWriteHalf,
}

/// A received packet: first byte and body.
pub struct Packet {
    pub byte1: u8,
    pub body: Bytes,
}

impl Packet {
    pub fn kind(&self) -> u8 {
        self.byte1 >> 4
    }

    pub fn qos(&self) -> u8 {
        (self.byte1 >> 1) & 3
    }

    /// (pkid, payload) of a PUBLISH.
    pub fn publish_parts(&self) -> (u16, Bytes) {
        let mut b = self.body.clone();
        let tlen = b.get_u16() as usize;
        b.advance(tlen);
        let pkid = if self.qos() > 0 { b.get_u16() } else { 0 };
        (pkid, b)
    }
}

pub fn publish(out: &mut BytesMut, topic: &str, payload: &[u8], qos: u8, pkid: u16) {
    let len = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + payload.len();
    out.put_u8(0x30 | (qos << 1));
    put_varint(out, len);
    out.put_u16(topic.len() as u16);
    out.put_slice(topic.as_bytes());
    if qos > 0 {
        out.put_u16(pkid);
    }
    out.put_slice(payload);
}

pub fn puback(out: &mut BytesMut, pkid: u16) {
    out.put_slice(&[0x40, 2]);
    out.put_u16(pkid);
}

pub async fn connect(addr: SocketAddr, id: &str) -> std::io::Result<(Reader, Writer)> {
    connect_with(addr, id, true).await
}

/// `connect`, choosing TCP_NODELAY (off: Nagle's algorithm, like a default-configured
/// paho or libmosquitto client).
pub async fn connect_with(
    addr: SocketAddr,
    id: &str,
    nodelay: bool,
) -> std::io::Result<(Reader, Writer)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(nodelay)?;
    let (rd, wr) = stream.into_split();
    let mut r = Reader {
        rd,
        buf: BytesMut::with_capacity(64 * 1024),
    };
    let mut w = Writer { wr };
    let mut b = BytesMut::new();
    b.put_u8(0x10);
    put_varint(&mut b, 10 + 2 + id.len());
    b.put_u16(4);
    b.put_slice(b"MQTT");
    b.put_u8(4);
    b.put_u8(0x02);
    b.put_u16(60);
    b.put_u16(id.len() as u16);
    b.put_slice(id.as_bytes());
    w.send(&b).await?;
    let p = r.next().await?;
    if p.kind() != 2 || p.body.get(1) != Some(&0) {
        return Err(std::io::Error::other("CONNECT refused"));
    }
    Ok((r, w))
}

impl Writer {
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.wr.write_all(bytes).await
    }

    pub async fn subscribe(
        &mut self,
        r: &mut Reader,
        filter: &str,
        qos: u8,
    ) -> std::io::Result<()> {
        let mut b = BytesMut::new();
        b.put_u8(0x82);
        put_varint(&mut b, 2 + 2 + filter.len() + 1);
        b.put_u16(1);
        b.put_u16(filter.len() as u16);
        b.put_slice(filter.as_bytes());
        b.put_u8(qos);
        self.send(&b).await?;
        loop {
            if r.next().await?.kind() == 9 {
                return Ok(());
            }
        }
    }
}

impl Reader {
    /// The next packet.
    pub async fn next(&mut self) -> std::io::Result<Packet> {
        loop {
            if let Some(p) = self.parse() {
                return Ok(p);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// A packet already buffered, if any.
    pub fn parse(&mut self) -> Option<Packet> {
        if self.buf.len() < 2 {
            return None;
        }
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = 1;
        loop {
            let b = *self.buf.get(i)?;
            len |= ((b & 0x7f) as usize) << shift;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        if self.buf.len() < i + len {
            return None;
        }
        let mut frame = self.buf.split_to(i + len);
        let byte1 = frame[0];
        frame.advance(i);
        Some(Packet {
            byte1,
            body: frame.freeze(),
        })
    }

    /// Reads more bytes into the buffer.
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        self.rd.read_buf(&mut self.buf).await
    }
}
