#!/usr/bin/env python3
"""An MX Proxy (reference 001) app session against Switchboard, with `requests`.

Logs in with POST /auth (the OAuth2 password grant, app credentials in HTTP Basic, as
MX apps do), then runs the requests of a plan with the Bearer token and prints one
JSON object: {"token": "...", "results": [{"status", "content_type", "allow", "www",
"body"}, ...]}. A body that is not JSON is given as a string ("" when empty).

The plan is a JSON list on stdin; each item is
  {"method": "GET", "path": "/calls?timestamp=0", "json": {...}?, "form": {...}?,
   "data": "raw"?, "content_type": "..."?, "auth": false?, "base": "http://..."?}
`save: "<file>"` writes the raw body to that file (a download);
`auth: false` sends no Authorization header; `base` sends to another listener (the
admin web) with `basic: [user, password]` credentials instead of the token.

Usage: mx_session.py BASE_URL CLIENT_ID SECRET USERNAME PASSWORD < plan.json
Exits 1 (with the error on stdout) if the login fails.
"""
import json
import sys

import requests


def main():
    base, client_id, secret, username, password = sys.argv[1:6]
    plan = json.load(sys.stdin)
    s = requests.Session()
    r = s.post(base + "/auth", auth=(client_id, secret),
               data={"grant_type": "password", "username": username, "password": password}, timeout=10)
    if r.status_code != 200:
        print(json.dumps({"error": f"login: {r.status_code} {r.text}"}))
        return 1
    token = r.json()["access_token"]
    results = []
    for step in plan:
        headers = {}
        auth = None
        if "basic" in step:
            auth = tuple(step["basic"])
        elif step.get("auth", True):
            headers["Authorization"] = "Bearer " + token
        if "content_type" in step:
            headers["Content-Type"] = step["content_type"]
        kwargs = {"headers": headers, "auth": auth, "timeout": 10, "allow_redirects": False}
        if "json" in step:
            kwargs["json"] = step["json"]
        if "form" in step:
            kwargs["data"] = step["form"]
        if "data" in step:
            kwargs["data"] = step["data"]
        resp = s.request(step["method"], step.get("base", base) + step["path"], **kwargs)
        if "save" in step:
            with open(step["save"], "wb") as f:
                f.write(resp.content)
            body = len(resp.content)
        else:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
        results.append({
            "status": resp.status_code,
            "content_type": resp.headers.get("Content-Type", ""),
            "allow": resp.headers.get("Allow", ""),
            "www": resp.headers.get("WWW-Authenticate", ""),
            "disposition": resp.headers.get("Content-Disposition", ""),
            "body": body,
        })
    print(json.dumps({"token": token, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
