"""Shared helpers for the integration tests that drive the real smoked:
where the model is, a free loopback port, the offline command's output, and
a Daemon that starts smoked, waits until /health says ready and stops it with
SIGTERM.  Used by test_daemon.py, test_client.py, test_client_cli.py and
test_openai.py.

Conventions (the same in every integration test): the model comes from
$SMOKE_MODEL (default ${SMOKE_CACHE:-~/.cache/smoke}/models/
gemma-3-270m-q4_k_m.gguf); a test without it prints "SKIP: ..." and exits 77,
which meson reports as skipped.  No timing assumption is made beyond generous
deadlines: the machine running the tests may be heavily shared.
"""
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
MODEL = os.environ.get("SMOKE_MODEL") or os.path.join(
    os.environ.get("SMOKE_CACHE", os.path.expanduser("~/.cache/smoke")), "models",
    "gemma-3-270m-q4_k_m.gguf")


def model_missing():
    """A SKIP line if the model is absent, else None."""
    if not os.path.exists(MODEL):
        return "SKIP: model %s is absent (scripts/fetch-model fetches it)" % MODEL
    return None


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port():
    """A loopback port where nothing listens (bound then released)."""
    return free_port()


def offline(smoked, prompt, n, threads=2):
    """The offline command's greedy continuation of prompt: exactly the
    generated text (smoked prints no newline when stdout is a pipe)."""
    out = subprocess.run([smoked, "--model", MODEL, "--prompt", prompt, "-n", str(n), "--temp", "0",
                          "--threads", str(threads)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def health(port, timeout=10):
    """(status, body) of GET /health, or (None, None) if nothing answers."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/health")
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        c.close()
        return r.status, body
    except OSError:
        return None, None


class Daemon:
    """smoked on a free loopback port with the default model (or `model`:
    a GGUF file or a Hugging Face directory).

    d = Daemon(smoked, api_key="k", extra=["--concurrency", "2"])
    d.start(); d.wait_ready(); ...; rc = d.stop(); text = d.log_text()
    Or as a context manager, which starts, waits and stops (the exit status
    is then in d.rc).  stderr goes to a temporary log file kept until
    cleanup(), so that a failing test can print its tail.  `env`: variables
    added to (or, with value None, removed from) this process's environment
    for smoked, e.g. {"SMOKE_BACKEND": "cuda-emu"}."""

    def __init__(self, smoked, api_key=None, extra=(), threads=2, port=None, model=None, env=None):
        self.smoked = smoked
        self.env = None
        if env:
            self.env = dict(os.environ)
            for k, v in env.items():
                if v is None:
                    self.env.pop(k, None)
                else:
                    self.env[k] = v
        self.api_key = api_key
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.args = [smoked, "--model", model or MODEL, "--port", str(self.port),
                     "--threads", str(threads)]
        if api_key:
            self.args += ["--api-key", api_key]
        self.args += list(extra)
        self.proc = None
        self.log = None
        self.rc = None

    def start(self):
        self.log = tempfile.NamedTemporaryFile(prefix="smoked-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.log, env=self.env)
        return self

    def wait_ready(self, timeout=300, on_loading=None):
        """Poll /health until 200; True when ready.  on_loading(status,
        body) is called for each answer that is not 200 (e.g. 503 loading).
        False if the daemon exits or the deadline passes."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            status, body = health(self.port)
            if status == 200:
                return True
            if status is not None and on_loading:
                on_loading(status, body)
            time.sleep(0.1)
        return False

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the exit status (None if it had to be
        killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.rc = None
        else:
            self.rc = self.proc.returncode
        return self.rc

    def log_text(self):
        if not self.log:
            return ""
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def cleanup(self):
        if self.log:
            self.log.close()
            try:
                os.unlink(self.log.name)
            except OSError:
                pass
            self.log = None

    def __enter__(self):
        self.start()
        if not self.wait_ready():
            text = self.log_text()
            self.stop()
            self.cleanup()
            raise RuntimeError("smoked did not become ready on port %d; log:\n%s" % (self.port, text[-4000:]))
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class Checks:
    """The tests' check(cond, what): prints an "ok"/"FAIL" line per check and
    keeps the count for the closing "N passed, N failed" line."""

    def __init__(self):
        self.passed = 0
        self.failures = []

    def __call__(self, cond, what):
        print(("ok    " if cond else "FAIL  ") + what)
        sys.stdout.flush()
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
        return cond


def import_from_venv(name):
    """Import module `name`; if this interpreter lacks it, re-run the calling
    script once under the venv of scripts/setup (${SMOKE_CACHE}/venv), which
    has the test-only Python packages.  Returns the module, or None when it
    is available nowhere (the caller then skips)."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        pass
    venv = os.path.join(os.environ.get("SMOKE_CACHE", os.path.expanduser("~/.cache/smoke")), "venv")
    venv_py = os.path.join(venv, "bin", "python")
    flag = "SMOKE_REEXEC_" + name.upper()
    # Compare prefixes, not executables: a venv's python is a link to the
    # interpreter it was made from.
    if os.access(venv_py, os.X_OK) and os.path.realpath(sys.prefix) != os.path.realpath(venv) \
            and not os.environ.get(flag):
        os.environ[flag] = "1"
        os.execv(venv_py, [venv_py] + sys.argv)
    return None


def schema_validator(root):
    """(valid, spec): valid(obj, name) checks obj against
    components/schemas/<name> of proto/openapi.yaml under root, printing
    why not; spec is the parsed document.  Where yaml or jsonschema are
    missing (scripts/setup installs them): one note, valid always True,
    spec None."""
    try:
        import yaml
        import jsonschema
    except ImportError as e:
        print("note: no schema validation (%s); run scripts/setup" % e)
        return (lambda obj, name: True), None
    with open(os.path.join(root, "proto", "openapi.yaml")) as f:
        spec = yaml.safe_load(f)

    def valid(obj, name):
        schema = {"$ref": "#/components/schemas/" + name, "components": spec["components"]}
        try:
            jsonschema.Draft202012Validator(schema).validate(obj)
            return True
        except jsonschema.ValidationError as e:
            print("      schema %s: %s at %s" % (name, e.message, list(e.absolute_path)))
            return False
    return valid, spec
