#!/usr/bin/env python3
"""test_objstore.py - models read from object storage (docs/object-storage.md).

Against a real S3-compatible server on loopback (moto_server from PyPI
moto[server], run with IAM authentication on, so every request must carry a
valid AWS Signature V4 from libcurl) and a plain Range-serving HTTP server
(range_server.py) that misbehaves on purpose:

1. The default GGUF model from s3:// (credentials from the environment,
   path-style through AWS_ENDPOINT_URL), tiered, with a disk cache smaller
   than the model: greedy completions over HTTP equal the offline run on
   the local file; the cache holds less than the model; a restart reuses
   the cache (checksums verified) and a chunk corrupted on disk is dropped
   and fetched again, with the same completions.
2. A Hugging Face directory (s3://bucket/prefix/, a key with a space) with
   credentials from a shared credentials file and a named profile: the same
   greedy text as the local directory.
3. Start-up errors name the URL and the reason, never the secret: a wrong
   secret (403 SignatureDoesNotMatch), a missing key and a missing bucket
   (404), an unknown profile.
4. Faults from the Range server over http://: 503 SlowDown, 500, a
   truncated body, a wrong Content-Range, a body longer than asked, a
   stall: each retried, the completions still equal the local ones (never a
   wrong token); a server that keeps failing makes the request fail with a
   message naming the URL while /health stays 200, and the next request
   after it recovers succeeds with the same text.
5. https with a self-signed certificate: refused without AWS_CA_BUNDLE,
   read with it.

Usage: test_objstore.py SMOKED.  Skips (77) without the model or moto.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_fixture import (MODEL, SKIP, Checks, Daemon, free_port, import_from_venv,  # noqa: E402
                            model_missing)
from range_server import RangeServer  # noqa: E402

ROOT = os.environ.get("SMOKE_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
HF_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "hf-models", "llama-f16")
PROMPTS = ["The capital of France is", "Once upon a time"]
N = 12
check = Checks()


def start_moto():
    """moto_server with IAM authentication after the first 3 actions (the
    user, its policy and its access key); returns (proc, endpoint, key, secret)."""
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ep = "http://127.0.0.1:%d" % port
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/moto-api/")
            c.getresponse().read()
            break
        except OSError:
            time.sleep(0.2)
    import boto3
    iam = boto3.client("iam", endpoint_url=ep, aws_access_key_id="setup", aws_secret_access_key="setup",
                       region_name="us-east-1")
    iam.create_user(UserName="smoke")
    iam.put_user_policy(UserName="smoke", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    k = iam.create_access_key(UserName="smoke")["AccessKey"]
    return proc, ep, k["AccessKeyId"], k["SecretAccessKey"]


def offline(smoked, model, prompt, env=None, extra=()):
    out = subprocess.run([smoked, "--model", model, "--prompt", prompt, "-n", str(N), "--temp", "0",
                          "--threads", "2"] + list(extra), capture_output=True, text=True, timeout=900,
                         env=env)
    return out.returncode, out.stdout, out.stderr


def complete(d, prompt, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": N, "temperature": 0}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read().decode("utf-8", "replace")
    c.close()
    try:
        js = json.loads(body)
    except ValueError:
        js = {}
    text = js.get("choices", [{}])[0].get("text") if r.status == 200 else None
    return r.status, text, body


def health(d):
    try:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        c.request("GET", "/health")
        s = c.getresponse().status
        c.close()
        return s
    except OSError:
        return None


def allocated(path):
    total = 0
    for dp, _, names in os.walk(path):
        for n in names:
            total += os.stat(os.path.join(dp, n)).st_blocks * 512
    return total


def s3_env(ep, key, secret, **more):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=ep, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID=key,
               AWS_SECRET_ACCESS_KEY=secret)
    env.update(more)
    return env


def gguf_from_s3(smoked, ref, ep, key, secret, tmp):
    cache = os.path.join(tmp, "cache")
    budget = 48 << 20
    extra = ["--set", "memory.ram_cache=512MB", "--set", "memory.disk_cache=%d" % budget,
             "--set", "memory.disk_cache_dir=" + cache, "--log-level", "info"]
    env = s3_env(ep, key, secret)

    def run(label):
        d = Daemon(smoked, model="s3://models/gemma.gguf", extra=extra, env=env)
        with d:
            texts = [complete(d, p)[1] for p in PROMPTS]
        log = d.log_text()
        d.cleanup()
        check(texts == ref, "%s: greedy completions from s3:// equal the local file's" % label)
        if texts != ref:
            print("      got %r\n      want %r" % (texts, ref))
        check(secret not in log, "%s: the secret is not in the log" % label)
        return log

    run("first start")
    size = os.path.getsize(MODEL)
    held = allocated(cache)
    check(0 < held < size, "the disk cache holds %.1f MiB, less than the %.1f MiB model (budget %d MiB + pinned)"
          % (held / 2**20, size / 2**20, budget >> 20))
    log = run("restart on the cache")
    check("bytes reused, 0 chunks failed" in log, "restart: the cached chunks pass their checksums")
    # Corrupt one cached chunk that is not a hole.
    data = [os.path.join(dp, n) for dp, _, ns in os.walk(cache) for n in ns if n == "gemma.gguf"][0]
    with open(data, "r+b") as f:
        fd = f.fileno()
        off = os.lseek(fd, 8 << 20, os.SEEK_DATA)
        os.pwrite(fd, bytes(b ^ 0xFF for b in os.pread(fd, 64, off + 1000)), off + 1000)
    log = run("restart with a corrupted chunk")
    check("1 chunks failed their checksum" in log, "a corrupted cached chunk is found and dropped")


def hf_from_s3(smoked, ep, key, secret, tmp):
    creds = os.path.join(tmp, "credentials")
    with open(creds, "w") as f:
        f.write("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n"
                "[smoke-ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (key, secret))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL_S3=ep, AWS_SHARED_CREDENTIALS_FILE=creds, AWS_PROFILE="smoke-ci",
               AWS_DEFAULT_REGION="us-east-1", HOME=tmp)
    want = offline(smoked, HF_FIXTURE, "Hello")
    got = offline(smoked, "s3://models/hf/llama f16/", "Hello", env=env)
    check(want[0] == 0 and got[0] == 0 and got[1] == want[1],
          "HF directory from s3:// (shared credentials file, profile) = the local directory")
    if got[1] != want[1]:
        print("      " + got[2][-800:])
    env["AWS_PROFILE"] = "missing-profile"
    rc, _, err = offline(smoked, "s3://models/hf/llama f16/", "Hello", env=env)
    check(rc != 0 and "missing-profile" in err and secret not in err,
          "an unknown AWS_PROFILE is a clear start-up error")


def startup_errors(smoked, ep, key, secret):
    cases = [
        ("s3://models/gemma.gguf", s3_env(ep, key, "WrongSecret123"), ["403", "SignatureDoesNotMatch"],
         "a wrong secret"),
        ("s3://models/no-such.gguf", s3_env(ep, key, secret), ["404"], "a missing key"),
        ("s3://no-such-bucket/gemma.gguf", s3_env(ep, key, secret), ["404"], "a missing bucket"),
    ]
    for url, env, words, what in cases:
        rc, _, err = offline(smoked, url, "Hi", env=env)
        ok = rc != 0 and url in err and all(w in err for w in words) and secret not in err \
            and "WrongSecret123" not in err
        check(ok, "%s: start-up fails naming %s and %s, no secret" % (what, url, "/".join(words)))
        if not ok:
            print("      rc %d: %s" % (rc, err[-600:]))


def https(smoked, tmp):
    """A Hugging Face directory over https from a server with a self-signed
    certificate: refused without AWS_CA_BUNDLE, read with it."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    out = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                          "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                          "-keyout", key, "-out", cert], capture_output=True, text=True)
    if out.returncode:
        print("note: no https check (openssl req failed: %s)" % out.stderr[-200:])
        return
    srv = RangeServer(os.path.dirname(HF_FIXTURE), tls=(cert, key)).start()
    url = srv.url + "/" + os.path.basename(HF_FIXTURE) + "/"
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        rc, _, err = offline(smoked, url, "Hello", env=env)
        check(rc != 0 and url in err and "certificate" in err.lower(),
              "https with an unknown CA: refused, naming the URL")
        want = offline(smoked, HF_FIXTURE, "Hello")
        env["AWS_CA_BUNDLE"] = cert
        got = offline(smoked, url, "Hello", env=env)
        check(got[0] == 0 and got[1] == want[1], "https with AWS_CA_BUNDLE: the local directory's text")
        if got[0]:
            print("      " + got[2][-600:])
    finally:
        srv.stop()


