#!/usr/bin/env python3
"""Integration test: the web view at / (docs/web.md) in headless Chromium
against the live daemon on the default model.

Usage: test_web.py PATH/TO/smoked

Skipped (exit 77) without the model or without Debian's `chromium`
(scripts/setup installs it).  Chromium runs as a plain command: --dump-dom
(the DOM after the page's script ran for a few seconds of virtual time)
with --log-net-log (every request it made); the screenshot is taken over
the DevTools protocol on a pipe, after real seconds.

The daemon runs with a RAM budget smaller than the model (the tiered
store, so there are tiers, hit rates and a residency map to show).

1. GET / without JavaScript (a plain HTTP client): 200 text/html with a
   Content-Security-Policy that allows nothing from the network but the
   page's own origin (default-src 'none', connect-src 'self', the inline
   style and script by hash only), nosniff, no framing, no-store; the
   table of figures carries one row per scalar of /stats, each equal to
   /stats; no src/href/action in the page, and no URL in it but the SVG
   namespace.
2. Chromium renders it: every element with data-stat shows the /stats
   value at that path (data-value), the figures table the script redraws
   equals /stats, the residency strips have one cell per block of
   /stats weights.residency with its digit, and a streamed request that is
   running shows in the requests-in-flight table under its id.  The page
   made no request that left its origin (the net log: every request the
   page initiated went to the daemon; Chromium's own background requests,
   which no page initiates, are not the page's).
3. A screenshot of the page, open for 15 s while completions run, is
   saved to $SMOKE_SCREENSHOT_DIR (default: the build directory) as
   web-view.png (and the MoE model's as web-view-moe.png).
4. Behind --api-key: / is served without the key but its table only says
   that a key is needed (no figure, not the model's path); with
   Authorization: Bearer the table is filled; /stats still answers 401
   without it; Chromium without a key shows the key form and no figure;
   with the key in the address's fragment (#key=...) it renders /stats;
   with a wrong one it says the key was refused.  The Host check of
   guard.c holds for / too (403 host_not_allowed).
5. A mixture of experts (tiny-qwen3moe of $SMOKE_TEST_MODELS, where
   present): the expert map has one cell per layer and expert, each with
   its /stats digit.
"""
import base64
import fcntl
import html.parser
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

