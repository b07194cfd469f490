#!/usr/bin/env python3
"""A webhook receiver for the quickstart: prints every delivery pipehook sends and checks its signature.

    python3 examples/receiver.py            # listens on 127.0.0.1:9000, the payloadUrl of examples/hook.json

It checks `Pulumi-Webhook-Signature` (hex HMAC-SHA256 of the body with the hook's secret, the `secret` in
examples/hook.json) and answers 200 when it matches, 401 when it does not, so a wrong secret shows up in
`pipehook deliveries list` as a failed delivery. Standard library only.
"""
import hashlib
import hmac
import http.server
import json
import os
import sys

HOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hook.json")
SECRET = json.load(open(HOOK)).get("secret", "").encode()
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9000


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        want = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        got = self.headers.get("Pulumi-Webhook-Signature", "")
        ok = hmac.compare_digest(want, got)
        kind = self.headers.get("Pulumi-Webhook-Kind", "?")
        try:
            event = json.loads(body)
        except ValueError:
            event = body.decode(errors="replace")
        print(f"{kind}: signature {'ok' if ok else 'WRONG'}\n{json.dumps(event, indent=2)}", flush=True)
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    print(f"receiving on http://127.0.0.1:{PORT}/ (Ctrl-C stops)", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Receiver).serve_forever()
