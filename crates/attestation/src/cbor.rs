//! A small, strict CBOR (RFC 8949) decoder for the subset NSM documents use.
//!
//! General-purpose decoders silently accept duplicate map keys and leave trailing bytes
//! unread; both let two parties see different contents in the same signed bytes, so this
//! decoder rejects them. Definite and indefinite-length arrays and maps are accepted
//! (NSM switched to indefinite-length payload maps around 2025). Byte and text strings
//! borrow from the input so callers keep the exact signed bytes.

use thiserror::Error;

/// Nesting limit: attestation documents nest three levels deep; this bounds recursion.
const MAX_DEPTH: usize = 16;

/// A decoded CBOR data item borrowing its strings from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Unsigned(u64),
    /// Negative integer `-1 - n`, stored as `n` to cover the full CBOR range.
    Negative(u64),
    Bytes(&'a [u8]),
    Text(&'a str),
    Array(Vec<Value<'a>>),
    /// Entries in encoded order; keys are unique.
    Map(Vec<(Value<'a>, Value<'a>)>),
    Tag(u64, Box<Value<'a>>),
    Bool(bool),
    Null,
}

/// Why a byte string is not acceptable CBOR.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CborError {
    #[error("CBOR input ends early at byte {0}")]
    Truncated(usize),
    #[error("{0} trailing byte(s) after the CBOR item")]
    TrailingBytes(usize),
    #[error("unsupported or reserved CBOR encoding 0x{byte:02x} at byte {offset}")]
    Unsupported { byte: u8, offset: usize },
    #[error("unexpected CBOR break at byte {0}")]
    UnexpectedBreak(usize),
    #[error("CBOR nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("invalid UTF-8 in CBOR text string at byte {0}")]
    InvalidUtf8(usize),
    #[error("duplicate CBOR map key at byte {0}")]
    DuplicateKey(usize),
}

/// Decodes exactly one data item spanning all of `input`.
pub(crate) fn decode(input: &[u8]) -> Result<Value<'_>, CborError> {
    let mut decoder = Decoder { input, pos: 0 };
    let value = decoder.item(0)?;
    match input.len() - decoder.pos {
        0 => Ok(value),
        extra => Err(CborError::TrailingBytes(extra)),
    }
}

const BREAK: u8 = 0xff;

/// Argument of an initial byte: a number or the indefinite-length marker.
enum Argument {
    Value(u64),
    Indefinite,
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or(CborError::Truncated(self.input.len()))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, CborError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(CborError::Truncated(self.input.len()))
    }

    fn argument(&mut self, initial: u8, offset: usize) -> Result<Argument, CborError> {
        let info = initial & 0x1f;
        let value = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => self.take(2)?.iter().fold(0, |n, &b| n << 8 | u64::from(b)),
            26 => self.take(4)?.iter().fold(0, |n, &b| n << 8 | u64::from(b)),
            27 => self.take(8)?.iter().fold(0, |n, &b| n << 8 | u64::from(b)),
            31 => return Ok(Argument::Indefinite),
            _ => {
                return Err(CborError::Unsupported {
                    byte: initial,
                    offset,
                })
            }
        };
        Ok(Argument::Value(value))
    }

    /// A definite length that must fit in the remaining input (each element needs ≥ 1 byte),
    /// so hostile lengths cannot trigger large allocations.
    fn length(&mut self, initial: u8, offset: usize) -> Result<Option<usize>, CborError> {
        match self.argument(initial, offset)? {
            Argument::Indefinite => Ok(None),
            Argument::Value(n) => usize::try_from(n)
                .ok()
                .filter(|&n| n <= self.input.len() - self.pos)
                .map(Some)
                .ok_or(CborError::Truncated(self.input.len())),
        }
    }

    /// True (and consumes it) if the next byte ends an indefinite-length container.
    fn at_break(&mut self) -> Result<bool, CborError> {
        if self.peek()? == BREAK {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn item(&mut self, depth: usize) -> Result<Value<'a>, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let offset = self.pos;
        let initial = self.byte()?;
        let unsupported = CborError::Unsupported {
            byte: initial,
            offset,
        };
        match initial >> 5 {
            0 | 1 | 6 => {
                let Argument::Value(n) = self.argument(initial, offset)? else {
                    return Err(unsupported);
                };
                Ok(match initial >> 5 {
                    0 => Value::Unsigned(n),
                    1 => Value::Negative(n),
                    _ => Value::Tag(n, Box::new(self.item(depth + 1)?)),
                })
            }
            2 | 3 => {
                // Indefinite-length (chunked) strings never occur in NSM documents.
                let len = self.length(initial, offset)?.ok_or(unsupported)?;
                let bytes = self.take(len)?;
                if initial >> 5 == 2 {
                    Ok(Value::Bytes(bytes))
                } else {
                    std::str::from_utf8(bytes)
                        .map(Value::Text)
                        .map_err(|_| CborError::InvalidUtf8(offset))
                }
            }
            4 => {
                let mut items = Vec::new();
                match self.length(initial, offset)? {
                    Some(len) => {
                        for _ in 0..len {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                    None => {
                        while !self.at_break()? {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                }
                Ok(Value::Array(items))
            }
            5 => {
                let mut entries = Vec::new();
                match self.length(initial, offset)? {
                    Some(len) => {
                        for _ in 0..len {
                            self.entry(&mut entries, depth)?;
                        }
                    }
                    None => {
                        while !self.at_break()? {
                            self.entry(&mut entries, depth)?;
                        }
                    }
                }
                Ok(Value::Map(entries))
            }
            _ => match initial {
                0xf4 => Ok(Value::Bool(false)),
                0xf5 => Ok(Value::Bool(true)),
                0xf6 => Ok(Value::Null),
                BREAK => Err(CborError::UnexpectedBreak(offset)),
                // Floats, `undefined` and other simple values have no place in a document.
                _ => Err(unsupported),
            },
        }
    }

    fn entry(
        &mut self,
        entries: &mut Vec<(Value<'a>, Value<'a>)>,
        depth: usize,
    ) -> Result<(), CborError> {
        let offset = self.pos;
        let key = self.item(depth + 1)?;
        if entries.iter().any(|(existing, _)| *existing == key) {
            return Err(CborError::DuplicateKey(offset));
        }
        let value = self.item(depth + 1)?;
        entries.push((key, value));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    #[test]
    fn decodes_definite_and_indefinite_maps_alike() {
        let definite = hex("a2616101616202");
        let indefinite = hex("bf616101616202ff");
        let expected = Value::Map(vec![
            (Value::Text("a"), Value::Unsigned(1)),
            (Value::Text("b"), Value::Unsigned(2)),
        ]);
        assert_eq!(decode(&definite), Ok(expected.clone()));
        assert_eq!(decode(&indefinite), Ok(expected));
    }

    #[test]
    fn decodes_integers_tags_and_simple_values() {
        assert_eq!(decode(&hex("3822")), Ok(Value::Negative(34)));
        assert_eq!(
            decode(&hex("1b000001932d1239ca")),
            Ok(Value::Unsigned(1_731_627_989_450))
        );
        assert_eq!(
            decode(&hex("d28340f6f5")),
            Ok(Value::Tag(
                18,
                Box::new(Value::Array(vec![
                    Value::Bytes(&[]),
                    Value::Null,
                    Value::Bool(true)
                ]))
            ))
        );
    }

    #[test]
    fn rejects_duplicate_keys_in_either_map_form() {
        assert_eq!(
            decode(&hex("a2616101616102")),
            Err(CborError::DuplicateKey(4))
        );
        assert_eq!(
            decode(&hex("bf616101616102ff")),
            Err(CborError::DuplicateKey(4))
        );
    }

    #[test]
    fn rejects_trailing_bytes_and_truncation() {
        assert_eq!(decode(&hex("0100")), Err(CborError::TrailingBytes(1)));
        assert_eq!(decode(&hex("bf6161")), Err(CborError::Truncated(3)));
        assert_eq!(decode(&hex("5a0000ffff00")), Err(CborError::Truncated(6)));
        assert_eq!(decode(&[]), Err(CborError::Truncated(0)));
    }

    #[test]
    fn rejects_unsupported_items() {
        for (input, byte) in [
            ("f97e00", 0xf9),
            ("f7", 0xf7),
            ("5f40ff", 0x5f),
            ("1c", 0x1c),
        ] {
            assert_eq!(
                decode(&hex(input)),
                Err(CborError::Unsupported { byte, offset: 0 })
            );
        }
        assert_eq!(decode(&hex("ff")), Err(CborError::UnexpectedBreak(0)));
        assert_eq!(decode(&hex("62c328")), Err(CborError::InvalidUtf8(0)));
    }

    #[test]
    fn bounds_nesting_depth() {
        let deep = [0x81u8; MAX_DEPTH + 2];
        assert_eq!(decode(&deep), Err(CborError::TooDeep));
    }
}
