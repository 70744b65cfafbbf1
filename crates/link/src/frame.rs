//! Versioned, length-prefixed frames. Every frame is an 8-byte header and a JSON payload:
//!
//! ```text
//! offset 0      1      2          4                  8
//!        | ver  | kind | reserved | payload length   | payload (JSON, ≤ MAX_PAYLOAD bytes)
//!        | 0x01 | u8   | 0x0000   | u32 big-endian   |
//! ```
//!
//! `kind` names the message; each service has its own range, so a frame sent to the wrong
//! service is an unknown kind. The decoder checks the header before buffering a payload: a wrong
//! version, a non-zero reserved field, an oversized length, an unknown kind or a payload that does
//! not parse is a [`FrameError`], after which the connection must be closed (the stream position
//! is lost) — never a panic.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// The only frame version this build speaks.
pub const VERSION: u8 = 1;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 8;
/// Largest payload accepted or sent: a 16 KiB log line stays below it even when every byte is
/// JSON-escaped.
pub const MAX_PAYLOAD: usize = 128 * 1024;

/// Why a frame was refused. The label names the reason in metrics.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame version {0} is not supported (this build speaks {VERSION})")]
    Version(u8),
    #[error("reserved header bytes are not zero")]
    Reserved,
    #[error("frame payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    Oversized(usize),
    #[error("unknown frame kind {0:#04x} for this service")]
    UnknownKind(u8),
    #[error("malformed frame payload: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// A short, fixed label for metrics (`version`, `oversized`, …).
    pub fn label(&self) -> &'static str {
        match self {
            FrameError::Version(_) => "version",
            FrameError::Reserved => "reserved",
            FrameError::Oversized(_) => "oversized",
            FrameError::UnknownKind(_) => "unknown_kind",
            FrameError::Malformed(_) => "malformed",
            FrameError::Io(_) => "io",
        }
    }
}

/// A service's message set: each variant has a kind byte and a JSON payload.
pub trait Message: Sized {
    /// The kind byte of this message.
    fn kind(&self) -> u8;
    /// Appends the JSON payload.
    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), FrameError>;
    /// Parses a payload of `kind`; unknown kinds are [`FrameError::UnknownKind`].
    fn decode_payload(kind: u8, payload: &[u8]) -> Result<Self, FrameError>;
}

/// Parses `payload` as `T` (a message body) and runs its limits check.
pub fn json_payload<T: DeserializeOwned + Limits>(payload: &[u8]) -> Result<T, FrameError> {
    let v: T = serde_json::from_slice(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    v.check().map_err(FrameError::Malformed)?;
    Ok(v)
}

/// Writes `value` as a JSON payload.
pub fn write_json<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    serde_json::to_writer(out, value).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Size and content limits of a message body beyond what its type says.
pub trait Limits {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Encodes one message as a complete frame.
pub fn encode<M: Message>(msg: &M, dst: &mut BytesMut) -> Result<(), FrameError> {
    let mut payload = Vec::with_capacity(128);
    msg.encode_payload(&mut payload)?;
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::Oversized(payload.len()));
    }
    dst.reserve(HEADER_LEN + payload.len());
    dst.put_u8(VERSION);
    dst.put_u8(msg.kind());
    dst.put_u16(0);
    dst.put_u32(payload.len() as u32);
    dst.put_slice(&payload);
    zeroize::Zeroize::zeroize(&mut payload);
    Ok(())
}

/// Checks a header and returns (kind, payload length).
pub fn parse_header(h: &[u8; HEADER_LEN]) -> Result<(u8, usize), FrameError> {
    if h[0] != VERSION {
        return Err(FrameError::Version(h[0]));
    }
    if h[2] != 0 || h[3] != 0 {
        return Err(FrameError::Reserved);
    }
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::Oversized(len));
    }
    Ok((h[1], len))
}

/// Decodes one frame from `src` if complete. Never buffers more than one frame's worth.
pub fn decode<M: Message>(src: &mut BytesMut) -> Result<Option<M>, FrameError> {
    if src.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&src[..HEADER_LEN]);
    let (kind, len) = parse_header(&header)?;
    if src.len() < HEADER_LEN + len {
        src.reserve(HEADER_LEN + len - src.len());
        return Ok(None);
    }
    src.advance(HEADER_LEN);
    let mut payload = src.split_to(len);
    let msg = M::decode_payload(kind, &payload);
    payload.iter_mut().for_each(|b| *b = 0);
    msg.map(Some)
}

