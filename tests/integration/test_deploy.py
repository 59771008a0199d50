#!/usr/bin/env python3
"""The files of deploy/ (issue 16, item 2) checked offline.

Usage: test_deploy.py PATH/TO/smoked

1. Kubernetes: every resource of deploy/k8s/base validates, strictly (no
   unknown field), against the Kubernetes schemas that PyPI's
   kubernetes-validate ships (scripts/setup puts it in the venv; no network),
   for the newest version it knows and for 1.30 (the first where a preStop
   `sleep` is on by default); the base's kustomization lists exactly its
   files; the GPU overlay's JSON 6902 patch applies to the base Deployment
   and the result validates and asks for nvidia.com/gpu.  The pieces agree:
   the ConfigMap's smoked.conf is accepted by smoked itself (--print-config),
   terminationGracePeriodSeconds exceeds preStop + drain_delay +
   shutdown_grace + 5 s (the daemon's wait for the last responses), the
   probes ask /health on the container port smoked listens on, the model is
   on the read-only model volume (a PVC), the Service, the PDB, the
   ServiceMonitor and the pods' selectors and ports match, and the
   prometheus.io annotations name the port.
2. Grafana: every expression (panels and template queries) of
   deploy/grafana/smoke.json names only series that smoked's /metrics
   exports, against the default model; names it does not export there must
   be MoE-only and are checked against tiny-qwen3moe ($SMOKE_TEST_MODELS).
3. HAProxy and nginx: `haproxy -c` accepts deploy/haproxy.cfg and
   `nginx -t` deploy/nginx/smoke.conf, where they are installed.
A part whose tools or model are missing says so and is skipped; with every
part skipped the test exits 77.
"""
import copy
import glob
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

yaml = fx.import_from_venv("yaml")
kv = fx.import_from_venv("kubernetes_validate")

