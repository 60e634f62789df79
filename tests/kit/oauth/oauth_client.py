#!/usr/bin/env python3
"""An OAuth2 client of Switchboard's /auth built from unmodified libraries.

requests-oauthlib (LegacyApplicationClient = the OAuth2 password grant) gets a token
from POST /auth with the app's credentials in HTTP Basic; PyJWT verifies that token
against /.well-known/jwks.json; the same session then calls GET /auth. Prints one JSON
object: {"token": {...}, "header": {...}, "claims": {...}, "auth": {...}}.

Usage: oauth_client.py BASE_URL CLIENT_ID SECRET USERNAME PASSWORD [--ca CERT]
Exits 1 with the error on stdout when the token is refused or does not verify.
"""
import argparse
import json
import os
import sys

import jwt
import requests
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session


def main():
    ap = argparse.ArgumentParser()
    for a in ("base", "client_id", "secret", "username", "password"):
        ap.add_argument(a)
    ap.add_argument("--ca", help="CA certificate for an https BASE_URL")
    args = ap.parse_args()
    if args.base.startswith("http://"):
        # oauthlib refuses plain HTTP unless told this is a test.
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    verify = args.ca or True
    session = OAuth2Session(client=LegacyApplicationClient(client_id=args.client_id))
    try:
        token = session.fetch_token(
            token_url=args.base + "/auth",
            username=args.username,
            password=args.password,
            client_id=args.client_id,
            client_secret=args.secret,
            verify=verify,
        )
    except Exception as e:  # the library's own error for a refused grant
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    access = token["access_token"]
    jwks = jwt.PyJWKClient(args.base + "/.well-known/jwks.json",
                           ssl_context=_ssl_context(args.ca))
    key = jwks.get_signing_key_from_jwt(access)
    claims = jwt.decode(access, key.key, algorithms=["ES256"],
                        options={"require": ["exp", "iat", "sub", "jti"]})
    info = session.get(args.base + "/auth", verify=verify)
    print(json.dumps({
        "token": {k: token[k] for k in ("token_type", "access_token", "expires_in")},
        "header": jwt.get_unverified_header(access),
        "claims": claims,
        "auth": {"status": info.status_code, "body": info.json()},
    }))
    return 0


def _ssl_context(ca):
    import ssl
    return ssl.create_default_context(cafile=ca) if ca else None


if __name__ == "__main__":
    sys.exit(main())
