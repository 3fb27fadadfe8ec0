#!/usr/bin/python3
"""A scriptable HTTP(S) server for dropq's HTTP handler tests.

Standard library only (Debian's /usr/bin/python3). One thread per
connection; every request is read whole (hashed as it arrives, never kept)
and logged as one JSON line once it is answered:

  {"seq": n, "start": t, "end": t, "method": "PUT", "path": "/up/a.pdf",
   "headers": {"lower-case name": "value", ...}, "size": bytes,
   "sha256": hex, "status": 200, "try": k}

`start` is when the request line arrived and `end` when the answer was
about to be sent (unix seconds, float); `try` counts the requests for that path (1
first). What the server answers depends on the file name, the last path
component before any '?', so that one run can mix behaviours:

  s503-*   503 to the first two tries, then 200
  r429-*   429 with "Retry-After: <--retry-after>" to the first try, then 200
  b400-*   400 always
  stall-*  reads the body, then sleeps --stall-s before answering 200
  slow-*   sleeps --stall-s before reading the body (the sender's buffers fill);
           its body is counted, not hashed ("sha256": "")
  redir-*  307 to --redirect-to (+ the same path) on the first try, then 200
  anything else: 200 after --delay-ms

The answer's body is "ok <path>\n" (or "error <status>\n"). Writes the port
it listens on to --port-file once it accepts connections. With --cert and
--key it speaks TLS only.
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--stall-s", type=float, default=5.0)
    ap.add_argument("--retry-after", default="2")
    ap.add_argument("--redirect-to", default="")
    args = ap.parse_args()

    log = open(args.log, "a", buffering=1)
    lock = threading.Lock()
    tries = {}
    seq = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: the JSON log says it all
            pass

        def setup(self):
            super().setup()
            # The answer goes out in two writes (headers, body): without this,
            # Nagle holds the second until the client's delayed ACK (40 ms).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle_one(self):
            start = time.time()
            slow = urllib.parse.unquote(self.path.split("?")[0].rsplit("/", 1)[-1]).startswith("slow-")
            if slow:
                time.sleep(args.stall_s)
            length = int(self.headers.get("Content-Length", "0") or 0)
            h = hashlib.sha256()
            size = 0
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    line = self.rfile.readline()
                    n = int(line.strip().split(b";")[0], 16)
                    if n == 0:
                        self.rfile.readline()
                        break
                    data = self.rfile.read(n)
                    h.update(data)
                    size += len(data)
                    self.rfile.readline()
            else:
                left = length
                while left > 0:
                    data = self.rfile.read(min(left, 1 << 20))
                    if not data:
                        break
                    if not slow:
                        h.update(data)
                    size += len(data)
                    left -= len(data)
            path = self.path
            name = urllib.parse.unquote(path.split("?")[0].rsplit("/", 1)[-1])
            with lock:
                tries[path.split("?")[0]] = tries.get(path.split("?")[0], 0) + 1
                k = tries[path.split("?")[0]]
            status, extra = 200, {}
            if name.startswith("s503-") and k <= 2:
                status = 503
            elif name.startswith("r429-") and k == 1:
                status, extra = 429, {"Retry-After": args.retry_after}
            elif name.startswith("b400-"):
                status = 400
            elif name.startswith("stall-"):
                time.sleep(args.stall_s)
            elif name.startswith("redir-") and k == 1 and args.redirect_to:
                status, extra = 307, {"Location": args.redirect_to + path}
            elif args.delay_ms:
                time.sleep(args.delay_ms / 1000.0)
            body = (("ok %s\n" % path) if status == 200 else ("error %d\n" % status)).encode()
            # The request is over for the server once it answers: taken before
            # the answer leaves, so that a request the client sends after
            # reading it can never seem to overlap it (this thread may be
            # descheduled between sending and logging).
            end = time.time()
            try:
                self.send_response(status)
                for key, v in extra.items():
                    self.send_header(key, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except OSError:
                pass  # the client gave up (a timeout): still logged
            with lock:
                seq[0] += 1
                rec = {"seq": seq[0], "start": start, "end": end, "method": self.command,
                       "path": path, "headers": {k.lower(): v for k, v in self.headers.items()},
                       "size": size, "sha256": "" if slow else h.hexdigest(), "status": status,
                       "try": k}
                log.write(json.dumps(rec) + "\n")

        do_PUT = handle_one
        do_POST = handle_one

    srv = Server(("127.0.0.1", 0), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
