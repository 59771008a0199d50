"""range_server.py - a plain HTTP server that serves files with Range (206,
Content-Range), for the object-storage tests and bench/objstore, and that
can misbehave on purpose.

    srv = RangeServer(root_dir); srv.start(); url = srv.url + "/name"
    srv.faults = ["503", None, "trunc"]   # consumed one per GET, in order
    srv.fault_every = (3, "500")          # or: every 3rd GET gets a 500
    srv.always = "500"                    # or: every GET fails
Faults: "503" (an S3 SlowDown XML body), "500", "trunc" (the headers
promise the range, the body stops halfway and the connection closes),
"range" (Content-Range names other bytes), "long" (Content-Length and body
one byte longer than asked), "stall" (headers, then silence for
stall_s seconds).  Counters: gets, faults_sent.
"""
import http.server
import os
import re
import socketserver
import threading
import time

RANGE = re.compile(r"bytes=(\d+)-(\d+)$")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _fault(self):
        srv = self.server.owner
        with srv.lock:
            srv.gets += 1
            f = None
            if srv.always:
                f = srv.always
            elif srv.faults:
                f = srv.faults.pop(0)
            elif srv.fault_every and srv.gets % srv.fault_every[0] == 0:
                f = srv.fault_every[1]
            if f:
                srv.faults_sent += 1
            return f

    def _error(self, code, s3code, msg):
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code><Message>%s</Message></Error>"
                % (s3code, msg)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server.owner
        path = os.path.join(srv.root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            return self._error(404, "NoSuchKey", "no such key")
        size = os.path.getsize(path)
        m = RANGE.match(self.headers.get("Range", ""))
        if not m:
            with open(path, "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(data)
            return
        a, b = int(m.group(1)), min(int(m.group(2)), size - 1)
        fault = self._fault()
        if fault == "503":
            return self._error(503, "SlowDown", "Please reduce your request rate.")
        if fault == "500":
            return self._error(500, "InternalError", "We encountered an internal error.")
        with open(path, "rb") as f:
            f.seek(a)
            data = f.read(b - a + 1)
        first, last = a, b
        if fault == "range":
            first, last = a + 1, b + 1
        if fault == "long":
            data += b"\0"
        self.send_response(206)
        self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"%x-%x"' % (size, int(os.path.getmtime(path))))
        self.end_headers()
        if fault == "stall":
            time.sleep(srv.stall_s)
            self.close_connection = True
            return
        if fault == "trunc":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class RangeServer:
    def __init__(self, root, port=0, tls=None):
        self.root = root
        self.lock = threading.Lock()
        self.faults = []
        self.fault_every = None
        self.always = None
        self.stall_s = 5
        self.gets = 0
        self.faults_sent = 0
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.owner = self
        scheme = "http"
        if tls:
            # tls = (certfile, keyfile): serve https with that certificate.
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.httpd.server_address[1])

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
