"""A Python app (standard library only) run under `trellis sidecar`: it serves inbound requests,
keeps a counter in the sidecar's state API with compare-and-set, publishes messages and receives
the deliveries of its subscription. Used by the e2e tests and shown in docs/sidecar.md."""

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIDECAR = os.environ["TRELLIS_SIDECAR_URL"]
TOKEN = os.environ["TRELLIS_SIDECAR_TOKEN"]
PORT = int(os.environ["PORT"])
DELIVERED = os.environ.get("DELIVERED_FILE")
CRASH_MARKER = os.environ.get("CRASH_ON_FIRST_DELIVERY")


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


def increment(key):
    """Read, add one, write back only if nobody wrote in between (If-Match); retry on 412."""
    while True:
        status, headers, value = sidecar("GET", "/v1/state/" + key)
        if status == 404:
            status, _, _ = sidecar("PUT", "/v1/state/" + key, b"1", {"If-None-Match": "*"})
            if status == 200:
                return 1
            continue
        n = value + 1
        status, _, _ = sidecar("PUT", "/v1/state/" + key, str(n).encode(), {"If-Match": headers["ETag"]})
        if status == 200:
            return n
        if status != 412:
            raise RuntimeError("state API answered %d" % status)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffer each response and send it in one write when the handler returns. Unbuffered, the
    # status line and headers go out before the body: a /crash in another thread could then kill
    # the app between the two writes, and the sidecar, having passed the headers on, can only cut
    # that client's connection. Real servers send a small answer in one piece too.
    wbufsize = 64 * 1024

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Pid", str(os.getpid()))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, "ok", "text/plain")
        if self.path == "/crash":
            os._exit(3)
        if self.path.startswith("/slow"):
            print("slow request started", flush=True)
            time.sleep(float(self.path.split("=")[1]) / 1000 if "=" in self.path else 0.3)
            return self.reply(200, json.dumps({"slow": True}))
        if self.path.startswith("/secret/"):
            status, _, body = sidecar("GET", "/v1/secrets/" + self.path[len("/secret/"):])
            return self.reply(status, json.dumps(body))
        return self.reply(200, json.dumps({"hello": "python", "path": self.path,
                                           "requestId": self.headers.get("X-Request-Id")}))

    def do_POST(self):
        body = self.body()
        if self.path.startswith("/count/"):
            return self.reply(200, json.dumps({"count": increment(self.path[len("/count/"):])}))
        if self.path.startswith("/publish/"):
            status, _, res = sidecar("POST", "/v1/publish/" + self.path[len("/publish/"):], body,
                                     {"Content-Type": "application/json"})
            return self.reply(status, json.dumps(res))
        if self.path == "/deliveries":
            count = self.headers.get("X-Trellis-Delivery-Count")
            if CRASH_MARKER and not os.path.exists(CRASH_MARKER):
                open(CRASH_MARKER, "w").close()
                time.sleep(0.3)  # let the publish that caused this delivery get its answer
                os._exit(4)  # crash mid-delivery: never answers
            if DELIVERED:
                with open(DELIVERED, "a") as f:
                    f.write(json.dumps({"body": body.decode(), "count": count}) + "\n")
            return self.reply(204, b"")
        return self.reply(404, json.dumps({"error": "not found"}))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        # Finish what is in flight, then exit 0: the sidecar already drained inbound.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print("python app listening on %d" % PORT, flush=True)
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