def small_prefix(smoked):
    """GGUF headers larger than the first prefix (SMOKE_OBJSTORE_PREFIX=64
    KiB: the growth path), tiered so that the mapping beyond the header stays
    unfetched and unreadable (a read nobody pinned would fault): the default
    model and a mixture of experts (whose routers expert prediction reads in
    place), each with the local file's greedy text."""
    models = [MODEL, os.path.join(os.environ.get("SMOKE_TEST_MODELS", ""), "tiny-qwen3moe.gguf")]
    for m in models:
        if not os.path.exists(m):
            print("note: %s is absent (scripts/make-test-models)" % m)
            continue
        srv = RangeServer(os.path.dirname(m)).start()
        try:
            extra = ["--set", "memory.ram_cache=%d" % (os.path.getsize(m) // 2)]
            env = dict(os.environ, SMOKE_OBJSTORE_PREFIX="65536")
            want = offline(smoked, m, PROMPTS[0], extra=extra)
            got = offline(smoked, srv.url + "/" + os.path.basename(m), PROMPTS[0], env=env, extra=extra)
            check(want[0] == 0 and got[0] == 0 and got[1] == want[1],
                  "%s: header grown from a 64 KiB prefix, tiered: the local file's text" % os.path.basename(m))
            if got[1] != want[1]:
                print("      " + got[2][-600:])
        finally:
            srv.stop()


def faults(smoked, ref):
    srv = RangeServer(os.path.dirname(MODEL)).start()
    srv.stall_s = 4
    url = srv.url + "/" + os.path.basename(MODEL)
    env = {"SMOKE_OBJSTORE_STALL_S": "1", "SMOKE_OBJSTORE_RETRIES": "4"}
    # A RAM tier of a fifth of the model: weights are read during every token.
    d = Daemon(smoked, model=url, env=env, extra=["--set", "memory.ram_cache=48MB"])
    try:
        with d:
            # What is not fetched is not readable through the mapping: a read
            # nobody pinned faults instead of seeing a hole's zeros.
            name = os.path.basename(MODEL)
            with open("/proc/%d/maps" % d.proc.pid) as f:
                perms = [ln.split()[1] for ln in f if name in ln]
            check("---p" in perms and "r--p" in perms,
                  "the staged mapping: fetched parts readable, the rest PROT_NONE (%d areas)" % len(perms))
            srv.faults = ["503", "500", "trunc", "range", "long", "stall"]
            srv.fault_every = (7, "503")
            texts = [complete(d, p)[1] for p in PROMPTS]
            check(texts == ref, "faults retried (%d of %d GETs): completions equal the local file's"
                  % (srv.faults_sent, srv.gets))
            check(srv.faults_sent >= 6 and not srv.faults, "every kind of fault was served")
            srv.fault_every = None
            srv.always = "500"
            s, _, body = complete(d, PROMPTS[0])
            check(s >= 400 and url in body and "500" in body,
                  "a server that keeps failing: the request fails naming the URL (%d)" % s)
            print("      " + body[:600])
            check(health(d) == 200, "the daemon keeps serving (/health 200)")
            srv.always = None
            s, text, _ = complete(d, PROMPTS[0])
            check(s == 200 and text == ref[0], "after recovery: the same completion")
    finally:
        srv.stop()
        d.cleanup()


def main():
    smoked = sys.argv[1]
    miss = model_missing()
    if miss:
        print(miss)
        return SKIP
    if import_from_venv("moto") is None or import_from_venv("boto3") is None:
        print("SKIP: moto[server] is not installed (scripts/setup installs it)")
        return SKIP
    ref = [offline(smoked, MODEL, p)[1] for p in PROMPTS]
    faults(smoked, ref)
    small_prefix(smoked)
    tmp = tempfile.mkdtemp(prefix="smoke-objstore-test-")
    https(smoked, tmp)
    proc, ep, key, secret = start_moto()
    try:
        import boto3
        s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=key, aws_secret_access_key=secret,
                          region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        s3.upload_file(MODEL, "models", "gemma.gguf")
        for n in os.listdir(HF_FIXTURE):
            if n != "reference.json":
                s3.upload_file(os.path.join(HF_FIXTURE, n), "models", "hf/llama f16/" + n)
        startup_errors(smoked, ep, key, secret)
        hf_from_s3(smoked, ep, key, secret, tmp)
        gguf_from_s3(smoked, ref, ep, key, secret, tmp)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
