//! A strict BER reader for the one CMS shape KMS returns as `CiphertextForRecipient` (RFC 5652
//! EnvelopedData): definite or indefinite lengths, encryptedContent primitive or chunked,
//! EnvelopedData v2 with exactly one KeyTransRecipientInfo v2 identified by a
//! subjectKeyIdentifier, RSAES-OAEP with SHA-256 and MGF1-SHA-256 (NULL parameters present or
//! absent, empty label), AES-256-CBC with a 16-byte IV, and nothing after the ContentInfo.
//!
//! Anything else is refused; the schema is fixed, so the reader never recurses on input and
//! every length is checked against what is left before use.

use thiserror::Error;

/// KMS documents `CiphertextForRecipient` as at most 6144 bytes.
pub const MAX_CMS_LEN: usize = 6144;
const AES_BLOCK: usize = 16;

const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
const CONTEXT_1_CONSTRUCTED: u8 = 0xa1;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;

/// Where the structure broke: for tests and diagnostics only. Callers that decrypt see one
/// uniform error (see `RecipientKey::open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CmsError {
    #[error("input of {0} bytes exceeds the {MAX_CMS_LEN} bytes KMS can send")]
    TooLarge(usize),
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("unexpected tag {found:#04x} at byte {at} (expected {expected:#04x})")]
    UnexpectedTag { at: usize, found: u8, expected: u8 },
    #[error("invalid length encoding at byte {0}")]
    BadLength(usize),
    #[error("unsupported value at byte {0}")]
    Unsupported(usize),
    #[error("{0} trailing bytes after the ContentInfo")]
    Trailing(usize),
}

/// The fields needed to decrypt, borrowed from the input except the joined ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The recipient's subjectKeyIdentifier (how KMS derives it is undocumented: not checked).
    pub subject_key_id: &'a [u8],
    /// The content-encryption key wrapped with RSA-OAEP.
    pub encrypted_key: &'a [u8],
    pub iv: [u8; AES_BLOCK],
    /// AES-256-CBC ciphertext, chunks joined; non-empty and whole blocks.
    pub ciphertext: Vec<u8>,
}

/// Parses a `CiphertextForRecipient`.
pub fn parse(input: &[u8]) -> Result<Envelope<'_>, CmsError> {
    if input.len() > MAX_CMS_LEN {
        return Err(CmsError::TooLarge(input.len()));
    }
    let mut top = Reader::new(input, 0, false);
    let envelope = top.constructed(SEQUENCE, |content_info| {
        content_info.expect_oid(OID_ENVELOPED_DATA)?;
        content_info.constructed(CONTEXT_0_CONSTRUCTED, |explicit| {
            explicit.constructed(SEQUENCE, enveloped_data)
        })
    })?;
    if top.pos != input.len() {
        return Err(CmsError::Trailing(input.len() - top.pos));
    }
    Ok(envelope)
}

/// `EnvelopedData` v2 without originatorInfo or unprotectedAttrs.
fn enveloped_data<'a>(enveloped: &mut Reader<'a>) -> Result<Envelope<'a>, CmsError> {
    enveloped.expect_version(2)?;
    let (subject_key_id, encrypted_key) = enveloped.constructed(SET, |set| {
        // Exactly one recipient: the closing check of the SET refuses a second.
        set.constructed(SEQUENCE, key_trans_recipient_info)
    })?;
    let (iv, ciphertext) = enveloped.constructed(SEQUENCE, encrypted_content_info)?;
    Ok(Envelope {
        subject_key_id,
        encrypted_key,
        iv,
        ciphertext,
    })
}

/// `KeyTransRecipientInfo` v2 (subjectKeyIdentifier) → (SKI, encryptedKey).
fn key_trans_recipient_info<'a>(ktri: &mut Reader<'a>) -> Result<(&'a [u8], &'a [u8]), CmsError> {
    ktri.expect_version(2)?;
    let at = ktri.abs();
    let subject_key_id = ktri.primitive(CONTEXT_0_PRIMITIVE)?;
    if subject_key_id.is_empty() {
        return Err(CmsError::Unsupported(at));
    }
    ktri.constructed(SEQUENCE, |algorithm| {
        algorithm.expect_oid(OID_RSAES_OAEP)?;
        algorithm.constructed(SEQUENCE, oaep_sha256_params)
    })?;
    let encrypted_key = ktri.primitive(OCTET_STRING)?;
    Ok((subject_key_id, encrypted_key))
}

/// `RSAES-OAEP-params` naming SHA-256 and MGF1-SHA-256 explicitly, with no label: the defaults
/// (SHA-1) are not what KMS uses, so an absent parameter is refused, and so is a `[2]`
/// pSourceFunc.
fn oaep_sha256_params(params: &mut Reader<'_>) -> Result<(), CmsError> {
    params.constructed(CONTEXT_0_CONSTRUCTED, |hash| {
        hash.constructed(SEQUENCE, sha256_identifier)
    })?;
    params.constructed(CONTEXT_1_CONSTRUCTED, |mask| {
        mask.constructed(SEQUENCE, |mgf| {
            mgf.expect_oid(OID_MGF1)?;
            mgf.constructed(SEQUENCE, sha256_identifier)
        })
    })
}

/// The content of `AlgorithmIdentifier { sha256, NULL OPTIONAL }`.
fn sha256_identifier(id: &mut Reader<'_>) -> Result<(), CmsError> {
    id.expect_oid(OID_SHA256)?;
    if !id.at_end() {
        let at = id.abs();
        if !id.primitive(NULL)?.is_empty() {
            return Err(CmsError::Unsupported(at));
        }
    }
    Ok(())
}

