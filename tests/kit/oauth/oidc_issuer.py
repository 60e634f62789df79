#!/usr/bin/env python3
"""A stand-in OpenID Connect issuer for the federated login test.

Makes an RSA key and an EC P-256 key, serves their public halves at /jwks.json, and
signs id_tokens with PyJWT on request:
  GET /id_token?user=alice[&alg=RS256|ES256][&aud=…][&iss=…][&exp_in=…]
Also counts JWKS fetches (GET /stats → {"jwks_fetches": n}) so the test can check the
server's cache. Usage: oidc_issuer.py PORT ISSUER AUDIENCE. Prints "ready" when serving.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PORT, ISSUER, AUDIENCE = int(sys.argv[1]), sys.argv[2], sys.argv[3]
KEYS = {
    "RS256": ("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "ES256": ("ec-1", ec.generate_private_key(ec.SECP256R1())),
}
STATS = {"jwks_fetches": 0}


def jwks():
    out = []
    for alg, (kid, key) in KEYS.items():
        conv = RSAAlgorithm if alg == "RS256" else ECAlgorithm
        jwk = json.loads(conv.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": alg})
        out.append(jwk)
    return {"keys": out}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/jwks.json":
            STATS["jwks_fetches"] += 1
            return self.reply(jwks())
        if url.path == "/stats":
            return self.reply(STATS)
        if url.path == "/id_token":
            alg = q.get("alg", "RS256")
            kid, key = KEYS[alg]
            now = int(time.time())
            claims = {
                "iss": q.get("iss", ISSUER), "aud": q.get("aud", AUDIENCE), "sub": "oidc-" + q["user"],
                "preferred_username": q["user"], "iat": now, "exp": now + int(q.get("exp_in", "300")),
            }
            headers = {"kid": q.get("kid", kid)}
            return self.reply({"id_token": jwt.encode(claims, key, algorithm=alg, headers=headers)})
        self.reply({"error": "not found"}, 404)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
