"""The attested-KMS front: a WSGI middleware around moto's own app (same process, so it can read
the key policy moto stores). Every request goes to moto unchanged — moto (in auth mode) checks
the SigV4 signature, session token and IAM policies — and for Decrypt, GenerateDataKey and
GenerateRandom the front adds what moto cannot: it verifies the Recipient's attestation
document against the harness's test root, evaluates the key policy's PCR conditions and answers
with a KMS-shaped CiphertextForRecipient instead of the plaintext."""

import base64
import io
import itertools
import json
import re
import threading

from moto.kms.models import kms_backends
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

import attestation
import cms
import policy

ATTESTED_OPERATIONS = {
    "TrentService.Decrypt": "kms:Decrypt",
    "TrentService.GenerateDataKey": "kms:GenerateDataKey",
    "TrentService.GenerateRandom": "kms:GenerateRandom",
}
ALGORITHM = "RSAES_OAEP_SHA_256"
CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


class KmsError(Exception):
    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class Front:
    def __init__(self, app, trusted_root_der, accept_unsigned_qemu, region):
        self.app = app
        self.trusted_root_der = trusted_root_der
        self.accept_unsigned_qemu = accept_unsigned_qemu
        self.region = region
        self.lock = threading.Lock()
        self.log = []
        self.corruption = None
        self.clear_plaintext = False
        self.plaintext_field = itertools.cycle(("omit", "null", "empty"))

    # -- control ---------------------------------------------------------------------------

    def set_mode(self, mode):
        corruption = mode.get("corruption")
        if corruption not in (None, *cms.CORRUPTIONS):
            raise ValueError(f"unknown corruption {corruption!r}")
        with self.lock:
            self.corruption = corruption
            self.clear_plaintext = bool(mode.get("clear_plaintext", False))

    def entries(self):
        with self.lock:
            return list(self.log)

    def clear_log(self):
        with self.lock:
            self.log.clear()

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        entry = {"target": target, "path": environ.get("PATH_INFO", ""), "recipient": False}
        try:
            if target in ATTESTED_OPERATIONS:
                status, headers, out = self._attested(environ, target, body, entry)
            else:
                status, headers, out = self._forward(environ)
        except KmsError as e:
            status, headers, out = _kms_error(e)
            entry["error"] = e.kind
        entry["status"] = int(status.split()[0])
        with self.lock:
            self.log.append(entry)
        start_response(status, headers)
        return [out]

    def _forward(self, environ):
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        out = b"".join(self.app(environ, capture))
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(out))))
        return captured["status"], headers, out

    def _attested(self, environ, target, body, entry):
        request = json.loads(body or b"{}")
        recipient = request.get("Recipient")
        pcrs = spki = None
        if recipient is not None:
            entry["recipient"] = True
            pcrs, spki = self._check_recipient(recipient)
        status, headers, out = self._forward(environ)
        if not status.startswith("200"):
            return status, headers, out
        response = json.loads(out)
        key_id = response.get("KeyId") or request.get("KeyId")
        if key_id:
            decision, sid = self._decide(environ, key_id, ATTESTED_OPERATIONS[target], pcrs)
            entry["decision"], entry["sid"] = decision, sid
            if decision != "allow":
                raise KmsError(400, "AccessDeniedException", self._denial(environ, target, key_id))
        if recipient is not None:
            self._rewrap(response, spki)
        out = json.dumps(response).encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(out))))
        return status, headers, out

    def _check_recipient(self, recipient):
        if recipient.get("KeyEncryptionAlgorithm") != ALGORITHM:
            raise KmsError(
                400,
                "ValidationException",
                f"1 validation error detected: Value at 'recipient.keyEncryptionAlgorithm' "
                f"failed to satisfy constraint: Member must satisfy enum value set: [{ALGORITHM}]",
            )
        try:
            document = base64.b64decode(recipient.get("AttestationDocument", ""), validate=True)
            return attestation.verify(document, self.trusted_root_der, self.accept_unsigned_qemu)
        except (ValueError, attestation.Invalid) as e:
            raise KmsError(400, "ValidationException", f"Invalid attestation document: {e}")

    def _decide(self, environ, key_id, action, pcrs):
        caller, account = self._caller(environ)
        key_id = key_id.split(":key/")[-1]
        key = kms_backends[account][self.region].keys.get(key_id)
        if key is None:
            return "deny", None
        return policy.evaluate(json.loads(key.policy), caller, action, pcrs)

    def _caller(self, environ):
        match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        access_key = match.group(1) if match else ""
        for account, partitions in list(sts_backends.items()):
            role = partitions["aws"].get_assumed_role_from_access_key(access_key)
            if role is not None:
                return role.arn, account
        for account, partitions in list(iam_backends.items()):
            key = partitions["aws"].access_keys.get(access_key)
            if key is not None:
                return f"arn:aws:iam::{account}:user/{key.user_name}", account
        return "anonymous", "123456789012"

    def _denial(self, environ, target, key_id):
        caller, _ = self._caller(environ)
        action = ATTESTED_OPERATIONS[target]
        return (
            f"User: {caller} is not authorized to perform: {action} on resource: {key_id} "
            f"because no resource-based policy allows the {action} action"
        )

    def _rewrap(self, response, spki):
        plaintext = base64.b64decode(response.pop("Plaintext", "") or "")
        with self.lock:
            corruption, clear = self.corruption, self.clear_plaintext
            field = next(self.plaintext_field)
        if clear:
            response["Plaintext"] = base64.b64encode(plaintext).decode()
            return
        blob = cms.envelope(spki, plaintext, cms.next_shape(), corruption)
        response["CiphertextForRecipient"] = base64.b64encode(blob).decode()
        if field == "null":
            response["Plaintext"] = None
        elif field == "empty":
            response["Plaintext"] = ""


def _kms_error(error):
    body = json.dumps({"__type": error.kind, "message": error.message}).encode()
    status = {400: "400 Bad Request", 403: "403 Forbidden"}.get(error.status, f"{error.status} Error")
    return (
        status,
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))],
        body,
    )