/// `EncryptedContentInfo` for `data` under AES-256-CBC → (IV, joined ciphertext).
fn encrypted_content_info(info: &mut Reader<'_>) -> Result<([u8; AES_BLOCK], Vec<u8>), CmsError> {
    info.expect_oid(OID_DATA)?;
    let iv = info.constructed(SEQUENCE, |algorithm| {
        algorithm.expect_oid(OID_AES256_CBC)?;
        let at = algorithm.abs();
        algorithm
            .primitive(OCTET_STRING)?
            .try_into()
            .map_err(|_| CmsError::Unsupported(at))
    })?;
    let at = info.abs();
    let ciphertext = if info.peek_tag()? == CONTEXT_0_PRIMITIVE {
        info.primitive(CONTEXT_0_PRIMITIVE)?.to_vec()
    } else {
        info.constructed(CONTEXT_0_CONSTRUCTED, |chunks| {
            let mut joined = Vec::new();
            while !chunks.at_end() {
                joined.extend_from_slice(chunks.primitive(OCTET_STRING)?);
            }
            Ok(joined)
        })?
    };
    if ciphertext.is_empty() || ciphertext.len() % AES_BLOCK != 0 {
        return Err(CmsError::Unsupported(at));
    }
    Ok((iv, ciphertext))
}

/// The content of one constructed element: `data` is what is left of the parent from the
/// element's first content byte; for a definite length it is cut to that length, for an
/// indefinite one the content ends at the end-of-contents octets `00 00`.
struct Reader<'a> {
    data: &'a [u8],
    /// Absolute offset of `data[0]` in the input, for error positions.
    base: usize,
    pos: usize,
    indefinite: bool,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], base: usize, indefinite: bool) -> Self {
        Self {
            data,
            base,
            pos: 0,
            indefinite,
        }
    }

    fn abs(&self) -> usize {
        self.base + self.pos
    }

    fn at_end(&self) -> bool {
        if self.indefinite {
            self.data[self.pos..].starts_with(&[0, 0])
        } else {
            self.pos == self.data.len()
        }
    }

    fn peek_tag(&self) -> Result<u8, CmsError> {
        self.data
            .get(self.pos)
            .copied()
            .ok_or(CmsError::Truncated(self.abs()))
    }

    /// Reads tag and length; `None` length means indefinite.
    fn header(&mut self, expected: u8) -> Result<Option<usize>, CmsError> {
        let at = self.abs();
        let tag = self.peek_tag()?;
        if tag != expected {
            return Err(CmsError::UnexpectedTag {
                at,
                found: tag,
                expected,
            });
        }
        self.pos += 1;
        let first = *self
            .data
            .get(self.pos)
            .ok_or(CmsError::Truncated(self.abs()))?;
        self.pos += 1;
        let length = match first {
            0x00..=0x7f => Some(usize::from(first)),
            0x80 => None,
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                let bytes = self
                    .data
                    .get(self.pos..self.pos + n)
                    .ok_or(CmsError::Truncated(self.abs()))?;
                self.pos += n;
                Some(
                    bytes
                        .iter()
                        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
                )
            }
            _ => return Err(CmsError::BadLength(at + 1)),
        };
        if let Some(len) = length {
            if len > self.data.len() - self.pos {
                return Err(CmsError::Truncated(self.abs()));
            }
        }
        Ok(length)
    }

    /// A primitive element's content (definite length only).
    fn primitive(&mut self, tag: u8) -> Result<&'a [u8], CmsError> {
        let at = self.abs();
        let len = self.header(tag)?.ok_or(CmsError::BadLength(at + 1))?;
        let content = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(content)
    }

    /// Reads a constructed element with `body`, checks that `body` consumed all of it (and its
    /// end-of-contents octets when the length is indefinite), and moves past it.
    fn constructed<T>(
        &mut self,
        tag: u8,
        body: impl FnOnce(&mut Reader<'a>) -> Result<T, CmsError>,
    ) -> Result<T, CmsError> {
        let length = self.header(tag)?;
        let start = self.pos;
        let mut child = match length {
            Some(len) => Reader::new(&self.data[start..start + len], self.base + start, false),
            None => Reader::new(&self.data[start..], self.base + start, true),
        };
        let value = body(&mut child)?;
        child.finish()?;
        self.pos = start + child.pos;
        Ok(value)
    }

    fn expect_oid(&mut self, oid: &[u8]) -> Result<(), CmsError> {
        let at = self.abs();
        if self.primitive(OID)? == oid {
            Ok(())
        } else {
            Err(CmsError::Unsupported(at))
        }
    }

    fn expect_version(&mut self, version: u8) -> Result<(), CmsError> {
        let at = self.abs();
        if self.primitive(INTEGER)? == [version] {
            Ok(())
        } else {
            Err(CmsError::Unsupported(at))
        }
    }

    /// Checks that everything of this element was read (and its end-of-contents, if any).
    fn finish(&mut self) -> Result<(), CmsError> {
        if self.indefinite {
            if !self.at_end() {
                return self.unexpected_content();
            }
            self.pos += 2;
            Ok(())
        } else if self.pos == self.data.len() {
            Ok(())
        } else {
            self.unexpected_content()
        }
    }

    fn unexpected_content(&self) -> Result<(), CmsError> {
        match self.data.get(self.pos) {
            None => Err(CmsError::Truncated(self.abs())),
            Some(_) => Err(CmsError::Unsupported(self.abs())),
        }
    }
}
