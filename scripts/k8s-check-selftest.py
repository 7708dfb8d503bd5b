#!/usr/bin/env python3
"""Tests scripts/k8s-check.py itself: a checker that never fails is worse
than none.

Usage: k8s-check-selftest.py RENDERED_DEV.yaml [RENDERED_PROD.yaml]

It runs the checker against a stand-in for `switchboard --check-config`
that answers as the contract says (docs/operations.md, "Checking a
configuration"): the rendered overlays must pass; then, one at a time, a
binary that disagrees with the manifests (another port or metrics port, a
missing path or health service, a refusal) and manifests broken in ways
that matter (a secret in a plain env value, a network policy that cuts
signal off auth, a grace period shorter than the drain, probes on the wrong
endpoints, a secret file not mounted, a scrape annotation on the wrong
port, the edge's metrics port behind its Service or open to the ingress
controller) must each fail with the expected message. Against the mTLS
overlay (the last one given, when it sets an mTLS identity): a gRPC probe
on the TLS-only port, the plaintext health port without a containerPort,
http:// to an mTLS server, an https health target not named by its peer,
an allow-list shutting a caller out, and the mTLS key from a ConfigMap.
"""

from __future__ import annotations

import copy
import os
import stat
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "k8s-check.py")
DOCKERFILE = os.path.join(HERE, "..", "Dockerfile")