SMOKED = sys.argv[1] if len(sys.argv) > 1 else "build/daemon/smoked"
ROOT = os.environ.get("SMOKE_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
SHOTS = os.environ.get("SMOKE_SCREENSHOT_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(SMOKED)))
MOE = os.path.join(os.environ.get("SMOKE_TEST_MODELS", "/nonexistent"), "tiny-qwen3moe.gguf")
RAM = ["--ram-cache", "120MB"]     # the default model is 235 MiB of weights
KEY = "web-test-key"
SVGNS = "http://www.w3.org/2000/svg"
check = fx.Checks()
valid, spec = fx.schema_validator(ROOT)


def request(port, method, path, body=None, headers=None):
    """(status, headers, body text)."""
    h = dict(headers or {})
    if body is not None:
        h["Content-Type"] = "application/json"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, r, data


def stats(port, key=None):
    st, _, body = request(port, "GET", "/stats", headers={"Authorization": "Bearer " + key} if key else None)
    assert st == 200, body
    return json.loads(body)


def scalars(doc, path=""):
    """{dotted path: value} for every scalar of a /stats document, arrays
    as None (the page shows their length)."""
    out = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.update(scalars(v, path + "." + k if path else k))
    else:
        out[path] = None if isinstance(doc, list) else doc
    return out


# Figures that move without any request (the clock) or with the test's
# own requests (connections, the requests in flight).
def volatile(path):
    return path == "uptime_s" or path.startswith("connections.") and path != "connections.busy_s" \
        or path.startswith("requests.in_flight")


def quiet_stats(port, key=None):
    """/stats once two polls a second apart agree on every figure but the
    volatile ones (the prefetcher may still be finishing)."""
    last = None
    for _ in range(60):
        st = stats(port, key)
        flat = {k: v for k, v in scalars(st).items() if not volatile(k)}
        if flat == last:
            return st
        last = flat
        time.sleep(1)
    return st


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""


class Dom(html.parser.HTMLParser):
    """A small tree of the document (what --dump-dom printed, or the page
    as served), enough to find elements by id and attribute."""
    VOID = {"meta", "link", "br", "input", "img", "hr", "col", "area", "base", "wbr", "source"}

    def __init__(self, text):
        super().__init__()
        self.root = self.cur = Node("#root", {}, None)
        self.all = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        self.all.append(n)
        if tag not in self.VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        self.all.append(n)

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        n = self.cur
        while n is not None:
            n.text += data
            n = n.parent

    def by_id(self, i):
        for n in self.all:
            if n.attrs.get("id") == i:
                return n
        return None

    def with_attr(self, a):
        return [n for n in self.all if a in n.attrs]


def figures_rows(dom):
    """{data-k: data-v (parsed) or None} of the figures table's rows."""
    rows = {}
    for tr in dom.with_attr("data-k"):
        tds = [c for c in tr.children if c.tag == "td"]
        v = tds[0].attrs.get("data-v") if tds else None
        rows[tr.attrs["data-k"]] = json.loads(v) if v is not None else None
    return rows


def compare(rows, st, what):
    """Every non-volatile row equals /stats; the same paths on both sides."""
    flat = scalars(st)
    want = {k for k in flat if not volatile(k)}
    have = {k for k in rows if not volatile(k)}
    check(want == have, "%s: one row per scalar of /stats (missing %s, extra %s)"
          % (what, sorted(want - have)[:5], sorted(have - want)[:5]))
    bad = [(k, rows[k], flat[k]) for k in want & have if rows[k] != flat[k]]
    check(not bad and len(want) > 40, "%s: %d rows equal /stats %s" % (what, len(want & have), bad[:3]))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url, budget_ms=4000):
    """Load url in headless Chromium with a fresh profile: (the DOM after
    budget_ms of virtual time, the URLs of the requests the page
    initiated, the page's origin, the console messages it logged - a
    script error or a Content-Security-Policy violation would be one)."""
    prof = tempfile.mkdtemp(prefix="smoke-chromium-")
    netlog = os.path.join(prof, "netlog.json")
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--hide-scrollbars", "--user-data-dir=" + prof,
            "--log-net-log=" + netlog, "--virtual-time-budget=%d" % budget_ms, "--dump-dom",
            "--enable-logging=stderr", "--v=0"]
    try:
        out = subprocess.run(args + [url], capture_output=True, text=True, timeout=180)
        origin = re.match(r"^(http://[^/]+)", url).group(1)
        page_urls = []
        with open(netlog) as f:
            text = f.read()
        try:
            log = json.loads(text)
        except ValueError:          # a net log cut short lacks its closing brackets
            log = json.loads(text.rstrip().rstrip(",") + "]}")
        types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
        by_source = {}
        for ev in log["events"]:
            p = ev.get("params") or {}
            if "url" in p:
                by_source.setdefault(ev["source"]["id"], p["url"])
            if types.get(ev["type"]) == "URL_REQUEST_START_JOB":
                # Requests a page starts name its origin as initiator; the
                # navigation itself (the address given) names none.
                if p.get("initiator") == origin or p.get("url", "").startswith(origin):
                    page_urls.append(p.get("url") or by_source.get(ev["source"]["id"], "?"))
                elif p.get("initiator") not in (None, "not an origin"):
                    page_urls.append(p.get("url") or "?")
        console = [ln for ln in out.stderr.splitlines() if ":CONSOLE" in ln]
        return out.stdout, page_urls, origin, console
    finally:
        shutil.rmtree(prof, ignore_errors=True)


