//! Framing: find complete MQTT packets in a byte stream.
//!
//! The edge frames packets itself (rather than letting rumqttd's codec do it) so that it
//! can refuse an oversized packet from its fixed header alone, before reading its body,
//! and check the packet type and flags before any decoder sees the bytes.

use std::fmt;

/// The fixed header of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    /// First byte: packet type in the high nibble, flags in the low one.
    pub byte1: u8,
    /// Length of the fixed header itself (2 to 5 bytes).
    pub header_len: usize,
    /// Length of variable header + payload.
    pub remaining_len: usize,
}

impl FixedHeader {
    pub fn packet_type(&self) -> u8 {
        self.byte1 >> 4
    }

    pub fn flags(&self) -> u8 {
        self.byte1 & 0x0f
    }

    /// Size of the whole packet on the wire.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Why a byte stream cannot be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The remaining-length field runs past four bytes.
    MalformedLength,
    /// The packet is larger than the configured maximum.
    TooLarge { size: usize, max: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::MalformedLength => f.write_str("malformed remaining length"),
            FrameError::TooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds max_packet_size {max}")
            }
        }
    }
}

/// Parses the fixed header at the start of `buf`.
///
/// Returns `Ok(None)` while the header itself is incomplete; the packet body may still be
/// incomplete when a header is returned (compare `frame_len()` with the buffer length).
/// `max_packet` bounds the whole packet, header included.
pub fn parse_header(buf: &[u8], max_packet: usize) -> Result<Option<FixedHeader>, FrameError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut remaining_len: usize = 0;
    let mut shift = 0;
    for (i, &b) in buf[1..].iter().enumerate() {
        if i == 4 {
            return Err(FrameError::MalformedLength);
        }
        remaining_len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            let header = FixedHeader {
                byte1,
                header_len: i + 2,
                remaining_len,
            };
            if header.frame_len() > max_packet {
                return Err(FrameError::TooLarge {
                    size: header.frame_len(),
                    max: max_packet,
                });
            }
            return Ok(Some(header));
        }
        shift += 7;
    }
    if buf.len() > 5 {
        return Err(FrameError::MalformedLength);
    }
    Ok(None)
}

/// Packet types by number (MQTT 3.1.1 and 5 share them).
pub mod packet_type {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;
}

/// Checks that a packet type may be sent by a client and that its fixed-header flags are
/// the ones the spec requires. Server-to-client packets (CONNACK, SUBACK, ...) are refused
/// here: rumqttd's v5 decoder reaches `unreachable!()` on some of them.
pub fn check_client_packet(header: &FixedHeader) -> Result<(), &'static str> {
    use packet_type::*;
    let flags = header.flags();
    match header.packet_type() {
        PUBLISH => {
            if (flags >> 1) & 0b11 == 0b11 {
                return Err("PUBLISH with QoS 3");
            }
            Ok(())
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => {
            if flags != 0b0010 {
                return Err("reserved fixed-header flags must be 0010");
            }
            Ok(())
        }
        CONNECT | PUBACK | PUBREC | PUBCOMP | PINGREQ | DISCONNECT => {
            if flags != 0 {
                return Err("reserved fixed-header flags must be 0000");
            }
            Ok(())
        }
        CONNACK | SUBACK | UNSUBACK | PINGRESP => Err("server-to-client packet sent by a client"),
        AUTH => Err("AUTH packets are not supported (no enhanced authentication)"),
        _ => Err("reserved packet type 0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_to_four_length_bytes() {
        assert_eq!(parse_header(&[0x30], 100), Ok(None));
        let h = parse_header(&[0x30, 0x05], 100).unwrap().unwrap();
        assert_eq!((h.header_len, h.remaining_len), (2, 5));
        let h = parse_header(&[0x30, 0xc1, 0x02], 1000).unwrap().unwrap();
        assert_eq!((h.header_len, h.remaining_len), (3, 321));
        let h = parse_header(&[0x30, 0xff, 0xff, 0xff, 0x7f], usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(h.remaining_len, 268_435_455);
    }

    #[test]
    fn refuses_five_length_bytes_and_oversize() {
        assert_eq!(
            parse_header(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX),
            Err(FrameError::MalformedLength)
        );
        assert_eq!(
            parse_header(&[0x30, 0xff, 0xff, 0x7f], 1024),
            Err(FrameError::TooLarge {
                size: 2_097_151 + 4,
                max: 1024
            })
        );
    }

    #[test]
    fn checks_types_and_flags() {
        let h = |b: u8| FixedHeader {
            byte1: b,
            header_len: 2,
            remaining_len: 0,
        };
        assert!(check_client_packet(&h(0x30)).is_ok());
        assert!(check_client_packet(&h(0x36)).is_err());
        assert!(check_client_packet(&h(0x82)).is_ok());
        assert!(check_client_packet(&h(0x80)).is_err());
        assert!(check_client_packet(&h(0x20)).is_err());
        assert!(check_client_packet(&h(0x00)).is_err());
        assert!(check_client_packet(&h(0xf0)).is_err());
    }
}