# The contract's `--check-config`, in a few lines: the listen address and
# the files a service reads, from flags, env and the config file (flag >
# env > file); unknown config keys and missing credentials are refused.
STUB = r'''#!/usr/bin/env python3
import json, os, sys, tomllib
mode_file = __file__ + ".mode"
MODE = open(mode_file).read().strip() if os.path.exists(mode_file) else ""
if "--check-config" not in sys.argv:
    sys.exit("stub: only --check-config is implemented")
args = [a for a in sys.argv[1:] if a != "--check-config"]
sub, rest = args[0], args[1:]
KNOWN = set("""log_format edge_listen signal_urls auth_url service_key allowed_origins
allow_missing_origin static_dir max_connections max_connections_per_ip
new_connections_per_ip_per_second new_connections_per_ip_burst trusted_proxies
header_read_seconds signal_lanes drain_seconds drain_spread_seconds messages_per_second
message_burst auth_deadline_seconds ping_interval_seconds keepalive_timeout_seconds
write_timeout_seconds outbound_queue_bytes tls_cert tls_key allow_plaintext auth_listen
signing_key verification_keys api_keys jwt_issuer jwt_audience token_ttl refresh_ttl
max_session redis dev dangerously_expose_dev_mode signal_listen ice_servers turn_urls
turn_secret resume_window max_participants redis_key_ttl health_listen health_targets
health_redis health_target_timeout_ms grpc_link rebalance_threshold rebalance_per_second
metrics_listen mtls_ca mtls_cert mtls_key mtls_allow grpc_health_listen grpc_plaintext""".split())
config = {}
if os.environ.get("SWITCHBOARD_CONFIG"):
    with open(os.environ["SWITCHBOARD_CONFIG"], "rb") as f:
        config = tomllib.load(f)
for key in config:
    if key.removesuffix("_file") not in KNOWN:
        sys.exit(f"error: unknown key {key!r} in the config file")
def flag(name):
    for i, a in enumerate(rest):
        if a == name and i + 1 < len(rest):
            return rest[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
def setting(key, flag_name=None):
    """('value', v) or ('file', path) or None."""
    if flag_name and flag(flag_name) is not None:
        return ("value", flag(flag_name))
    env = "SWITCHBOARD_" + key.upper()
    if env in os.environ:
        return ("value", os.environ[env])
    if env + "_FILE" in os.environ:
        return ("file", os.environ[env + "_FILE"])
    if key in config:
        return ("value", config[key])
    if key + "_file" in config:
        return ("file", config[key + "_file"])
    return None
def is_loopback(host):
    return host.strip("[]") in ("localhost", "::1") or host.startswith("127.")
def as_list(got):
    if got is None or got[0] != "value":
        return []
    return got[1] if isinstance(got[1], list) else str(got[1]).split(",")
# Mutual TLS: all three files or none; the plaintext health port only with
# it; plaintext gRPC off loopback (listening, or an http:// URL) refused
# unless accepted, https:// only with an identity.
mtls = [setting(k, "--" + k.replace("_", "-")) for k in ("mtls_ca", "mtls_cert", "mtls_key")]
if any(mtls) and not all(mtls):
    sys.exit("error: --mtls-ca, --mtls-cert and --mtls-key go together")
grpc_tls = all(mtls)
got = setting("grpc_health_listen", "--grpc-health-listen")
grpc_health_listen = got[1] if got else None
if grpc_health_listen and not grpc_tls:
    sys.exit("error: --grpc-health-listen requires --mtls-ca")
plaintext = "--grpc-plaintext" in rest or str((setting("grpc_plaintext") or ("", ""))[1]).lower() == "true"
urls = {"edge": ["auth_url", "signal_urls"], "signal": ["auth_url"], "health": ["health_targets"]}.get(sub, [])
for key in urls:
    for url in as_list(setting(key)):
        url = url.split("=", 1)[-1]
        scheme, _, rest_url = url.partition("://")
        host = rest_url.split("/", 1)[0].rsplit(":", 1)[0]
        if scheme == "https" and not grpc_tls:
            sys.exit(f"error: {url}: https:// needs this service's mTLS identity")
        if scheme == "http" and not is_loopback(host) and not plaintext:
            sys.exit(f"error: {url}: plaintext gRPC off loopback")
DEFAULT_PORT = {"edge": 8080, "auth": 50051, "signal": 50052, "health": 8081}
got = setting(f"{sub}_listen", "--listen")
listen = got[1] if got else f"127.0.0.1:{DEFAULT_PORT[sub]}"
if sub in ("auth", "signal") and not grpc_tls and not plaintext and not is_loopback(listen.rsplit(":", 1)[0]):
    sys.exit(f"error: refusing plaintext gRPC for {sub} on {listen}")
if MODE == "wrong-port" and sub == "signal":
    host, port = listen.rsplit(":", 1)
    listen = f"{host}:{int(port) + 1}"
# edge, auth and signal serve /metrics on an admin port when asked; the
# health aggregator on its own port, always.
metrics = setting("metrics_listen", "--metrics-listen") if sub != "health" else None
metrics_listen = metrics[1] if metrics else None
if MODE == "wrong-metrics-port" and sub == "edge" and metrics_listen:
    host, port = metrics_listen.rsplit(":", 1)
    metrics_listen = f"{host}:{int(port) + 1}"
FILE_KEYS = {
    "edge": ["service_key", "redis"],
    "auth": ["api_keys", "redis"],
    "signal": ["api_keys", "turn_secret", "redis"],
    "health": ["health_redis"],
}[sub]
files = [s[1] for s in (setting(k) for k in FILE_KEYS) if s and s[0] == "file"]
files += [m[1] for m in mtls if m]
if os.environ.get("SWITCHBOARD_CONFIG"):
    files.insert(0, os.environ["SWITCHBOARD_CONFIG"])
if sub == "edge" and setting("service_key", "--service-key") is None:
    sys.exit("error: the edge needs --service-key (SWITCHBOARD_SERVICE_KEY)")
if sub == "auth":
    key = setting("signing_key", "--signing-key")
    if key is None:
        sys.exit("error: --signing-key (SWITCHBOARD_SIGNING_KEY) is required outside dev mode")
if MODE == "fail" and sub == "health":
    sys.exit("error: refused by the stub")
http = {"edge": ["/health/live", "/health/ready", "/ws"], "health": ["/health/live", "/health/ready", "/metrics"]}.get(sub, [])
if MODE == "no-ready" and sub == "edge":
    http.remove("/health/ready")
named = {"auth": "switchboard.v1.Auth", "signal": "switchboard.v1.Signal"}.get(sub)
grpc = ["", "liveness", named] if named else []
if MODE == "no-liveness" and sub == "auth":
    grpc.remove("liveness")
print(json.dumps({"service": sub, "listen": listen, "metrics_listen": metrics_listen,
                  "grpc_health_listen": grpc_health_listen, "grpc_tls": grpc_tls,
                  "http_paths": http, "grpc_health_services": grpc, "files": files}))
'''


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(docs, name):
    return find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def secret_in_env(docs):
    container(docs, "edge")["env"].append({"name": "SWITCHBOARD_SERVICE_KEY", "value": "edge:" + "x" * 32})


