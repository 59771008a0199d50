#!/usr/bin/env python3
"""Integration test of libsmoke: start the real smoked (daemon_fixture),
compute the reference continuation with the offline command, start a
scripted SSE server for the failures the daemon cannot produce on demand,
and run the C test program (test_client.c) against both.

Usage: test_client.py PATH/TO/smoked PATH/TO/test_client
Skipped (exit 77) without the model.
"""
import http.server
import json
import os
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

KEY = "client-test-key"
PROMPT = "The capital of France is"
N = 12


def chunk(text, finish=None):
    return json.dumps({"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": "fake",
                       "choices": [{"index": 0, "text": text, "finish_reason": finish}]})


class Fake(http.server.BaseHTTPRequestHandler):
    """Scripts selected by the prompt; replies shaped as smoked's."""
    protocol_version = "HTTP/1.0"

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        script = body.get("prompt")
        if script == "not-json":
            self.reply(200, "application/json", b"<html>proxy error</html>")
            return
        if script == "busy":
            err = {"error": {"message": "the request queue is full (1); try again later",
                             "type": "overloaded_error", "param": None, "code": "queue_full"}}
            self.reply(503, "application/json", json.dumps(err).encode(), {"Retry-After": "3"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        w = self.wfile
        if script == "error-mid-stream":
            w.write(b"data: " + chunk("Hel").encode() + b"\n\n")
            w.flush()
            err = {"error": {"message": "generation failed: boom", "type": "server_error",
                             "param": None, "code": None}}
            w.write(b"data: " + json.dumps(err).encode() + b"\n\ndata: [DONE]\n\n")
        elif script == "no-done":
            w.write(b"data: " + chunk("cut").encode() + b"\n\n")
        elif script == "crlf":
            data = (": hello\r\n\r\ndata: " + chunk("one") + "\r\n\r\ndata: " + chunk(" two") +
                    "\r\n\r\ndata: " + chunk(" three", "stop") + "\r\n\r\ndata: [DONE]\r\n\r\n").encode()
            # Pieces that split a CRLF, a "data:" and a JSON object.
            for part in (data[:9], data[9:10], data[10:30], data[30:71], data[71:]):
                w.write(part)
                w.flush()
        w.flush()

    def reply(self, status, ctype, data, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def main():
    smoked, prog = sys.argv[1], sys.argv[2]
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP
    want = fx.offline(smoked, PROMPT, N)
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    fake_url = "http://127.0.0.1:%d" % fake.server_address[1]
    model_id = os.path.basename(fx.MODEL)[:-len(".gguf")]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(want)
    d = fx.Daemon(smoked, api_key=KEY, extra=["--concurrency", "2"])
    rc = 1
    try:
        with d:
            import subprocess
            r = subprocess.run([prog, d.url, KEY, PROMPT, str(N), f.name, model_id, fake_url], timeout=1200)
            rc = r.returncode
        if d.rc != 0:
            print("FAIL  daemon exit status after SIGTERM: %s" % d.rc)
            rc = 1
        if rc:
            print("---- daemon log ----\n" + d.log_text()[-6000:])
    finally:
        d.cleanup()
        fake.shutdown()
        os.unlink(f.name)
    return rc


if __name__ == "__main__":
    sys.exit(main())