def screenshot(url, out, wait_s, size=(1400, 1900)):
    """A screenshot of url after wait_s seconds of real time (the page's
    one-second polls and its charts need the daemon's clock to move, which
    --virtual-time-budget does not wait for): Chromium driven over the
    DevTools protocol on a pipe (--remote-debugging-pipe: it reads
    NUL-terminated JSON messages on fd 3 and answers on fd 4)."""
    prof = tempfile.mkdtemp(prefix="smoke-chromium-")
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    # Chromium's ends, out of the way of 3 and 4 until the child moves them there.
    a, b = fcntl.fcntl(r_in, fcntl.F_DUPFD, 10), fcntl.fcntl(w_out, fcntl.F_DUPFD, 10)
    os.close(r_in)
    os.close(w_out)

    def child():
        os.dup2(a, 3)
        os.dup2(b, 4)
    p = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--no-first-run", "--disable-background-networking", "--remote-debugging-pipe",
                          "--user-data-dir=" + prof, "--window-size=%d,%d" % size, "about:blank"],
                         pass_fds=(3, 4), preexec_fn=child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(a)
    os.close(b)
    state = {"buf": b"", "id": 0}

    def call(method, params=None, session=None):
        state["id"] += 1
        msg = {"id": state["id"], "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(w_in, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in state["buf"]:
                chunk = os.read(r_out, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                state["buf"] += chunk
            line, state["buf"] = state["buf"].split(b"\0", 1)
            m = json.loads(line)
            if m.get("id") == state["id"]:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m["result"]
    try:
        tid = call("Target.createTarget", {"url": url})["targetId"]
        sid = call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        time.sleep(wait_s)
        png = base64.b64decode(call("Page.captureScreenshot", {"format": "png"}, sid)["data"])
        with open(out, "wb") as f:
            f.write(png)
        call("Browser.close")
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(w_in)
        os.close(r_out)
        shutil.rmtree(prof, ignore_errors=True)
    return png


def load(port, stop, key=None):
    """Completions one after another until stop is set (what the
    screenshot's charts show)."""
    h = {"Authorization": "Bearer " + key} if key else None
    i = 0
    while not stop.is_set():
        request(port, "POST", "/v1/completions", {"prompt": "Story %d: once upon a time" % i, "max_tokens": 24,
                                                  "temperature": 0}, headers=h)
        i += 1


def shown_digits(strip):
    """The residency digits a strip shows: each cell's colour class r0..r7
    (index.html's CSS), as hex digits; its data-r must agree."""
    out = ""
    for c in strip.children if strip else []:
        m = re.fullmatch(r"r([0-7])", c.attrs.get("class", ""))
        out += m.group(1) if m and c.attrs.get("data-r") == m.group(1) else "?"
    return out


def check_rendered(dom, st, what, moe=False):
    body = next((n for n in dom.all if n.tag == "body"), None)
    polls = int(body.attrs.get("data-polls", 0)) if body else 0
    check(polls >= 1, "%s: the script polled /stats (%d polls)" % (what, polls))
    flat = scalars(st)
    shown = [(n.attrs["data-stat"], json.loads(n.attrs["data-value"])) for n in dom.with_attr("data-value")]
    paths = {p for p, _ in shown}
    for need in ("weights.ram.bytes", "weights.ram.budget_bytes", "weights.ram.hits", "weights.prefetch.lookahead",
                 "weights.predictor_accuracy", "queue.depth", "tokens.generated", "sequences.kv_bytes"):
        check(need in paths, "%s: the page shows %s" % (what, need))
    bad = [(p, v, flat.get(p)) for p, v in shown if not volatile(p) and flat.get(p) != v]
    check(not bad and len(shown) > 20, "%s: %d data-stat values equal /stats %s" % (what, len(shown), bad[:3]))
    compare(figures_rows(dom), st, what + ": the script's figures table")
    res = st["weights"]["residency"]
    for part in ("embed", "layers", "head"):
        strip = dom.by_id("res-" + part)
        cells = shown_digits(strip)
        check(cells == res[part], "%s: residency strip %s shows %r (/stats %r)" % (what, part, cells, res[part]))
    if moe:
        xm = dom.by_id("res-experts")
        cells = shown_digits(xm)
        check(cells == "".join(res["experts"]) and len(res["experts"]) == st["model"]["n_layer"],
              "%s: the expert map has %d cells, each as /stats says" % (what, len(cells)))
        check("hidden" not in dom.by_id("res-x").attrs, "%s: the expert map is shown" % what)


def check_network(urls, origin, what):
    off = [u for u in urls if not u.startswith(origin + "/")]
    check(any(u == origin + "/stats" for u in urls) and not off,
          "%s: the page's requests all went to %s (%d, off-origin %s)" % (what, origin, len(urls), off))


def stream_in_background(port, key=None):
    """Start a long streamed completion; returns (id, stop) once its first
    chunk has come: stop() closes the connection (the daemon cancels it)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    c.request("POST", "/v1/completions", body=json.dumps({"prompt": "Once upon a time", "max_tokens": 400,
                                                          "stream": True, "temperature": 0}), headers=h)
    r = c.getresponse()
    assert r.status == 200
    got = {}
    while "id" not in got:
        line = r.fp.readline().decode()
        if line.startswith("data: {"):
            got = json.loads(line[6:])
    stop = threading.Event()

    def drain():
        try:
            while not stop.is_set() and r.fp.readline():
                pass
        except OSError:
            pass
    t = threading.Thread(target=drain, daemon=True)
    t.start()

    def close():
        stop.set()
        c.sock.shutdown(2)
        c.close()
        t.join(30)
    return got["id"], close


def test_plain():
    with fx.Daemon(SMOKED, extra=RAM) as d:
        st, _, body = request(d.port, "POST", "/v1/completions",
                              {"prompt": "The weight hierarchy", "max_tokens": 8, "temperature": 0})
        check(st == 200, "a completion before the page (%d)" % st)
        s0 = quiet_stats(d.port)
        check(valid(s0, "Stats"), "/stats (with residency and in_flight) matches the schema")
        check(s0["weights"]["store"] == "tiered" and "residency" in s0["weights"],
              "the daemon runs the tiered store and /stats has weights.residency")

        # 1. Without JavaScript.
        status, resp, page = request(d.port, "GET", "/")
        s1 = stats(d.port)
        csp = resp.getheader("Content-Security-Policy") or ""
        check(status == 200 and resp.getheader("Content-Type") == "text/html; charset=utf-8",
              "GET / is an HTML page (%d %s)" % (status, resp.getheader("Content-Type")))
        check("default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
              and re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", csp) is not None
              and re.search(r"style-src 'sha256-[A-Za-z0-9+/=]+';", csp) is not None
              and "frame-ancestors 'none'" in csp, "the CSP allows only the page's own script, style and origin: " + csp)
        check(resp.getheader("X-Content-Type-Options") == "nosniff" and resp.getheader("X-Frame-Options") == "DENY"
              and resp.getheader("Cache-Control") == "no-store" and resp.getheader("Referrer-Policy") == "no-referrer",
              "nosniff, no framing, no caching, no referrer")
        compare(figures_rows(Dom(page)), s1, "no JavaScript: the served table")
        urls = [u for u in re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>)]*", page, re.I) if u != SVGNS]
        check(not urls, "no URL in the page but the SVG namespace %s" % urls[:3])
        check(not re.search(r"\s(src|href|action)\s*=", page, re.I), "no src, href or action attribute in the page")
        st, _, _ = request(d.port, "HEAD", "/")
        check(st == 200, "HEAD / answers 200")

        # 2. In Chromium, idle.
        text, net, origin, console = chromium(d.url + "/")
        s2 = quiet_stats(d.port)
        dom = Dom(text)
        check_rendered(dom, s2, "chromium")
        check_network(net, origin, "chromium")
        check(not console, "chromium: nothing on the console (no script error, no CSP violation) %s" % console[:2])
        check(dom.by_id("auth") is not None and "hidden" in dom.by_id("auth").attrs,
              "chromium: no key asked for when none is configured")

        # 2b. A request in flight.
        rid, close = stream_in_background(d.port)
        try:
            text, net, _, console = chromium(d.url + "/", budget_ms=3000)
            dom = Dom(text)
            rows = [n for n in dom.by_id("inflight").children if n.tag == "tr"] if dom.by_id("inflight") else []
            check(any(r.attrs.get("data-id") == rid for r in rows),
                  "chromium: the running stream %s is listed in flight (%s)" % (rid, [r.attrs.get("data-id") for r in rows]))
            live = stats(d.port)["requests"]["in_flight"]
            check(any(q["id"] == rid and q["stream"] and q["endpoint"] == "/v1/completions" for q in live),
                  "/stats requests.in_flight has the stream: %s" % live)
        finally:
            close()
        # 3. The screenshot: the page open for 15 s while completions run.
        stop = threading.Event()
        t = threading.Thread(target=load, args=(d.port, stop), daemon=True)
        t.start()
        try:
            os.makedirs(SHOTS, exist_ok=True)
            shot = os.path.join(SHOTS, "web-view.png")
            png = screenshot(d.url + "/", shot, 15)
            check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000,
                  "screenshot saved: %s (%d bytes)" % (shot, len(png)))
        finally:
            stop.set()
            t.join(120)


def test_key():
    with fx.Daemon(SMOKED, api_key=KEY, extra=RAM) as d:
        auth = {"Authorization": "Bearer " + KEY}
        st, _, _ = request(d.port, "POST", "/v1/completions", {"prompt": "Keys", "max_tokens": 4}, headers=auth)
        check(st == 200, "with a key: a completion (%d)" % st)
        status, resp, page = request(d.port, "GET", "/")
        rows = figures_rows(Dom(page))
        check(status == 200 and not rows and 'id="needkey"' in page and fx.MODEL not in page,
              "with a key: / without it is the page, its table says a key is needed, no figure (%d rows)" % len(rows))
        check("Content-Security-Policy" in dict(resp.getheaders()), "with a key: / has its CSP")
        st, _, _ = request(d.port, "GET", "/stats")
        check(st == 401, "with a key: /stats without it is still 401 (%d)" % st)
        st, _, page = request(d.port, "GET", "/", headers=auth)
        compare(figures_rows(Dom(page)), stats(d.port, KEY), "with a key: / with Authorization")
        st, _, body = request(d.port, "GET", "/", headers={"Host": "evil.example"})
        check(st == 403 and "host_not_allowed" in body, "with a key: / for another Host is 403 (%d)" % st)

        text, net, origin, console = chromium(d.url + "/")
        dom = Dom(text)
        check("hidden" not in dom.by_id("auth").attrs and "hidden" in dom.by_id("live").attrs
              and not dom.with_attr("data-value"), "chromium without the key: the key form, no figure")
        check_network(net, origin, "chromium without the key")

        text, net, origin, console = chromium(d.url + "/#key=wrong")
        dom = Dom(text)
        check("hidden" not in dom.by_id("auth").attrs and "refused" in dom.by_id("err").text,
              "chromium with a wrong key: the form again, 'the key was refused'")

        text, net, origin, console = chromium(d.url + "/#key=" + KEY)
        dom = Dom(text)
        check_rendered(dom, quiet_stats(d.port, KEY), "chromium with the key")
        check("hidden" in dom.by_id("auth").attrs, "chromium with the key: no form")
        check_network(net, origin, "chromium with the key")
        check(not console, "chromium with the key: nothing on the console %s" % console[:2])


def test_moe():
    if not os.path.exists(MOE):
        print("note: %s absent: the expert map is not checked" % MOE)
        return
    with fx.Daemon(SMOKED, model=MOE, extra=["--ram-cache", "6200000"]) as d:
        st, _, _ = request(d.port, "POST", "/v1/completions", {"prompt": "Experts", "max_tokens": 8})
        check(st == 200, "moe: a completion (%d)" % st)
        text, net, origin, console = chromium(d.url + "/")
        s = quiet_stats(d.port)
        check(valid(s, "Stats") and len(s["weights"]["residency"]["experts"][0]) == 16,
              "moe: /stats has one residency string per layer, one digit per expert")
        check_rendered(Dom(text), s, "moe", moe=True)
        check(not console, "moe: nothing on the console %s" % console[:2])
        stop = threading.Event()
        t = threading.Thread(target=load, args=(d.port, stop), daemon=True)
        t.start()
        try:
            shot = os.path.join(SHOTS, "web-view-moe.png")
            png = screenshot(d.url + "/", shot, 8, size=(1400, 1100))
            check(len(png) > 20000, "moe: screenshot saved: %s" % shot)
        finally:
            stop.set()
            t.join(120)


def main():
    why = fx.model_missing()
    if why:
        print(why)
        return fx.SKIP
    if not CHROMIUM:
        print("SKIP: no chromium (scripts/setup installs Debian's chromium)")
        return fx.SKIP
    test_plain()
    test_key()
    test_moe()
    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    for f in check.failures:
        print("FAILED: " + f)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
