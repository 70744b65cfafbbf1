"""awsim: moto with an attested-KMS front, for the runtime's KMS/SSM/S3 test suites.

    python awsim.py --port P --control-port C --trusted-root ROOT.pem --state-dir DIR
                    [--region us-east-1] [--accept-unsigned-qemu]

- https://localhost:P — the AWS endpoint (KMS, SSM, S3, IAM, STS …): moto behind the front,
  TLS with a certificate from a CA generated at start (DIR/tls-ca.pem).
- http://127.0.0.1:C — control, for the harness only:
  GET /_awsim/health; POST /_awsim/bootstrap {"role_policy": {...}} → admin and enclave-role
  credentials, then moto's SigV4/IAM checking is switched on; GET /_awsim/log and POST
  /_awsim/log/clear (every request the front saw); POST /_awsim/mode {"corruption": null |
  "flip" | "v0" | "pkcs1v15" | "trailing", "clear_plaintext": bool}.
"""

import argparse
import datetime
import ipaddress
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boto3  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from moto import settings  # noqa: E402
from moto.core.responses import ActionAuthenticatorMixin  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402

import front  # noqa: E402

ACCOUNT = "123456789012"


def tls_material(state_dir):
    """A CA (written to tls-ca.pem) and a server certificate for localhost / 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "awsim test TLS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path = os.path.join(state_dir, "tls-ca.pem")
    cert_path = os.path.join(state_dir, "tls-server.pem")
    key_path = os.path.join(state_dir, "tls-server.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    with open(ca_path + ".tmp", "wb") as f:
        f.write(ca.public_bytes(pem))
    return ca_path, cert_path, key_path


def set_auth(enabled):
    """moto's global switch: count 0 checks every request, infinity none (reset-auth)."""
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if enabled else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def bootstrap(endpoint, ca_path, region, role_policy):
    """Auth off → reset → admin user (inline `*`) → enclave role with `role_policy` → its STS
    session → auth on. Returns both identities' credentials."""
    set_auth(False)
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
    client = lambda service, **kw: boto3.client(  # noqa: E731
        service, endpoint_url=endpoint, region_name=region, verify=ca_path, **kw
    )
    boot = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
    iam = client("iam", **boot)
    iam.create_user(UserName="admin")
    iam.put_user_policy(
        UserName="admin",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    admin = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="enclave", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(
        RoleName="enclave", PolicyName="enclave", PolicyDocument=json.dumps(role_policy)
    )
    sts = client(
        "sts",
        aws_access_key_id=admin["access_key_id"],
        aws_secret_access_key=admin["secret_access_key"],
    )
    session = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="i-0123456789abcdef0")
    creds = session["Credentials"]
    set_auth(True)
    return {
        "account": ACCOUNT,
        "admin": admin,
        "role": {
            "arn": role["Arn"],
            "session_arn": session["AssumedRoleUser"]["Arn"],
            "access_key_id": creds["AccessKeyId"],
            "secret_access_key": creds["SecretAccessKey"],
            "session_token": creds["SessionToken"],
        },
    }


class Control:
    """The harness-only HTTP API."""

    def __init__(self, the_front, endpoint, ca_path, region):
        self.front, self.endpoint, self.ca_path, self.region = the_front, endpoint, ca_path, region
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        try:
            if path == "/_awsim/health":
                result = {"ok": True}
            elif path == "/_awsim/log" and method == "GET":
                result = self.front.entries()
            elif path == "/_awsim/log/clear" and method == "POST":
                self.front.clear_log()
                result = {"ok": True}
            elif path == "/_awsim/mode" and method == "POST":
                self.front.set_mode(body)
                result = {"ok": True}
            elif path == "/_awsim/bootstrap" and method == "POST":
                with self.lock:
                    result = bootstrap(self.endpoint, self.ca_path, self.region, body["role_policy"])
                self.front.clear_log()
            else:
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [b'{"error":"no such control endpoint"}']
        except Exception as e:  # the harness shows this text in its panic
            start_response("500 Internal Server Error", [("Content-Type", "application/json")])
            return [json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()]
        out = json.dumps(result).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--trusted-root", required=True, help="PEM root of attestation documents")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--accept-unsigned-qemu",
        action="store_true",
        help="accept QEMU's unsigned attestation documents (off by default)",
    )
    args = parser.parse_args()
    with open(args.trusted_root, "rb") as f:
        root = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
    ca_path, cert_path, key_path = tls_material(args.state_dir)
    moto_app = DomainDispatcherApplication(create_backend_app)
    the_front = front.Front(moto_app, root, args.accept_unsigned_qemu, args.region)
    endpoint = f"https://localhost:{args.port}"
    api = make_server(
        "127.0.0.1", args.port, the_front, threaded=True,
        request_handler=MotoRequestHandler, ssl_context=(cert_path, key_path),
    )
    control = make_server(
        "127.0.0.1", args.control_port, Control(the_front, endpoint, ca_path, args.region), threaded=True
    )
    threading.Thread(target=api.serve_forever, daemon=True).start()
    os.replace(ca_path + ".tmp", ca_path)  # the harness waits for this file
    control.serve_forever()


if __name__ == "__main__":
    main()