def policy_cuts_signal_off_auth(docs):
    expr = find(docs, "NetworkPolicy", "auth")["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
    expr[1]["values"] = [v for v in expr[1]["values"] if v != "signal"]


def short_grace(docs):
    find(docs, "Deployment", "edge")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 20


def readiness_on_live(docs):
    container(docs, "edge")["readinessProbe"]["httpGet"]["path"] = "/health/live"


def liveness_on_readiness(docs):
    del container(docs, "signal")["livenessProbe"]["grpc"]["service"]


def unmounted_secret(docs):
    volumes = find(docs, "Deployment", "edge")["spec"]["template"]["spec"]["volumes"]
    for v in volumes:
        if "secret" in v:
            v["secret"]["items"] = [{"key": "service-key", "path": "credential"}]


def unmounted_signing_key(docs):
    volumes = find(docs, "Deployment", "auth")["spec"]["template"]["spec"]["volumes"]
    for v in volumes:
        if "projected" in v:
            v["projected"]["sources"] = [s for s in v["projected"]["sources"] if s["secret"]["name"] != "switchboard-signing-keys"]


def unknown_config_key(docs):
    for d in docs:
        if d["kind"] == "ConfigMap":
            d["data"]["switchboard.toml"] += '\nno_such_setting = 1\n'


def writable_root(docs):
    container(docs, "health")["securityContext"]["readOnlyRootFilesystem"] = False


def shadowed_key(docs):
    container(docs, "signal")["env"].append({"name": "SWITCHBOARD_AUTH_URL", "value": "http://auth:50051"})


def annotations(docs, name):
    return find(docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]


def scrape_port_wrong(docs):
    annotations(docs, "signal")["prometheus.io/port"] = "50052"


def not_annotated(docs):
    del annotations(docs, "health")["prometheus.io/scrape"]


def no_metrics_listen(docs):
    c = container(docs, "auth")
    i = c["args"].index("--metrics-listen")
    del c["args"][i : i + 2]


def metrics_on_loopback(docs):
    c = container(docs, "auth")
    c["args"][c["args"].index("--metrics-listen") + 1] = "127.0.0.1:9090"


def edge_metrics_behind_ingress(docs):
    find(docs, "Service", "edge")["spec"]["ports"].append(
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    )
    find(docs, "Ingress", "edge")["spec"]["rules"][0]["http"]["paths"].insert(
        0, {"path": "/metrics", "pathType": "Exact", "backend": {"service": {"name": "edge", "port": {"name": "metrics"}}}}
    )


def edge_policy_every_port(docs):
    del find(docs, "NetworkPolicy", "edge")["spec"]["ingress"][0]["ports"]


def metrics_open_to_namespace(docs):
    find(docs, "NetworkPolicy", "metrics")["spec"]["ingress"][0]["from"].append({"podSelector": {}})


def scraper_shut_out(docs):
    peer = find(docs, "NetworkPolicy", "metrics")["spec"]["ingress"][0]["from"][0]
    peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] = "observability"


def probe_on_tls_port(docs):
    container(docs, "signal")["readinessProbe"]["grpc"]["port"] = 50052


def no_health_port(docs):
    c = container(docs, "signal")
    c["ports"] = [p for p in c["ports"] if p["containerPort"] != 50060]


def config_text(docs, edit):
    for d in docs:
        if d["kind"] == "ConfigMap" and "switchboard.toml" in (d.get("data") or {}):
            d["data"]["switchboard.toml"] = edit(d["data"]["switchboard.toml"])


def plaintext_url_to_mtls_auth(docs):
    # The edge accepts plaintext (so the binary lets the http:// URL
    # through), but auth speaks TLS only.
    config_text(docs, lambda t: t.replace('auth_url = "https://auth:50051"', 'auth_url = "http://auth:50051"') + "\ngrpc_plaintext = true\n")


def health_target_misnamed(docs):
    config_text(docs, lambda t: t.replace('"signal=https://signal:50052"', '"relay=https://signal:50052"'))


def allow_list_without_health(docs):
    env = container(docs, "signal")["env"]
    next(e for e in env if e["name"] == "SWITCHBOARD_MTLS_ALLOW")["value"] = "edge,backend"


def mtls_key_from_configmap(docs):
    env = container(docs, "signal")["env"]
    next(e for e in env if e["name"] == "SWITCHBOARD_MTLS_KEY")["value"] = "/etc/switchboard/switchboard.toml"


def uses_mtls(docs):
    """Whether a rendered overlay gives its services an mTLS identity."""
    for d in docs:
        if d["kind"] == "ConfigMap" and "mtls_ca" in (d.get("data") or {}).get("switchboard.toml", ""):
            return True
        if d["kind"] == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                if any(e["name"] == "SWITCHBOARD_MTLS_CA" for e in c.get("env") or []):
                    return True
    return False


# Against the mTLS overlay (prod), when given: (what, manifest change, text).
MTLS_CASES = [
    ("gRPC probe on the TLS-only port", probe_on_tls_port, "speaks TLS only (mTLS): the kubelet's plaintext gRPC probes must ask the grpc_health_listen port 50060"),
    ("plaintext health port not a containerPort", no_health_port, "grpc_health_listen port 50060 has no containerPort"),
    ("http:// to an mTLS server", plaintext_url_to_mtls_auth, "auth serves mTLS only (grpc_tls): dial https://"),
    ("https health target not named by its peer", health_target_misnamed, "the name must be the peer name 'signal'"),
    ("allow-list shuts out the health aggregator", allow_list_without_health, "does not let health in"),
    ("mTLS key from a ConfigMap", mtls_key_from_configmap, "private keys belong in Secrets"),
]

