#!/usr/bin/env python3
"""One XML-RPC call with Python's standard xmlrpc.client, unmodified: what a SEMS
webconference client does.  Prints one JSON line: {"result": ...} or
{"fault": [code, string]}.

  wc_call.py http://127.0.0.1:8090/ di '["webconference", "roomCreate", "4711"]'
  wc_call.py http://127.0.0.1:8090/ webconference.roomInfo '["4711", "123456"]'
  wc_call.py http://127.0.0.1:8090/ system.multicall '[[{"methodName": "calls", "params": []}]]'
"""
import json, sys, xmlrpc.client

def main():
    url, method = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
    srv = xmlrpc.client.ServerProxy(url)
    try:
        # a dotted name is sent as is (ServerProxy joins attribute names with '.')
        result = getattr(srv, method)(*args)
        print(json.dumps({"result": result}))
    except xmlrpc.client.Fault as f:
        print(json.dumps({"fault": [f.faultCode, f.faultString]}))

if __name__ == "__main__":
    main()
