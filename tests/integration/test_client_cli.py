#!/usr/bin/env python3
"""Integration test of the `smoke` CLI against the real smoked.

Usage: test_client_cli.py PATH/TO/smoked PATH/TO/smoke
Expected values come from outside the CLI: the offline command's output,
and /stats and chat replies fetched over plain HTTP.  Skipped (exit 77)
without the model.
"""
import http.client
import http.server
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

KEY = "cli-test-key"
PROMPT = "The capital of France is"
N = 12
check = fx.Checks()
failures = check.failures


def http_json(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
    r = c.getresponse()
    js = json.loads(r.read())
    c.close()
    return js


def run(smoke, args, env=None, timeout=600):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SMOKE_URL") and k != "SMOKE_API_KEY"}
    e.update(env or {})
    return subprocess.run([smoke] + args, capture_output=True, text=True, timeout=timeout, env=e)


def read_until(fd, marker, deadline):
    """Bytes from a pty master until marker appears (or the deadline)."""
    out = b""
    while marker not in out and time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
    return out


def test_top_live(smoke, d):
    """`smoke top` on a terminal: draws on the alternate screen, quits on
    q with the terminal restored, and on SIGINT."""
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    p = subprocess.Popen([smoke, "--url", d.url, "--api-key", KEY, "top", "--interval", "0.5"],
                         stdin=slave, stdout=slave, stderr=slave)
    deadline = time.time() + 120
    out = read_until(master, b"requests", deadline)
    check(b"\x1b[?1049h" in out and b"requests" in out, "top: first frame on the alternate screen")
    out += read_until(master, b"rate", deadline)
    os.write(master, b"q")
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "still running"
    out += read_until(master, b"\x1b[?1049l", time.time() + 10)
    after = termios.tcgetattr(slave)
    check(rc == 0, "top: q quits with status 0 (got %s)" % rc)
    check(b"\x1b[?1049l" in out and b"\x1b[?25h" in out, "top: leaves the alternate screen, shows the cursor")
    check(after[3] == before[3], "top: terminal modes restored (lflag %#x -> %#x)" % (before[3], after[3]))
    os.close(master)
    os.close(slave)

    # SIGINT, with stdin not a terminal and stdout a pipe (no ANSI there).
    p = subprocess.Popen([smoke, "--url", d.url, "--api-key", KEY, "top", "--interval", "0.5"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fd = p.stdout.fileno()
    first = read_until(fd, b"requests", time.time() + 120)
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "still running"
    check(rc == 0 and b"requests" in first and b"\x1b" not in first,
          "top: Ctrl-C (SIGINT) quits with status 0, plain frames on a pipe (got %s)" % rc)


# A /stats as the weight hierarchy (issue 4) may report it: smoke top must
# show its tiers and the rest without knowing the final shape.
HIERARCHY = {
    "tiers": [
        {"name": "disk", "used": 4 << 30, "budget": 0, "hits": 0, "misses": 0, "evictions": 0, "bytes_in": 0},
        {"name": "ram", "used": 1 << 30, "budget": 2 << 30, "hits": 90, "misses": 10, "evictions": 3,
         "bytes_in": 5 << 30, "peak": 3 << 29, "bandwidth": 2.5e9},
        {"name": "gpu", "used_bytes": 512 << 20, "budget_bytes": 1 << 30, "hits": 75, "misses": 25,
         "evictions": 40, "bytes_in": 3 << 30},
    ],
    "stalls": 7, "stall_s": 0.25, "predictor_accuracy": 0.875,
    "prefetch": {"issued": 120, "used": 100, "wasted": 15, "late": 5},
}


def fake_stats(real):
    """A server answering GET /stats with real plus HIERARCHY."""
    body = json.dumps(dict(real, hierarchy=HIERARCHY)).encode()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_top_hierarchy(smoke, st):
    srv = fake_stats(st)
    try:
        r = run(smoke, ["--url", "http://127.0.0.1:%d" % srv.server_address[1], "top", "--once"])
    finally:
        srv.shutdown()
    out = r.stdout
    rows = {l.split()[0]: l for l in out.splitlines() if l.startswith("  ") and l.split()}
    print(out)
    check(r.returncode == 0 and "tier" in rows and "not reported" not in out, "top --once: a hierarchy table")
    ram, gpu = rows.get("ram", ""), rows.get("gpu", "")
    check(ram.split()[1:] == ["1.0", "GiB", "/", "2.0", "GiB", "90", "10", "90.0%", "3", "5.0", "GiB"],
          "ram tier row: used/budget, hits, misses, hit%%, evictions, bytes in (%r)" % ram)
    check(gpu.split()[1:] == ["512.0", "MiB", "/", "1.0", "GiB", "75", "25", "75.0%", "40", "3.0", "GiB"],
          "gpu tier row from the *_bytes synonyms (%r)" % gpu)
    check("peak 1.5 GiB" in out and "bandwidth 2.3 GiB/s" in out, "a tier's other figures below its row")
    check(rows.get("all", "").split()[2:] == ["stalls", "7", "stall_s", "0.25", "predictor_accuracy", "0.875"],
          "hierarchy-wide figures on their own line (%r)" % rows.get("all"))
    check(rows.get("prefetch", "").split()[1:] == ["issued", "120", "used", "100", "wasted", "15", "late", "5"],
          "an object (prefetch) on one line (%r)" % rows.get("prefetch"))


def main():
    smoked, smoke = sys.argv[1], sys.argv[2]
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP
    want = fx.offline(smoked, PROMPT, N)
    d = fx.Daemon(smoked, api_key=KEY, extra=["--concurrency", "2"])
    try:
        with d:
            checks(smoke, smoked, d, want)
        check(d.rc == 0, "daemon exit status 0 after SIGTERM (got %s)" % d.rc)
        if failures:
            print("---- daemon log ----\n" + d.log_text()[-6000:])
    finally:
        d.cleanup()
    print("%d passed, %d failed" % (check.passed, len(failures)))
    return 1 if failures else 0


def checks(smoke, smoked, d, want):
    g = ["--url", d.url, "--api-key", KEY]
    r = run(smoke, g + ["complete", PROMPT, "-n", str(N), "--temp", "0"])
    check(r.returncode == 0 and r.stdout == want,
          "complete: equals the offline output, no newline on a pipe (%r vs %r; %s)" % (r.stdout, want, r.stderr))
    r = run(smoke, ["complete", PROMPT, "-n", str(N), "--temp", "0", "--stream"],
            env={"SMOKE_URL": d.url, "SMOKE_API_KEY": KEY})
    check(r.returncode == 0 and r.stdout == want, "complete --stream with SMOKE_URL/SMOKE_API_KEY (%r)" % r.stdout)
    r = subprocess.run([smoke] + g + ["complete", "-", "-n", str(N), "--temp", "0"], input=PROMPT,
                       capture_output=True, text=True, timeout=600)
    check(r.returncode == 0 and r.stdout == want, "complete - reads the prompt from stdin")

    r = run(smoke, g + ["health"])
    check(r.returncode == 0 and r.stdout.strip() == d.url + ": ok", "health: %r" % r.stdout)

    msgs = [{"role": "user", "content": "Name a colour."}]
    ref = http_json(d.port, "POST", "/v1/chat/completions",
                    {"messages": msgs, "max_tokens": 8, "temperature": 0})["choices"][0]["message"]["content"]
    r = run(smoke, g + ["chat", "Name a colour.", "-n", "8", "--temp", "0"])
    check(r.returncode == 0 and r.stdout == ref, "chat (streamed) equals the HTTP reply (%r vs %r)" % (r.stdout, ref))
    r = run(smoke, g + ["chat", "Name a colour.", "-n", "8", "--temp", "0", "--no-stream"])
    check(r.returncode == 0 and r.stdout == ref, "chat --no-stream equals the HTTP reply")

    r = run(smoke, g + ["stats"])
    try:
        js = json.loads(r.stdout)
    except ValueError:
        js = None
    check(r.returncode == 0 and js and js["status"] == "ok" and "\n  \"" in r.stdout, "stats: pretty-printed JSON")

    st = http_json(d.port, "GET", "/stats")
    r = run(smoke, g + ["top", "--once"])
    out = r.stdout
    check(r.returncode == 0 and "\x1b" not in out, "top --once: status 0, no terminal control (%s)" % r.stderr)
    for word in ["requests", "queue", "sequences", "tok/s", "weight hierarchy", "latency"]:
        check(word in out, "top --once shows %r" % word)
    check("generated %d" % st["tokens"]["generated"] in out and
          "admitted %d" % st["requests"]["admitted"] in out and
          "%d / %d waiting" % (st["queue"]["depth"], st["queue"]["capacity"]) in out and
          "/ %d active" % st["sequences"]["max"] in out,
          "top --once numbers match /stats (generated %d)" % st["tokens"]["generated"])
    test_top_live(smoke, d)
    test_top_hierarchy(smoke, st)

    r = run(smoke, g + ["tokenize", "Hello world"])
    ids = http_json(d.port, "POST", "/tokenize", {"content": "Hello world"})["tokens"]
    check(r.returncode == 0 and r.stdout.split() == [str(i) for i in ids], "tokenize: %s" % r.stdout.strip())
    r = run(smoke, g + ["detokenize"] + [str(i) for i in ids])
    check(r.returncode == 0 and r.stdout == "Hello world", "detokenize: %r" % r.stdout)

    # Errors: a message on stderr that says what and where, status 1.
    closed = "http://127.0.0.1:%d" % fx.closed_port()
    r = run(smoke, ["--url", closed, "health"])
    check(r.returncode == 1 and "cannot connect to " + closed in r.stderr, "closed port names the URL: %r" % r.stderr)
    r = run(smoke, ["--url", d.url, "--api-key", "wrong", "complete", "x", "-n", "1"])
    check(r.returncode == 1 and "HTTP 401" in r.stderr and "API key" in r.stderr, "wrong key: %r" % r.stderr)
    r = run(smoke, g + ["complete", "x", "--temp", "-1"])
    check(r.returncode == 1 and "HTTP 400" in r.stderr and "'temperature'" in r.stderr, "temp -1: %r" % r.stderr)
    for args in (["frobnicate"], ["complete", "x", "--temp", "hot"], ["complete", "x", "--bogus", "1"],
                 ["top", "--interval", "0"], []):
        r = run(smoke, g + args)
        check(r.returncode == 2 and r.stderr, "usage error %s -> status 2" % args)
    r = run(smoke, ["--help"])
    check(r.returncode == 0 and "smoke top" not in r.stderr and "top [--once]" in r.stdout, "--help")


if __name__ == "__main__":
    sys.exit(main())
