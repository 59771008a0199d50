#!/usr/bin/env python3
"""Integration test: three smoked replicas behind HAProxy with deploy/haproxy.cfg
(issue 16, item 1), on loopback.

Usage: test_haproxy.py PATH/TO/smoked

deploy/haproxy.cfg is used as it is, but for its addresses (loopback ports),
its stats socket (a temporary file) and its log (stderr, kept in a file).
Each replica runs with the drain delay the file asks for (5 s) and the
default model; skipped (exit 77) without haproxy or the model.

Four client threads drive a bounded load through HAProxy for about a minute
(completions and chat, streamed and not, a few tokens each; one request at a
time per client, a new connection each), while:

1. Rolling restart: each replica in turn gets SIGTERM.  Its /health says 503
   "draining", HAProxy takes it out (timed), it finishes what it has, exits
   0, is started again and HAProxy takes it back.  No client request fails.
2. Kill: one replica gets SIGKILL.  Only the requests in flight at that
   moment may fail (counted and printed: those sent to it before its process
   was gone, its listener accepting until then); every request that starts
   later succeeds (HAProxy retries the refused connections elsewhere).
3. Accounting: HAProxy names the replica of each answer (X-Smoke-Server).
   For each surviving replica, the requests its incarnations completed (the
   restarted one: /metrics scraped once HAProxy had taken it out and it was
   idle, equal to the count its stop log line gives; the running one:
   /metrics at the end) add up to the successes the clients saw from it.
"""
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

SMOKED = sys.argv[1] if len(sys.argv) > 1 else "build/daemon/smoked"
ROOT = os.environ.get("SMOKE_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NAMES = ["smoke1", "smoke2", "smoke3"]
CLIENTS = 4
DRAIN_DELAY = 5        # deploy/haproxy.cfg's advice: > inter x (fall + 1) = 3 s
check = fx.Checks()


def find_haproxy():
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None)


# ---- HAProxy ----

def haproxy_config(lb_port, stats_port, sock, ports):
    """deploy/haproxy.cfg with loopback addresses; each rewrite must match
    exactly once, so that the test follows the file."""
    with open(os.path.join(ROOT, "deploy", "haproxy.cfg")) as f:
        text = f.read()
    rewrites = [
        (r"(?m)^(\s*)log /dev/log local0$", r"\1log stderr local0 info"),
        (r"(?m)^(\s*stats socket )/\S+", r"\g<1>" + sock),
        (r"(?m)^(\s*)bind :8080$", r"\g<1>bind 127.0.0.1:%d" % lb_port),
        (r"(?m)^(\s*)bind 127\.0\.0\.1:8404$", r"\g<1>bind 127.0.0.1:%d" % stats_port),
    ]
    for name, port in zip(NAMES, ports):
        rewrites.append((r"(?m)^(\s*server %s )127\.0\.0\.1:\d+" % name, r"\g<1>127.0.0.1:%d" % port))
    for pat, rep in rewrites:
        text, n = re.subn(pat, rep, text)
        if n != 1:
            raise RuntimeError("deploy/haproxy.cfg: %r matched %d times, not once" % (pat, n))
    return text


def server_states(sock):
    """{server name: status} of backend smoked from the runtime API."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        x = s.recv(65536)
        if not x:
            break
        data += x
    s.close()
    lines = data.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") == "smoked" and row.get("svname") in NAMES:
            out[row["svname"]] = row["status"]
    return out


def wait_state(sock, name, want, timeout=30):
    """Seconds until HAProxy reports server `name` as `want` (UP/DOWN), or None."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            st = server_states(sock).get(name, "")
        except OSError:
            st = ""
        if st.startswith(want):
            return time.time() - t0
        time.sleep(0.1)
    return None


# ---- the replicas ----