/// Reads exactly one frame from `s` without reading past it (the raw stream follows).
pub async fn read_one<M: Message, S: AsyncRead + Unpin>(s: &mut S) -> Result<M, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    s.read_exact(&mut header).await?;
    let (kind, len) = parse_header(&header)?;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await?;
    M::decode_payload(kind, &payload)
}

/// Writes one frame to `s`.
pub async fn write_one<M: Message, S: AsyncWrite + Unpin>(
    s: &mut S,
    msg: &M,
) -> Result<(), FrameError> {
    let mut buf = bytes::BytesMut::new();
    encode(msg, &mut buf)?;
    s.write_all(&buf).await?;
    s.flush().await?;
    Ok(())
}

/// `tokio_util` codec of one service's messages.
#[derive(Debug)]
pub struct Codec<M>(PhantomData<fn() -> M>);

impl<M> Default for Codec<M> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<M: Message> Decoder for Codec<M> {
    type Item = M;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<M>, FrameError> {
        decode(src)
    }
}

impl<M: Message> Encoder<M> for Codec<M> {
    type Error = FrameError;

    fn encode(&mut self, item: M, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode(&item, dst)
    }
}

/// Defines a service's message enum: `kind => Variant(Body)`; bodies are JSON structs.
macro_rules! messages {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $kind:literal => $variant:ident($body:ty)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $($(#[$vmeta])* $variant($body)),+
        }

        impl $crate::frame::Message for $name {
            fn kind(&self) -> u8 {
                match self { $($name::$variant(_) => $kind),+ }
            }
            fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), $crate::frame::FrameError> {
                match self { $($name::$variant(b) => $crate::frame::write_json(b, out)),+ }
            }
            fn decode_payload(kind: u8, payload: &[u8]) -> Result<Self, $crate::frame::FrameError> {
                match kind {
                    $($kind => $crate::frame::json_payload::<$body>(payload).map($name::$variant),)+
                    other => Err($crate::frame::FrameError::UnknownKind(other)),
                }
            }
        }
    };
}
pub(crate) use messages;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{ControlMsg, Stage};

    fn frame(kind: u8, payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(VERSION);
        b.put_u8(kind);
        b.put_u16(0);
        b.put_u32(payload.len() as u32);
        b.put_slice(payload);
        b
    }

    #[test]
    fn round_trips_and_waits_for_whole_frames() {
        let msg = ControlMsg::Stage(Stage {
            stage: "attestation".into(),
            detail: Some("nsm".into()),
        });
        let mut buf = BytesMut::new();
        encode(&msg, &mut buf).unwrap();
        let whole = buf.clone();
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert!(decode::<ControlMsg>(&mut part).unwrap().is_none());
        }
        assert_eq!(decode::<ControlMsg>(&mut buf).unwrap(), Some(msg));
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_bad_headers_before_buffering_payloads() {
        let mut b = frame(0x11, b"{}");
        b[0] = 2;
        assert!(matches!(
            decode::<ControlMsg>(&mut b),
            Err(FrameError::Version(2))
        ));
        let mut b = frame(0x11, b"{}");
        b[3] = 1;
        assert!(matches!(
            decode::<ControlMsg>(&mut b),
            Err(FrameError::Reserved)
        ));
        let mut b = BytesMut::from(&[VERSION, 0x11, 0, 0, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decode::<ControlMsg>(&mut b),
            Err(FrameError::Oversized(_))
        ));
        let mut b = frame(0x7f, b"{}");
        assert!(matches!(
            decode::<ControlMsg>(&mut b),
            Err(FrameError::UnknownKind(0x7f))
        ));
        let mut b = frame(0x11, b"{\"stage\": 5}");
        assert!(matches!(
            decode::<ControlMsg>(&mut b),
            Err(FrameError::Malformed(_))
        ));
        let mut b = frame(0x11, b"{\"stage\": \"x\", \"surprise\": 1}");
        assert!(matches!(
            decode::<ControlMsg>(&mut b),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_to_encode_oversized_payloads() {
        let msg = ControlMsg::Stage(Stage {
            stage: "x".into(),
            detail: Some("\u{1}".repeat(MAX_PAYLOAD)),
        });
        assert!(matches!(
            encode(&msg, &mut BytesMut::new()),
            Err(FrameError::Oversized(_))
        ));
    }
}