SMOKED = sys.argv[1] if len(sys.argv) > 1 else "build/daemon/smoked"
ROOT = os.environ.get("SMOKE_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
MOE = os.path.join(os.environ.get("SMOKE_TEST_MODELS", "/nonexistent"), "tiny-qwen3moe.gguf")
check = fx.Checks()
ran = []


# ---- 1. Kubernetes ----

def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def validate(doc, version, what):
    try:
        kv.validate(doc, version, strict=True)
        return check(True, "%s validates against Kubernetes %s (strict)" % (what, version))
    except Exception as e:  # kubernetes_validate's ValidationError and friends
        return check(False, "%s against Kubernetes %s: %s" % (what, version, str(e).splitlines()[0]))


def json_patch(doc, ops):
    """Apply JSON 6902 add/replace ops (the subset kustomize patches use here)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        if op["op"] == "add" and isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace":
                assert (int(last) < len(node)) if isinstance(node, list) else last in node, op["path"]
            if isinstance(node, list):
                node[int(last)] = op["value"]
            else:
                node[last] = op["value"]
        else:
            raise ValueError("unsupported op %r" % op["op"])
    return doc


def seconds(text):
    m = re.fullmatch(r"([0-9.]+)\s*(ms|s|m|h)?", text.strip())
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def part_k8s():
    if yaml is None or kv is None:
        print("SKIP part 1: kubernetes-validate or pyyaml is absent (scripts/setup installs them)")
        return
    ran.append("k8s")
    versions = [kv.utils.latest_version()]
    if "1.30.0" in kv.utils.all_versions():
        versions.append("1.30.0")
    base = os.path.join(K8S, "base")
    kust = load_docs(os.path.join(base, "kustomization.yaml"))[0]
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(base, "*.yaml")))
    check(sorted(kust["resources"] + ["kustomization.yaml"]) == files,
          "base/kustomization.yaml lists every manifest of base/ (%s)" % ", ".join(kust["resources"]))
    docs = {}
    for name in kust["resources"]:
        for d in load_docs(os.path.join(base, name)):
            docs[d["kind"]] = d
            for v in versions:
                validate(d, v, "base/%s (%s %s)" % (name, d["kind"], d["metadata"]["name"]))
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "PersistentVolumeClaim"):
        check(kind in docs, "base has a %s" % kind)
    dep, svc, pdb, cm = docs["Deployment"], docs["Service"], docs["PodDisruptionBudget"], docs["ConfigMap"]
    pod = dep["spec"]["template"]
    ctr = pod["spec"]["containers"][0]

    # The GPU overlay.
    gpu_dir = os.path.join(K8S, "overlays", "gpu")
    gk = load_docs(os.path.join(gpu_dir, "kustomization.yaml"))[0]
    check(gk["resources"] == ["../../base"], "overlays/gpu builds on the base")
    for p in gk["patches"]:
        check(p["target"]["kind"] == "Deployment" and p["target"]["name"] == dep["metadata"]["name"],
              "overlays/gpu patches the base Deployment")
        with open(os.path.join(gpu_dir, p["path"])) as f:
            ops = yaml.safe_load(f)
        gdep = json_patch(dep, ops)
        for v in versions:
            validate(gdep, v, "overlays/gpu Deployment")
        limits = gdep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        check(int(limits.get("nvidia.com/gpu", 0)) >= 1, "overlays/gpu asks for nvidia.com/gpu (%s)" % limits)

    # The daemon accepts the ConfigMap's smoked.conf.
    conf = cm["data"]["smoked.conf"]
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(conf)
    out = subprocess.run([SMOKED, "--config", f.name, "--print-config"], capture_output=True, text=True, timeout=60)
    os.unlink(f.name)
    check(out.returncode == 0, "smoked --print-config accepts the ConfigMap's smoked.conf (%s)" % out.stderr.strip()[:200])
    eff, section = {}, ""
    for line in out.stdout.splitlines():
        m = re.match(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
        m = re.match(r"(\w+) = (.*)", line)
        if m:
            eff[section + "." + m.group(1)] = m.group(2).strip('"')
    drain, grace = seconds(eff.get("limits.drain_delay", "0")), seconds(eff.get("limits.shutdown_grace", "0"))
    port = int(eff.get("server.port", "0"))
    pre = ctr["lifecycle"]["preStop"]["sleep"]["seconds"]
    tgps = pod["spec"]["terminationGracePeriodSeconds"]
    check(drain > 0, "the ConfigMap sets limits.drain_delay (%g s)" % drain)
    check(tgps > pre + drain + grace + 5,
          "terminationGracePeriodSeconds %d > preStop %d + drain_delay %g + shutdown_grace %g + 5"
          % (tgps, pre, drain, grace))
    check(eff.get("server.host") in ("0.0.0.0", "::"), "smoked listens on the pod's addresses (%s)" % eff.get("server.host"))

    # Ports, probes, volumes.
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    check(ports.get("http") == port, "the container port 'http' (%s) is server.port (%d)" % (ports.get("http"), port))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        pr = ctr.get(probe, {}).get("httpGet", {})
        check(pr.get("path") == "/health" and pr.get("port") in ("http", port), "%s: GET /health on the http port" % probe)
    sp, lp = ctr["startupProbe"], ctr["livenessProbe"]
    check(sp["periodSeconds"] * sp["failureThreshold"] >= 300,
          "the startup probe allows %d s to load the model" % (sp["periodSeconds"] * sp["failureThreshold"]))
    check(lp["periodSeconds"] * lp["failureThreshold"] > drain + grace,
          "the liveness probe (%d s of failures) outlasts a drain (%g s)"
          % (lp["periodSeconds"] * lp["failureThreshold"], drain + grace))
    args = ctr["args"]
    cpath = args[args.index("--config") + 1]
    mounts = {m["name"]: m for m in ctr["volumeMounts"]}
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    cm_mount = [m for n, m in mounts.items() if "configMap" in vols[n]]
    check(len(cm_mount) == 1 and cpath == os.path.join(cm_mount[0]["mountPath"], "smoked.conf")
          and vols[cm_mount[0]["name"]]["configMap"]["name"] == cm["metadata"]["name"],
          "--config %s is the ConfigMap's smoked.conf" % cpath)
    mpath = eff.get("model.path", "")
    mvol = [n for n, m in mounts.items() if mpath.startswith(m["mountPath"].rstrip("/") + "/")]
    check(len(mvol) == 1 and "persistentVolumeClaim" in vols[mvol[0]] and mounts[mvol[0]].get("readOnly")
          and vols[mvol[0]]["persistentVolumeClaim"]["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"],
          "model.path %s is on the read-only model PVC" % mpath)
    res = ctr["resources"]
    check("cpu" in res["requests"] and "memory" in res["limits"], "resources: CPU requested, memory limited")
    check(int(eff.get("model.threads", "0")) == int(str(res["requests"]["cpu"])),
          "model.threads (%s) = the CPU request (%s)" % (eff.get("model.threads"), res["requests"]["cpu"]))

    # Selectors and scraping.
    labels = pod["metadata"]["labels"]

    def selects(sel):
        return all(labels.get(k) == v for k, v in sel.items())
    check(selects(dep["spec"]["selector"]["matchLabels"]), "the Deployment selects its pods")
    check(selects(svc["spec"]["selector"]), "the Service selects the pods")
    check(selects(pdb["spec"]["selector"]["matchLabels"]), "the PodDisruptionBudget selects the pods")
    check(svc["spec"]["ports"][0]["targetPort"] in ("http", port), "the Service targets the http port")
    check(dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0,
          "rolling updates start a new pod before stopping an old one")
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(port)
          and ann.get("prometheus.io/path") == "/metrics", "the pods carry prometheus.io scrape annotations")
    sm = load_docs(os.path.join(K8S, "monitoring", "servicemonitor.yaml"))[0]
    svc_port_names = [p.get("name") for p in svc["spec"]["ports"]]
    check(sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor"
          and all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
          and all(e["port"] in svc_port_names and e.get("path", "/metrics") == "/metrics" for e in sm["spec"]["endpoints"]),
          "the ServiceMonitor selects the Service and scrapes /metrics on its named port")


# ---- 2. Grafana ----

def exported(model, extra=()):
    """The sample names of /metrics from a daemon serving model, after one request."""
    d = fx.Daemon(SMOKED, model=model, extra=list(extra))
    with d:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)
        c.request("POST", "/v1/completions", body=json.dumps({"prompt": "Hello", "max_tokens": 2}),
                  headers={"Content-Type": "application/json"})
        c.getresponse().read()
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
    d.cleanup()
    return {re.split(r"[{ ]", line, 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def dashboard_exprs(dash):
    out = []

    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))
    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            out.append(q)
    return out


def part_grafana():
    with open(os.path.join(ROOT, "deploy", "grafana", "smoke.json")) as f:
        dash = json.load(f)
    exprs = dashboard_exprs(dash)
    names = set()
    for e in exprs:
        names |= set(re.findall(r"\b(smoke_[a-z0-9_]+)\b", e))
    check(len(exprs) >= 20 and len(names) >= 20, "the dashboard has %d expressions over %d smoke series"
          % (len(exprs), len(names)))
    check(all(re.search(r"\bsmoke_", e) for e in exprs), "every expression names a smoke series")
    skip = fx.model_missing()
    if skip:
        print("SKIP part 2: " + skip)
        return
    ran.append("grafana")
    dense = exported(fx.MODEL, ["--threads", "2"])
    rest = sorted(names - dense)
    print("note: %d series exported by the default model; not there: %s" % (len(dense), ", ".join(rest) or "none"))
    check(all(n.startswith(("smoke_expert", "smoke_experts", "smoke_forward_tokens")) for n in rest),
          "every series the default model does not export is MoE-only (%s)" % ", ".join(rest))
    if not rest:
        return
    if not os.path.exists(MOE):
        print("SKIP the MoE series: %s is absent (scripts/make-test-models)" % MOE)
        return
    moe = exported(MOE)
    missing = [n for n in rest if n not in moe]
    check(not missing, "tiny-qwen3moe's /metrics exports the MoE series %s%s"
          % (", ".join(rest), "; missing: " + ", ".join(missing) if missing else ""))


# ---- 3. HAProxy and nginx syntax ----

def part_proxies():
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    if haproxy:
        ran.append("haproxy")
        with open(os.path.join(ROOT, "deploy", "haproxy.cfg")) as f:
            text = f.read()
        tmp = tempfile.mkdtemp(prefix="smoke-deploy-")
        # The stats socket's directory exists on a real install only.
        text = re.sub(r"(?m)^(\s*stats socket )/\S+", r"\g<1>" + os.path.join(tmp, "s.sock"), text)
        cfg = os.path.join(tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(text)
        out = subprocess.run([haproxy, "-c", "-f", cfg], capture_output=True, text=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
        check(out.returncode == 0, "haproxy -c accepts deploy/haproxy.cfg (%s)" % (out.stdout + out.stderr).strip()[-300:])
    else:
        print("SKIP haproxy -c: haproxy is absent")
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if nginx:
        ran.append("nginx")
        tmp = tempfile.mkdtemp(prefix="smoke-nginx-")
        main = os.path.join(tmp, "nginx.conf")
        with open(main, "w") as f:
            f.write("pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n" % tmp)
            for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
                f.write("  %s_temp_path %s/%s;\n" % (t, tmp, t))
            f.write("  include %s;\n}\n" % os.path.join(ROOT, "deploy", "nginx", "smoke.conf"))
        out = subprocess.run([nginx, "-t", "-p", tmp, "-c", main], capture_output=True, text=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
        check(out.returncode == 0, "nginx -t accepts deploy/nginx/smoke.conf (%s)" % out.stderr.strip()[-300:])
    else:
        print("SKIP nginx -t: nginx is absent (not installed by scripts/setup)")


def main():
    for part in (part_k8s, part_grafana, part_proxies):
        try:
            part()
        except (OSError, KeyError, TypeError, ValueError, IndexError, AssertionError,
                subprocess.SubprocessError, RuntimeError) as e:
            check(False, "%s raised %s: %s" % (part.__name__, type(e).__name__, e))
    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    if not ran and not check.failures:
        print("SKIP: nothing could be checked here")
        return fx.SKIP
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