def metrics(port):
    """{metric line key: value} of a replica's /metrics (None if it does not answer)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        r = c.getresponse()
        text = r.read().decode()
        c.close()
    except OSError:
        return None
    if r.status != 200:
        return None
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


COMPLETED = 'smoke_requests_total{outcome="completed"}'


def stop_counts(log):
    """(completed, cancelled, timeouts, failed) from the stop log line."""
    m = re.search(r"stopped: (\d+) requests completed, (\d+) cancelled, (\d+) timed out, (\d+) failed", log)
    return tuple(int(x) for x in m.groups()) if m else None


# ---- the clients ----

class Load:
    """CLIENTS threads, each sending one request after another through the
    balancer until stop(); every request is recorded as a dict (start, end,
    ok, server, stream, why)."""

    def __init__(self, port):
        self.port = port
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.records = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(timeout=180)

    def run(self, i):
        rnd = random.Random(i)
        n = 0
        while not self.done.is_set():
            stream = n % 2 == (i % 2)
            chat = n % 3 == 0
            n += 1
            body = {"max_tokens": rnd.randint(3, 10), "temperature": 0.7, "seed": rnd.randint(1, 1 << 30),
                    "stream": stream}
            if chat:
                body["messages"] = [{"role": "user", "content": "Name a colour."}]
            else:
                body["prompt"] = "Client %d, request %d: once upon a time" % (i, n)
            rec = {"start": time.time(), "stream": stream, "ok": False, "server": None, "why": ""}
            try:
                self.one(rec, "/v1/chat/completions" if chat else "/v1/completions", body)
            except (OSError, http.client.HTTPException, ValueError) as e:
                rec["why"] = "%s: %s" % (type(e).__name__, e)
            rec["end"] = time.time()
            with self.lock:
                self.records.append(rec)

    def one(self, rec, path, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            rec["server"] = r.getheader("X-Smoke-Server")
            if r.status != 200:
                rec["why"] = "HTTP %d %s" % (r.status, r.read()[:200])
                return
            if not body["stream"]:
                js = json.loads(r.read())
                fin = js["choices"][0]["finish_reason"]
                rec["ok"] = fin in ("length", "stop")
                rec["why"] = "" if rec["ok"] else "finish_reason %r" % fin
                return
            buf, done, fin = b"", False, None
            while True:
                chunk = r.read1(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n\n" in buf:
                    ev, buf = buf.split(b"\n\n", 1)
                    payload = ev.decode()[len("data: "):]
                    if payload == "[DONE]":
                        done = True
                    else:
                        f = json.loads(payload)["choices"][0].get("finish_reason")
                        fin = f or fin
            rec["ok"] = done and fin in ("length", "stop")
            rec["why"] = "" if rec["ok"] else "stream ended without [DONE] (finish_reason %r)" % fin
        finally:
            c.close()

    def snapshot(self):
        with self.lock:
            return list(self.records)


# ---- the test ----

def main():
    haproxy = find_haproxy()
    if not haproxy:
        print("SKIP: haproxy is absent (scripts/setup installs it)")
        return fx.SKIP
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP

    tmp = tempfile.mkdtemp(prefix="smoke-haproxy-")
    sock = os.path.join(tmp, "haproxy.sock")
    lb_port, stats_port = fx.free_port(), fx.free_port()
    extra = ["--drain-delay", str(DRAIN_DELAY), "--shutdown-grace", "30", "--concurrency", "2",
             "--log-level", "info"]
    daemons = [fx.Daemon(SMOKED, threads=1, extra=extra) for _ in NAMES]
    ports = [d.port for d in daemons]
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(haproxy_config(lb_port, stats_port, sock, ports))
    hlog = open(os.path.join(tmp, "haproxy.log"), "w+")
    hx = None
    load = None
    logs = {name: [] for name in NAMES}     # stop logs of earlier incarnations
    t_begin = time.time()
    try:
        for d in daemons:
            d.start()
        for name, d in zip(NAMES, daemons):
            if not check(d.wait_ready(timeout=180), "%s ready on port %d" % (name, d.port)):
                print(d.log_text()[-3000:])
                return 1
        hx = subprocess.Popen([haproxy, "-db", "-f", cfg], stdout=hlog, stderr=hlog)
        for name in NAMES:
            if not check(wait_state(sock, name, "UP", 30) is not None, "HAProxy has %s UP" % name):
                hlog.seek(0)
                print(hlog.read()[-3000:])
                return 1

        load = Load(lb_port)
        load.start()
        time.sleep(10)

        # 1. The rolling restart.
        counted = {name: 0 for name in NAMES}     # completed by finished incarnations
        for name, d in zip(NAMES, daemons):
            t0 = time.time()
            d.proc.send_signal(signal.SIGTERM)
            s, body = None, None
            while time.time() - t0 < 2 and s != 503:     # the signal is taken within 250 ms
                s, body = fx.health(d.port)
                time.sleep(0.05)
            check(s == 503 and '"draining"' in (body or ""),
                  "%s: /health says 503 draining after SIGTERM (%s %s)" % (name, s, body))
            t_down = wait_state(sock, name, "DOWN", DRAIN_DELAY + 10)
            check(t_down is not None and t_down < DRAIN_DELAY,
                  "%s: HAProxy took it out %.1f s after SIGTERM, within the drain delay (%d s)"
                  % (name, t_down if t_down is not None else -1, DRAIN_DELAY))
            # Taken out: what it has in hand finishes, then /metrics is final.
            # Idle is not enough (a request HAProxy sent just before taking it
            # out may still be in its HTTP parser, neither queued nor active:
            # seen once in CI): idle, with the completed count unchanged for
            # a second.
            m, last, since = None, None, time.time()
            while time.time() - t0 < DRAIN_DELAY - 0.3:
                m = metrics(d.port)
                idle = m and m["smoke_active_sequences"] == 0 and m["smoke_queue_depth"] == 0
                done = m[COMPLETED] if m else None
                if not idle or done != last:
                    last, since = done, time.time()
                elif time.time() - since >= 1.0:
                    break
                time.sleep(0.1)
            rc = d.proc.wait(timeout=DRAIN_DELAY + 60)
            t_exit = time.time() - t0
            check(rc == 0, "%s: exit status 0 after SIGTERM, %.1f s after it" % (name, t_exit))
            log = d.log_text()
            counts = stop_counts(log)
            check(counts is not None and counts[1:] == (0, 0, 0),
                  "%s: its stop line: %s completed, nothing cancelled, timed out or failed" % (name, counts))
            if counts:
                check(m is not None and m[COMPLETED] == counts[0],
                      "%s: /metrics while draining (%s completed) equals the stop line (%d): "
                      "nothing reached it after HAProxy took it out" % (name, m and m[COMPLETED], counts[0]))
                counted[name] += counts[0]
            logs[name].append(log)
            d.cleanup()
            d.start()
            ok = d.wait_ready(timeout=180)
            t_up = wait_state(sock, name, "UP", 30) if ok else None
            check(t_up is not None, "%s: restarted and back in HAProxy %.1f s after the SIGTERM"
                  % (name, time.time() - t0))
        t_rolled = time.time()
        time.sleep(4)

        # 2. The kill.
        victim = 2
        vname = NAMES[victim]
        t_kill = time.time()
        daemons[victim].proc.send_signal(signal.SIGKILL)
        daemons[victim].proc.wait()
        # Until the process is gone its listener still accepts: a request
        # HAProxy sent in between reached it, and is in flight too.
        t_dead = time.time()
        t_down = wait_state(sock, vname, "DOWN", 30)
        check(t_down is not None, "%s killed: HAProxy took it out %.1f s later"
              % (vname, t_down if t_down is not None else -1))
        time.sleep(8)
        load.stop()
        t_end = time.time()

        # 3. Accounting.
        recs = load.snapshot()
        ok = [r for r in recs if r["ok"]]
        bad = [r for r in recs if not r["ok"]]
        before = [r for r in bad if r["end"] < t_kill]
        in_flight = [r for r in recs if r["start"] < t_dead and r["end"] >= t_kill]
        after = [r for r in bad if r["start"] >= t_dead]
        print("load: %d requests in %.0f s (%d streamed), %d succeeded, %d failed"
              % (len(recs), t_end - t_begin, sum(r["stream"] for r in recs), len(ok), len(bad)))
        check(len(ok) >= 20 and any(r["stream"] for r in ok) and any(not r["stream"] for r in ok),
              "a real load: %d successes, streamed and not" % len(ok))
        check(not before, "rolling restart: %d failed requests (0 wanted)%s"
              % (len(before), "; " + "; ".join(r["why"] for r in before[:5]) if before else ""))
        check(not after and not [r for r in bad if r["end"] < t_kill],
              "kill: %d failed, all in flight at the kill (%d requests were in flight, %d of them streams, "
              "the process took %.3f s to die); %d that started later failed%s"
              % (len(bad), len(in_flight), sum(r["stream"] for r in in_flight), t_dead - t_kill, len(after),
                 "; " + "; ".join(r["why"] for r in after[:5]) if after else ""))
        for r in bad:
            print("   failed at the kill: %s, started %.3f s before it: %s" % (
                "stream" if r["stream"] else "whole", t_kill - r["start"], r["why"][:100]))
        check(len(bad) <= CLIENTS, "kill: at most one failure per client (%d)" % len(bad))

        seen = {name: sum(1 for r in ok if r["server"] == name) for name in NAMES}
        check(sum(seen.values()) == len(ok), "every success names its replica (%d of %d)"
              % (sum(seen.values()), len(ok)))
        for i, name in enumerate(NAMES):
            if i == victim:
                killed = seen[name] - counted[name]
                check(killed >= 0, "%s: %d successes seen, %d by its first incarnation, %d by the killed one"
                      % (name, seen[name], counted[name], killed))
                continue
            m = metrics(daemons[i].port)
            now = m[COMPLETED] if m else None
            lost = m and (m['smoke_requests_total{outcome="cancelled"}'] + m['smoke_requests_total{outcome="failed"}']
                          + m['smoke_requests_total{outcome="timeout"}'])
            check(m is not None and counted[name] + now == seen[name],
                  "%s: /metrics adds up: %d (before its restart) + %s (since) = %d successes the clients saw"
                  % (name, counted[name], now, seen[name]))
            check(m is not None and lost == 0, "%s: nothing cancelled, failed or timed out (%s)" % (name, lost))
        print("figures: rolling restart 0 of %d requests failed; SIGKILL: %d failed of %d in flight"
              % (len([r for r in recs if r["end"] < t_kill]), len(bad), len(in_flight)))
        print("         successes per replica: %s; rolled at %.0f s, killed at %.0f s"
              % (", ".join("%s %d" % (n, seen[n]) for n in NAMES), t_rolled - t_begin, t_kill - t_begin))
    finally:
        if load:
            load.stop()
        if hx:
            hx.terminate()
            try:
                hx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                hx.kill()
        for d in daemons:
            d.stop(timeout=60)
        if check.failures:
            hlog.seek(0)
            print("---- haproxy log (tail) ----\n" + hlog.read()[-3000:])
            for name, d in zip(NAMES, daemons):
                print("---- %s log (tail) ----\n%s" % (name, d.log_text()[-1500:]))
        for d in daemons:
            d.cleanup()
        hlog.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
