"""Verification of Nitro attestation documents, written from AWS's specification
(nsm-api docs/attestation_process.md) independently of the Rust verifier it tests."""

import datetime

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

ES384_HEADER = bytes.fromhex("a1013822")
MAX_DOCUMENT = 262144  # RecipientInfo.AttestationDocument limit


class Invalid(Exception):
    """The document is not acceptable; the message says why."""


def _envelope(document):
    value = cbor2.loads(document)
    if isinstance(value, cbor2.CBORTag):
        if value.tag != 18:
            raise Invalid("not a COSE_Sign1")
        value = value.value
    if not isinstance(value, list) or len(value) != 4:
        raise Invalid("not a COSE_Sign1 array")
    return value


def _payload(payload_bytes):
    payload = cbor2.loads(payload_bytes)
    if not isinstance(payload, dict):
        raise Invalid("payload is not a map")
    for field in ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"):
        if payload.get(field) is None:
            raise Invalid(f"payload lacks {field}")
    if payload["digest"] != "SHA384":
        raise Invalid("digest is not SHA384")
    pcrs = payload["pcrs"]
    if not isinstance(pcrs, dict) or not pcrs:
        raise Invalid("pcrs is not a non-empty map")
    for index, value in pcrs.items():
        if not isinstance(index, int) or not 0 <= index <= 31 or len(value) not in (32, 48, 64):
            raise Invalid(f"bad PCR{index}")
    return payload


def _check_chain(payload, trusted_root_der, now):
    bundle = payload["cabundle"]
    if not bundle or bundle[0] != trusted_root_der:
        raise Invalid("cabundle[0] is not the trusted root")
    certs = [x509.load_der_x509_certificate(der) for der in bundle]
    certs.append(x509.load_der_x509_certificate(payload["certificate"]))
    for position, cert in enumerate(certs):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise Invalid(f"certificate {position} is not valid now")
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        if is_ca != (position < len(certs) - 1):
            raise Invalid(f"certificate {position} has the wrong CA flag")
        if position:
            try:
                cert.verify_directly_issued_by(certs[position - 1])
            except (ValueError, TypeError, InvalidSignature) as e:
                raise Invalid(f"certificate {position} is not issued by its predecessor: {e}")
    return certs[-1]


def _check_signature(leaf, protected, payload_bytes, signature):
    if len(signature) != 96:
        raise Invalid("signature is not 96 bytes")
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload_bytes])
    der = encode_dss_signature(
        int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    )
    try:
        leaf.public_key().verify(der, to_sign, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise Invalid("COSE signature does not verify")


def verify(document, trusted_root_der, accept_unsigned_qemu=False, now=None):
    """The document's PCRs ({index: bytes}) and RSA public key (DER SPKI), or Invalid."""
    if not 1 <= len(document) <= MAX_DOCUMENT:
        raise Invalid("document size outside 1..262144")
    try:
        protected, _unprotected, payload_bytes, signature = _envelope(document)
        payload = _payload(payload_bytes)
    except (ValueError, TypeError, KeyError, cbor2.CBORDecodeError) as e:
        raise Invalid(f"malformed document: {e}")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if protected == ES384_HEADER:
        leaf = _check_chain(payload, trusted_root_der, now)
        _check_signature(leaf, protected, payload_bytes, signature)
    elif not accept_unsigned_qemu:
        raise Invalid("unsigned document (QEMU) refused without --accept-unsigned-qemu")
    spki = payload.get("public_key")
    if not spki:
        raise Invalid("document carries no public_key")
    try:
        key = load_der_public_key(spki)
    except ValueError:
        raise Invalid("public_key is not a DER SubjectPublicKeyInfo")
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 2048:
        raise Invalid("public_key is not an RSA-2048 key")
    return payload["pcrs"], spki
