#!/usr/bin/env python3
"""Drives the admin web over HTTPS with `requests`, trusting only the given CA file.

Usage: admin_web.py BASE CA ADMIN_PW USER_PW APP_SECRET (admin = bob, user = alice of
alpha.test). Prints a JSON object of what each call answered, and whether any secret
appeared in any answer.
"""
import json
import sys

import requests

base, ca, admin_pw, user_pw, app_secret = sys.argv[1:6]
admin = ("bob@alpha.test", admin_pw)
out = {}
seen = []


def get(path, auth=None):
    r = requests.get(base + path, auth=auth, verify=ca, timeout=10)
    seen.append(r.text)
    return r


out["anonymous"] = get("/apps").status_code
out["user_not_admin"] = get("/apps", ("alice@alpha.test", user_pw)).status_code
for path in ("apps", "connections", "users", "tokens"):
    out[path] = get("/" + path, admin).json()
r = requests.post(base + "/users", data={"login": "alice"}, auth=admin, verify=ca, timeout=10)
seen.append(r.text)
out["logout"] = r.json()
out["secrets_shown"] = any(s in text for text in seen for s in (admin_pw, user_pw, app_secret))
try:
    requests.get(base.replace("https://", "http://") + "/apps", timeout=5)
    out["plain_http_refused"] = False
except requests.RequestException:
    out["plain_http_refused"] = True
print(json.dumps(out))
