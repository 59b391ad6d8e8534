"""The shop's wishlist service, in Python with the standard library only, run under
`trellis sidecar` (sidecar.yaml). It keeps each customer's wishlist in the sidecar's state API
(compare-and-set with If-Match, so two requests at once never lose an item), publishes
`wishlist.added`, and counts popular products from the deliveries of that topic.

  GET    /wishlist/CUSTOMER             the list
  POST   /wishlist/CUSTOMER             {"productId": 3}: add it
  DELETE /wishlist/CUSTOMER/PRODUCT     remove it
  GET    /popular                       how many wishlists each product was added to
"""

import json
import os
import re
import signal
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIDECAR = os.environ["TRELLIS_SIDECAR_URL"]
TOKEN = os.environ["TRELLIS_SIDECAR_TOKEN"]
PORT = int(os.environ["PORT"])
CUSTOMER = re.compile(r"^/wishlist/([A-Za-z0-9_-]{1,64})(?:/(\d{1,9}))?$")


def sidecar(method, path, body=None, headers=None):
    """Calls the platform API; returns (status, headers, parsed body or None)."""
    req = urllib.request.Request(SIDECAR + path, method=method, data=body)
    req.add_header("Authorization", "Bearer " + TOKEN)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            raw = res.read()
            return res.status, res.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, err.headers, json.loads(raw) if raw else None


def update(key, change, empty):
    """Read, change, write back only if nobody wrote in between (If-Match); retry on 412."""
    while True:
        status, headers, value = sidecar("GET", "/v1/state/" + key)
        if status == 404:
            new = change(empty)
            cond = {"If-None-Match": "*"}
        elif status == 200:
            new = change(value)
            cond = {"If-Match": headers["ETag"]}
        else:
            raise RuntimeError("state API answered %d" % status)
        status, _, _ = sidecar("PUT", "/v1/state/" + key, json.dumps(new).encode(), cond)
        if status == 200:
            return new
        if status != 412:
            raise RuntimeError("state API answered %d" % status)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # each answer in one write

    def log_message(self, fmt, *args):
        pass  # the sidecar writes the access log

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"ok": True})
        if self.path == "/popular":
            status, _, value = sidecar("GET", "/v1/state/popular")
            return self.reply(200, value if status == 200 else {})
        m = CUSTOMER.match(self.path)
        if not m or m.group(2):
            return self.reply(404, {"error": "GET /wishlist/CUSTOMER"})
        status, _, value = sidecar("GET", "/v1/state/wishlist/" + m.group(1))
        return self.reply(200, {"customer": m.group(1), "items": value if status == 200 else []})

    def do_POST(self):
        if self.path == "/deliveries":
            event = self.body() or {}
            pid = str(event.get("productId"))
            update("popular", lambda counts: {**counts, pid: counts.get(pid, 0) + 1}, {})
            return self.reply(200, {"counted": pid})
        m = CUSTOMER.match(self.path)
        body = self.body()
        if not m or m.group(2):
            return self.reply(404, {"error": "POST /wishlist/CUSTOMER"})
        if not isinstance(body, dict) or not isinstance(body.get("productId"), int):
            return self.reply(400, {"error": 'send {"productId": 3}'})
        customer, pid = m.group(1), body["productId"]
        items = update("wishlist/" + customer, lambda l: l if pid in l else l + [pid], [])
        sidecar("POST", "/v1/publish/wishlist.added",
                json.dumps({"customer": customer, "productId": pid}).encode(),
                {"Content-Type": "application/json", "X-Trellis-Key": customer})
        return self.reply(200, {"customer": customer, "items": items})

    def do_DELETE(self):
        m = CUSTOMER.match(self.path)
        if not m or not m.group(2):
            return self.reply(404, {"error": "DELETE /wishlist/CUSTOMER/PRODUCT"})
        pid = int(m.group(2))
        items = update("wishlist/" + m.group(1), lambda l: [p for p in l if p != pid], [])
        return self.reply(200, {"customer": m.group(1), "items": items})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True
    # The sidecar has drained inbound requests before it sends SIGTERM: finish, then exit 0.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("wishlist listening on %d" % PORT, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