# (what, stub mode, manifest change, text the checker must print)
CASES = [
    ("binary listens elsewhere", "wrong-port", None, "≠ listen port"),
    ("binary has no /health/ready", "no-ready", None, "/health/ready is not one of"),
    ("binary has no 'liveness' service", "no-liveness", None, "'liveness' is not one of"),
    ("binary refuses the configuration", "fail", None, "exited 1"),
    ("secret in a plain env value", "", secret_in_env, "as a plain value"),
    ("network policy cuts signal off auth", "", policy_cuts_signal_off_auth, "keep signal from auth"),
    ("grace period below preStop + drain", "", short_grace, "SIGKILL would cut the drain"),
    ("readiness on the liveness endpoint", "", readiness_on_live, "readinessProbe must use"),
    ("liveness on the readiness service", "", liveness_on_readiness, "must ask for 'liveness'"),
    ("secret file not mounted", "", unmounted_secret, "which no volume mounts"),
    ("signing key not mounted", "", unmounted_signing_key, "signing-key.jwk, which no volume mounts"),
    ("unknown config key", "", unknown_config_key, "unknown key"),
    ("writable root filesystem", "", writable_root, "readOnlyRootFilesystem is not true"),
    ("config key overridden by env", "", shadowed_key, "config key auth_url is overridden"),
    ("binary's metrics port elsewhere", "wrong-metrics-port", None, "containerPort metrics 9090 ≠ metrics_listen port 9091"),
    ("scrape annotation on the wrong port", "", scrape_port_wrong, "prometheus.io/port 50052 ≠ 9090"),
    ("pod serving /metrics not annotated", "", not_annotated, 'has no prometheus.io/scrape: "true"'),
    ("metrics port declared, none served", "", no_metrics_listen, "the binary serves no metrics port"),
    ("metrics_listen on loopback", "", metrics_on_loopback, "metrics_listen on loopback"),
    ("edge's metrics port behind the Service and Ingress", "", edge_metrics_behind_ingress, "routes to edge's metrics port 9090, publicly (Ingress edge)"),
    ("edge's metrics port open to the ingress controller", "", edge_policy_every_port, "the ingress controller (ingress-nginx) can reach it"),
    ("metrics port open to the whole namespace", "", metrics_open_to_namespace, "admits every pod of namespace"),
    ("scraper shut out by the NetworkPolicies", "", scraper_shut_out, "keep the scraper"),
]


def run_checker(stub, rendered):
    done = subprocess.run(
        [sys.executable, CHECKER, "--bin", stub, "--dockerfile", DOCKERFILE, *rendered],
        capture_output=True,
        text=True,
    )
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    rendered = sys.argv[1:]
    if not rendered:
        sys.exit(__doc__)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        stub = os.path.join(tmp, "switchboard")
        with open(stub, "w") as f:
            f.write(STUB)
        os.chmod(stub, os.stat(stub).st_mode | stat.S_IXUSR)

        rc, out = run_checker(stub, rendered)
        if rc == 0:
            print(f"ok   the overlays pass against the stand-in ({', '.join(rendered)})")
        else:
            print(f"FAIL the overlays fail against the stand-in:\n{out}")
            failed += 1

        base = load(rendered[0])
        for what, mode, change, expected in CASES:
            with open(stub + ".mode", "w") as f:
                f.write(mode)
            target = rendered[0]
            if change:
                docs = copy.deepcopy(base)
                change(docs)
                target = os.path.join(tmp, "changed.yaml")
                with open(target, "w") as f:
                    yaml.safe_dump_all(docs, f)
            rc, out = run_checker(stub, [target])
            if rc != 0 and expected in out:
                print(f"ok   caught: {what}")
            else:
                print(f"FAIL not caught: {what} (exit {rc}; expected {expected!r}):\n{out}")
                failed += 1

        # The mTLS overlay: the last one given, if it turns mTLS on.
        with open(stub + ".mode", "w") as f:
            f.write("")
        mtls = load(rendered[-1]) if len(rendered) > 1 else []
        if not uses_mtls(mtls):
            mtls = []
            print("skip the mTLS cases: the last overlay given (not the first) has no mTLS identity")
        for what, change, expected in MTLS_CASES if mtls else []:
            docs = copy.deepcopy(mtls)
            change(docs)
            target = os.path.join(tmp, "changed.yaml")
            with open(target, "w") as f:
                yaml.safe_dump_all(docs, f)
            rc, out = run_checker(stub, [target])
            if rc != 0 and expected in out:
                print(f"ok   caught: {what}")
            else:
                print(f"FAIL not caught: {what} (exit {rc}; expected {expected!r}):\n{out}")
                failed += 1
    total = len(CASES) + 1 + (len(MTLS_CASES) if mtls else 0)
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
