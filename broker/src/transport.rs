//! The byte stream under a network connection: plain TCP, or TLS over TCP (rustls).
//!
//! During the handshake a connection is a `Stream` (async reads and writes). Once
//! admitted it is split into a `Reader`, owned by the connection's task, and a `Writer`,
//! owned by its outbox and used from any task that delivers to it. Both are readiness
//! based (`try_read`/`try_write`, never blocking), like the TCP halves they wrap; with
//! TLS they share the rustls connection, which turns ciphertext into plaintext and back
//! under a short lock.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::BytesMut;
use rustls::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Most plaintext one `Reader::try_read_buf` takes out of TLS at once.
const READ_CHUNK: usize = 64 * 1024;

/// A connection's stream before it is split.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The common name (CN) of the client's certificate (verified against the listener's
    /// client CA), if it presented one.
    pub fn peer_identity(&self) -> Option<String> {
        let Stream::Tls(s) = self else { return None };
        let cert = s.get_ref().1.peer_certificates()?.first()?;
        crate::tls::common_name(cert.as_ref())
    }

    /// The reading and the writing half.
    pub fn split(self) -> (Reader, Writer) {
        match self {
            Stream::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (Reader { tcp: r, tls: None }, Writer { tcp: w, tls: None })
            }
            Stream::Tls(s) => {
                let (tcp, conn) = s.into_inner();
                let (r, w) = tcp.into_split();
                let tls = Arc::new(Mutex::new(conn));
                (
                    Reader {
                        tcp: r,
                        tls: Some(tls.clone()),
                    },
                    Writer {
                        tcp: w,
                        tls: Some(tls),
                    },
                )
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, b),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Shared = Arc<Mutex<ServerConnection>>;

fn lock(tls: &Shared) -> MutexGuard<'_, ServerConnection> {
    tls.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reading half.
pub(crate) struct Reader {
    tcp: OwnedReadHalf,
    tls: Option<Shared>,
}

impl Reader {
    /// The TCP half (readiness, socket options).
    pub fn tcp(&self) -> &OwnedReadHalf {
        &self.tcp
    }

    /// Reads what is there into `buf` without waiting: `Ok(0)` at the end of the
    /// stream, `WouldBlock` when nothing is there yet.
    pub fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.tcp.try_read_buf(buf);
        };
        let mut conn = lock(tls);
        let mut plain = drain_plaintext(&mut conn, buf)?;
        let mut eof = false;
        while plain < READ_CHUNK {
            match conn.read_tls(&mut TryRead(&self.tcp)) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    plain += drain_plaintext(&mut conn, buf)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        match (plain, eof) {
            (0, true) => Ok(0),
            (0, false) => Err(io::ErrorKind::WouldBlock.into()),
            (n, _) => Ok(n),
        }
    }
}

/// Moves the plaintext rustls holds into `buf`.
fn drain_plaintext(conn: &mut ServerConnection, buf: &mut BytesMut) -> io::Result<usize> {
    let mut total = 0;
    let mut chunk = [0u8; 4096];
    loop {
        match conn.reader().read(&mut chunk) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                total += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}

/// The writing half.
pub(crate) struct Writer {
    tcp: OwnedWriteHalf,
    tls: Option<Shared>,
}

impl Writer {
    /// Resolves when the socket may take more.
    pub async fn writable(&self) -> io::Result<()> {
        self.tcp.writable().await
    }

    /// Writes what the socket takes now; how much of `buf` was taken (`WouldBlock`:
    /// nothing).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.tcp.try_write(buf);
        };
        let mut conn = lock(tls);
        if !send_ciphertext(&mut conn, &self.tcp)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = conn.writer().write(buf)?;
        send_ciphertext(&mut conn, &self.tcp)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Writes what TLS still holds (records of earlier writes, handshake and alert
    /// messages); true when nothing is left.
    pub fn flush_pending(&self) -> io::Result<bool> {
        match &self.tls {
            None => Ok(true),
            Some(tls) => send_ciphertext(&mut lock(tls), &self.tcp),
        }
    }
}

/// Writes out rustls' pending records; false if the socket filled up first.
fn send_ciphertext(conn: &mut ServerConnection, tcp: &OwnedWriteHalf) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut TryWrite(tcp)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// `io::Read` over a TCP half's non-blocking read.
struct TryRead<'a>(&'a OwnedReadHalf);

impl Read for TryRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

/// `io::Write` over a TCP half's non-blocking write.
struct TryWrite<'a>(&'a OwnedWriteHalf);

impl Write for TryWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
