//! The MQTT wire format as the edge sees it: framing, decoding client packets, encoding
//! server packets.

pub mod decode;
pub mod encode;
pub mod frame;
