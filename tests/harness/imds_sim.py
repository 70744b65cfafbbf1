#!/usr/bin/env python3
"""IMDSv2 simulator for tests (standard library only), independent of the code under test.

Serves what the supervisor's credentials service uses, with IMDSv2's rules:
  PUT  /latest/api/token            X-aws-ec2-metadata-token-ttl-seconds: 1..21600 -> token, else 400;
                                    a request with X-Forwarded-For is refused (403), as IMDS does
  GET  /latest/meta-data/iam/security-credentials/        -> role name
  GET  /latest/meta-data/iam/security-credentials/ROLE    -> credentials JSON
  GET  /latest/meta-data/instance-id                      -> --instance-id
  Any GET without a token, or with an unknown or expired one -> 401.

Knobs (command line, or POST /_sim/config with a JSON object of the same names):
  --expiry-secs N        credentials expire N seconds after they are issued (default 3600)
  --fail-credentials N   the next N credential GETs answer 500
  --fail-token N         the next N token PUTs answer 500
  --role NAME            the instance role's name (default nitro-provision-test); "" = no role (404)
  --keys-file PATH       serve these credentials (JSON: access_key_id, secret_access_key,
                         session_token; e.g. a moto-issued role session) instead of random ones
GET /_sim/stats returns request counters and the serial of the last credentials issued.
Prints "listening on 127.0.0.1:PORT" on stdout once bound (port 0 picks a free one).
"""

import argparse
import datetime
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_PATH = "/latest/api/token"
ROLE_PREFIX = "/latest/meta-data/iam/security-credentials/"


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.expiry_secs = args.expiry_secs
        self.fail_credentials = args.fail_credentials
        self.fail_token = args.fail_token
        self.role = args.role
        self.keys = None
        if args.keys_file:
            with open(args.keys_file) as f:
                self.keys = json.load(f)
        self.instance_id = args.instance_id
        self.tokens = {}  # token -> monotonic deadline
        self.serial = 0
        self.stats = {"token_puts": 0, "token_rejected": 0, "unauthorized": 0,
                      "role_gets": 0, "credential_gets": 0, "credential_failures": 0}

    def count(self, name):
        self.stats[name] += 1


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    server_version = "EC2ws"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read stats instead
        pass

    @property
    def state(self):
        return self.server.state

    def reply(self, status, body=b"", content_type="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_PUT(self):
        self.body()
        if self.path != TOKEN_PATH:
            return self.reply(404, "Not Found")
        st = self.state
        with st.lock:
            st.count("token_puts")
            if self.headers.get("X-Forwarded-For"):
                st.count("token_rejected")
                return self.reply(403, "Forbidden")
            if st.fail_token > 0:
                st.fail_token -= 1
                return self.reply(500, "Internal Server Error")
            raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            try:
                ttl = int(raw)
            except (TypeError, ValueError):
                ttl = 0
            if not 1 <= ttl <= 21600:
                st.count("token_rejected")
                return self.reply(400, "Bad Request")
            token = secrets.token_urlsafe(32)
            st.tokens[token] = time.monotonic() + ttl
        self.reply(200, token)

    def authorized(self):
        token = self.headers.get("X-aws-ec2-metadata-token")
        st = self.state
        deadline = st.tokens.get(token) if token else None
        if deadline is None or time.monotonic() >= deadline:
            st.count("unauthorized")
            return False
        return True

    def do_GET(self):
        st = self.state
        if self.path == "/_sim/stats":
            with st.lock:
                doc = dict(st.stats, serial=st.serial, tokens=len(st.tokens))
            return self.reply(200, json.dumps(doc), "application/json")
        with st.lock:
            if not self.authorized():
                return self.reply(401, "Unauthorized")
            if self.path == "/latest/meta-data/instance-id":
                return self.reply(200, st.instance_id)
            if self.path == ROLE_PREFIX:
                st.count("role_gets")
                if not st.role:
                    return self.reply(404, "Not Found")
                return self.reply(200, st.role)
            if self.path.startswith(ROLE_PREFIX):
                role = self.path[len(ROLE_PREFIX):]
                if not st.role or role != st.role:
                    return self.reply(404, "Not Found")
                st.count("credential_gets")
                if st.fail_credentials > 0:
                    st.fail_credentials -= 1
                    st.count("credential_failures")
                    return self.reply(500, "Internal Server Error")
                st.serial += 1
                now = time.time()
                doc = {
                    "Code": "Success",
                    "LastUpdated": iso(now),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIASIM%013d" % st.serial,
                    "SecretAccessKey": secrets.token_urlsafe(30),
                    "Token": secrets.token_urlsafe(200),
                    "Expiration": iso(now + st.expiry_secs),
                }
                if st.keys:
                    doc["AccessKeyId"] = st.keys["access_key_id"]
                    doc["SecretAccessKey"] = st.keys["secret_access_key"]
                    doc["Token"] = st.keys["session_token"]
                return self.reply(200, json.dumps(doc), "text/plain")
        self.reply(404, "Not Found")

    def do_POST(self):
        if self.path != "/_sim/config":
            return self.reply(404, "Not Found")
        try:
            knobs = json.loads(self.body() or b"{}")
        except ValueError:
            return self.reply(400, "Bad Request")
        st = self.state
        with st.lock:
            for key in ("expiry_secs", "fail_credentials", "fail_token", "role"):
                if key in knobs:
                    setattr(st, key, knobs[key])
            if knobs.get("expire_tokens"):
                st.tokens = {t: 0 for t in st.tokens}
        self.reply(204)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--expiry-secs", type=int, default=3600)
    p.add_argument("--fail-credentials", type=int, default=0)
    p.add_argument("--fail-token", type=int, default=0)
    p.add_argument("--role", default="nitro-provision-test")
    p.add_argument("--keys-file", default=None)
    p.add_argument("--instance-id", default="i-0123456789abcdef0")
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
