"""KMS-shaped CiphertextForRecipient: BER CMS EnvelopedData written byte by byte from RFC 5652,
in the shapes KMS (and OpenSSL) emit, plus deliberately broken variants for negative tests."""

import hashlib
import itertools
import os

from cryptography.hazmat.primitives import hashes, padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import load_der_public_key

OID_ENVELOPED_DATA = bytes.fromhex("2a864886f70d010703")
OID_DATA = bytes.fromhex("2a864886f70d010701")
OID_RSAES_OAEP = bytes.fromhex("2a864886f70d010107")
OID_RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")
OID_MGF1 = bytes.fromhex("2a864886f70d010108")
OID_SHA256 = bytes.fromhex("608648016503040201")
OID_AES256_CBC = bytes.fromhex("60864801650304012a")

# Shapes seen from KMS (one-chunk constructed and primitive [0]) and OpenSSL's -stream chunks.
SHAPES = ("kms-chunked", "kms-primitive", "openssl-chunks")
CORRUPTIONS = ("flip", "v0", "pkcs1v15", "trailing")


def _length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag, content):
    return bytes([tag]) + _length(len(content)) + content


def indefinite(tag, *parts):
    return bytes([tag, 0x80]) + b"".join(parts) + b"\x00\x00"


def oid(value):
    return tlv(0x06, value)


def integer(value):
    return tlv(0x02, bytes([value]))


def _encrypted_content(shape, ciphertext):
    if shape == "kms-primitive":
        return tlv(0x80, ciphertext)
    if shape == "kms-chunked":
        return indefinite(0xA0, tlv(0x04, ciphertext))
    chunks = [ciphertext[:32], ciphertext[32:]] if len(ciphertext) > 32 else [ciphertext]
    return indefinite(0xA0, *(tlv(0x04, c) for c in chunks if c))


def envelope(spki_der, plaintext, shape="kms-chunked", corruption=None):
    """EnvelopedData for the RSA key `spki_der` carrying `plaintext`."""
    public_key = load_der_public_key(spki_der)
    cek, iv = os.urandom(32), os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    sha256 = tlv(0x30, oid(OID_SHA256) + b"\x05\x00")
    if corruption == "pkcs1v15":
        wrapped = public_key.encrypt(cek, padding.PKCS1v15())
        key_algorithm = tlv(0x30, oid(OID_RSA_ENCRYPTION) + b"\x05\x00")
    else:
        wrapped = public_key.encrypt(
            cek,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        params = tlv(0x30, tlv(0xA0, sha256) + tlv(0xA1, tlv(0x30, oid(OID_MGF1) + sha256)))
        key_algorithm = tlv(0x30, oid(OID_RSAES_OAEP) + params)
    if corruption == "flip":
        wrapped = wrapped[:100] + bytes([wrapped[100] ^ 0x01]) + wrapped[101:]
    version = 0 if corruption == "v0" else 2
    ski = hashlib.sha256(spki_der).digest()
    ktri = tlv(0x30, integer(version) + tlv(0x80, ski) + key_algorithm + tlv(0x04, wrapped))
    content_info = indefinite(
        0x30,
        oid(OID_DATA),
        tlv(0x30, oid(OID_AES256_CBC) + tlv(0x04, iv)),
        _encrypted_content(shape, ciphertext),
    )
    enveloped = indefinite(0x30, integer(version), tlv(0x31, ktri), content_info)
    blob = indefinite(0x30, oid(OID_ENVELOPED_DATA), indefinite(0xA0, enveloped))
    if corruption == "trailing":
        blob += b"\x00"
    return blob


_rotation = itertools.cycle(SHAPES)


def next_shape():
    """The next shape in rotation, so a test run sees all of them."""
    return next(_rotation)
