"""Schemathesis hooks for tests/openapi_conformance.rs.

Schemathesis draws dial-out targets from the documented pattern, so they name random
hosts: DNS look-ups leaving the machine, and INVITEs to whatever listens on this host
(`sip:x@0` is 0.0.0.0:5060, `127.0.0.1:<port>` may be another test's SIP peer). This
hook keeps every INVITE inside the test: the host and port of a SIP target become
SWITCHBOARD_DIAL_SINK (`127.0.0.1:<port>`, a port of the test's own block that nothing
listens on); user, scheme, brackets and parameters stay as drawn. Numbers are left
alone: the server sends them to its gateway, which the test points at the same sink.
Schemathesis re-validates a case a hook has edited, so its checks judge what was sent.
"""

import os
import re

import schemathesis

SINK = os.environ["SWITCHBOARD_DIAL_SINK"]
DIAL_PATHS = {"/v1/calls", "/rest/v1/uc/conferences/{confid}/participants"}
# [<]sip[s]:[user@]host[:port]rest  or  user@host[:port]rest
TARGET = re.compile(r"^(<?sips?:(?:[^@<>:;]+@)?|[^@<>:;]+@)(\[[^\]]*\]|[A-Za-z0-9._-]+)(:[0-9]*)?(.*)$", re.S)


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() != "POST" or case.path not in DIAL_PATHS:
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("to"), str):
        return
    m = TARGET.match(body["to"])
    if m:
        body["to"] = f"{m.group(1)}{SINK}{m.group(4)}"
