"""Schemathesis hooks for tests/openapi_conformance.rs.

Schemathesis draws dial-out targets from the documented pattern, so they name random
hosts: DNS look-ups leaving the machine, and INVITEs to whatever listens on this host
(`sip:x@0` is 0.0.0.0:5060, `127.0.0.1:<port>` may be another test's SIP peer). This
hook keeps every INVITE inside the test: the host and port of a SIP target become
SWITCHBOARD_DIAL_SINK (`127.0.0.1:<port>`, a port of the test's own block that nothing
listens on); user, scheme, brackets and parameters stay as drawn. Numbers are left
alone: the server sends them to its gateway, which the test points at the same sink.
Schemathesis re-validates a case a hook has edited, so its checks judge what was sent.

Webhooks get the same treatment: the host and port of a webhook `url` become the sink
(a TCP connection there is refused at once), so deliveries never leave the machine.
And `GET /v1/events/stream` follows live events for ever unless `follow` is false: the
hook makes an absent or true `follow` false (still valid input), so each request ends
once the backlog is sent instead of running into the request timeout.
"""

import os
import re

import schemathesis

SINK = os.environ["SWITCHBOARD_DIAL_SINK"]
DIAL_PATHS = {"/v1/calls", "/rest/v1/uc/conferences/{confid}/participants"}
# [<]sip[s]:[user@]host[:port]rest  or  user@host[:port]rest
TARGET = re.compile(r"^(<?sips?:(?:[^@<>:;]+@)?|[^@<>:;]+@)(\[[^\]]*\]|[A-Za-z0-9._-]+)(:[0-9]*)?(.*)$", re.S)


WEBHOOK_PATHS = {"/v1/webhooks", "/v1/webhooks/{webhook_id}"}
# api::formats::WEBHOOK_URL, with groups: scheme, host, port, rest. Only a valid URL is
# rewritten (an invalid one must stay invalid: Schemathesis expects it refused).
WEBHOOK_URL = re.compile(
    r"^(https?://)([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])"
    r"(:(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?([/?][!-~]*)?\Z"
)


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.path == "/v1/events/stream":
        query = case.query if isinstance(case.query, dict) else {}
        if query.get("follow") in (None, "true", "1", True):
            query["follow"] = "false"
            case.query = query
        return
    if case.path in WEBHOOK_PATHS and case.method.upper() in ("POST", "PATCH"):
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("url"), str):
            m = WEBHOOK_URL.match(body["url"])
            if m:
                body["url"] = f"{m.group(1)}{SINK}{m.group(4) or ''}"
        return
    if case.method.upper() != "POST" or case.path not in DIAL_PATHS:
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("to"), str):
        return
    m = TARGET.match(body["to"])
    if m:
        body["to"] = f"{m.group(1)}{SINK}{m.group(4)}"
