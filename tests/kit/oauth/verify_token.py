#!/usr/bin/env python3
"""PyJWT verifies a Switchboard token against the server's JWKS, fetched now.

Usage: verify_token.py BASE_URL TOKEN. Prints {"claims": …} or {"error": …} (exit 1).
"""
import json
import sys

import jwt


def main():
    base, token = sys.argv[1], sys.argv[2]
    try:
        key = jwt.PyJWKClient(base + "/.well-known/jwks.json", cache_keys=False).get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["ES256"])
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps({"claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
