#!/usr/bin/env python3
"""Integration test: schemathesis (PyPI) fuzzes the live smoked with
proto/openapi.yaml and checks every answer against the spec.

Checks: not_a_server_error (no 5xx), status_code_conformance (only
documented statuses), content_type_conformance (only documented media
types), response_schema_conformance (bodies, and each server-sent event
of a stream, match their schemas), response_headers_conformance (documented
headers such as the 405's required Allow are present and valid) and
unsupported_method (a method the spec does not list for a path gets 405
with Allow).  Positive and negative (spec-violating) requests are
generated; a negative one must get a documented error.

The daemon runs with --max-tokens 8 --default-max-tokens 4 --ctx 256, so
that any request the spec allows costs at most a few tokens (streams too),
and the example budget is small (SMOKE_SCHEMATHESIS_EXAMPLES, default 100
per operation, fixed seed): a few minutes on 2 shared cores.  Each request
gets a generous timeout.

Usage: test_schemathesis.py PATH/TO/smoked
Skipped (exit 77) without the model or without schemathesis; when the
interpreter running this lacks it, the venv of scripts/setup
(${SMOKE_CACHE:-~/.cache/smoke}/venv) is tried first.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

schemathesis = fx.import_from_venv("schemathesis")

ROOT = os.environ.get("SMOKE_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SPEC = os.path.join(ROOT, "proto", "openapi.yaml")
KEY = "schemathesis-key"
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "unsupported_method"]


def st_command():
    """The schemathesis CLI of this interpreter (`st`, or `python -m`)."""
    st = os.path.join(os.path.dirname(sys.executable), "st")
    if os.access(st, os.X_OK):
        return [st]
    st = shutil.which("st")
    return [st] if st else [sys.executable, "-m", "schemathesis.cli"]


def main():
    smoked = sys.argv[1]
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP
    if schemathesis is None:
        print("SKIP: the schemathesis Python package is not installed (scripts/setup installs it in its venv)")
        return fx.SKIP
    print("schemathesis %s" % schemathesis.__version__)
    examples = os.environ.get("SMOKE_SCHEMATHESIS_EXAMPLES", "100")
    # With an API key the spec's 401 paths are reachable too; the key is sent
    # on every request, so the generated bodies reach the handlers.
    d = fx.Daemon(smoked, api_key=KEY,
                  extra=["--max-tokens", "8", "--default-max-tokens", "4", "--ctx", "256",
                         "--concurrency", "2", "--queue", "8", "--request-timeout", "300"])
    rc = 1
    try:
        with d:
            cmd = st_command() + [
                "run", os.path.abspath(SPEC), "--url", d.url,
                "--checks", ",".join(CHECKS),
                "--max-examples", examples, "--seed", "20261126", "--workers", "1",
                "--request-timeout", "300", "--header", "Authorization: Bearer " + KEY,
                "--suppress-health-check", "all", "--no-color",
            ]
            print("running:", " ".join(c if KEY not in c else "Authorization: Bearer ***" for c in cmd))
            sys.stdout.flush()
            env = dict(os.environ, NO_COLOR="1")
            # A scratch directory for hypothesis' example database and
            # schemathesis' state: nothing lands in the tree, and every run
            # starts from the same seed alone.
            with tempfile.TemporaryDirectory(prefix="smoke-st-") as scratch:
                r = subprocess.run(cmd, env=env, cwd=scratch, timeout=1500)
            rc = r.returncode
            # The daemon must still serve after the fuzzing.
            status, body = fx.health(d.port)
            print("%s daemon healthy after the run (%s %s)" % ("ok   " if status == 200 else "FAIL ", status, body))
            if status != 200:
                rc = 1
        print("%s daemon exit status 0 after SIGTERM (got %s)" % ("ok   " if d.rc == 0 else "FAIL ", d.rc))
        if d.rc != 0:
            rc = 1
        if rc:
            print("---- daemon log ----\n" + d.log_text()[-6000:])
    finally:
        d.stop()
        d.cleanup()
    print("schemathesis: %s" % ("passed" if rc == 0 else "FAILED (exit %d)" % rc))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
