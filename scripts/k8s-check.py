#!/usr/bin/env python3
"""Checks rendered Kubernetes manifests against the switchboard binary itself.

Usage: k8s-check.py --bin SWITCHBOARD [--dockerfile Dockerfile] RENDERED.yaml...

Each RENDERED.yaml is one overlay as `kubectl kustomize` prints it. For every
container of a Deployment that runs the switchboard image, the container's
configuration is handed to `SWITCHBOARD --check-config <its args>`: the
image's ENV (from the Dockerfile), the container's env (plain values and
values from the rendered ConfigMaps), and SWITCHBOARD_CONFIG pointed at a
copy of the config file from its ConfigMap. The binary answers with one JSON
line (the service, the address it listens on, its HTTP paths, its
grpc.health.v1 services, whether its gRPC links use mutual TLS, the
plaintext health port it serves beside a TLS-only gRPC port, the files it
would read), and the manifests must agree with it:

  * the command exits 0 (the configuration is valid);
  * every containerPort and every probe's port is the port it listens on,
    except the port named `metrics`, which is its metrics_listen port (the
    admin port of edge, auth and signal; off loopback, not the listen port),
    and its grpc_health_listen port (with mTLS: plaintext grpc.health.v1
    alone, off loopback), which must be a containerPort;
  * with mTLS (grpc_tls) the gRPC port speaks TLS only, which the kubelet's
    gRPC probes cannot: they must ask the grpc_health_listen port;
  * a pod that serves /metrics (an admin port, or the health aggregator's
    own port) is annotated prometheus.io/scrape "true", prometheus.io/port
    that port and prometheus.io/path /metrics, and the NetworkPolicies let
    the scraper (--monitoring-namespace, --monitoring-pod-label) reach it;
  * an admin port admits the scraper only: every NetworkPolicy rule that
    opens it names the scraper's namespace and pods and nothing broader,
    the ingress controller cannot reach it, and no Service (so no Ingress)
    routes to it;
  * every HTTP probe path is one of its paths, every gRPC probe's service one
    of its health services; liveness and startup probes use the liveness
    endpoints (which never depend on another process), readiness the
    readiness ones;
  * every file it would read is mounted, secrets from Secrets;
  * no secret is on a command line, in a plain env value, in a ConfigMap or
    in the config file (only SWITCHBOARD_*_FILE names point at them);
  * no key of the config file is silently overridden by the environment;
  * the URLs it dials (auth_url, signal_urls, health_targets, redis) name
    Services and ports of the overlay, and the NetworkPolicies let it in;
    a gRPC server with mTLS is dialled https:// (its name before `=` in a
    health target being its peer name), one without http://, and with mTLS
    the server's allow-list (mtls_allow, or its defaults) names the caller;
  * Services, the Ingress, autoscalers and disruption budgets point at what
    exists; the Ingress's https origin is one of the edge's allowed origins;
  * the edge's grace period exceeds its preStop sleep plus drain_seconds,
    and drain_spread_seconds is below drain_seconds;
  * several signal or auth replicas have a Redis to share state through;
  * every container runs non-root, read-only, without privilege escalation
    or capabilities, under RuntimeDefault seccomp, with requests and limits.

It prints what it checked and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:
    sys.exit("k8s-check: PyYAML is missing (scripts/k8s-validate.sh installs it in its venv)")

IMAGE = "switchboard"
ENTRYPOINT = "/usr/local/bin/switchboard"
UID = 10001
LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"
LIVENESS_SERVICE = "liveness"
METRICS_PATH = "/metrics"
METRICS_PORT_NAME = "metrics"
# The annotations of the usual `kubernetes-pods` scrape job
# (deploy/monitoring/README.md).
SCRAPE = "prometheus.io/scrape"
SCRAPE_PORT = "prometheus.io/port"
SCRAPE_PATH = "prometheus.io/path"
SUBCOMMANDS = {"edge", "auth", "signal", "health"}

# Settings that are secrets: only ever as SWITCHBOARD_<NAME>_FILE (or a
# <name>_file key) naming a file mounted from a Secret.
SECRET_KEYS = {"service_key", "api_keys", "turn_secret", "api_secret"}
SECRET_FLAGS = {"--service-key", "--api-key", "--turn-secret", "--api-secret"}

# The settings this script reads itself (URLs to check, the drain), with
# their flags, whether they are lists, and the binary's defaults.
FLAGS = {
    "auth_url": "--auth-url",
    "signal_urls": "--signal-url",
    "health_targets": "--target",
    "redis": "--redis",
    "health_redis": "--redis",
    "allowed_origins": "--allowed-origin",
    "drain_seconds": "--drain-seconds",
    "drain_spread_seconds": "--drain-spread-seconds",
    "mtls_allow": "--mtls-allow",
}
LISTS = {"signal_urls", "health_targets", "redis", "allowed_origins", "mtls_allow"}
DEFAULTS = {
    "auth_url": "http://127.0.0.1:50051",
    "signal_urls": ["http://127.0.0.1:50052"],
    "health_targets": [],
    "redis": [],
    "health_redis": "",
    "allowed_origins": [],
    "drain_seconds": 10,
    "drain_spread_seconds": 5,
    "mtls_allow": [],  # empty: the server's own defaults (MTLS_ALLOW_DEFAULTS)
}
# The peer names a gRPC server with mTLS answers when mtls_allow is empty;
# a client presents its service's name (its certificate's DNS SAN).
MTLS_ALLOW_DEFAULTS = {"auth": ["edge", "signal", "health"], "signal": ["edge", "health"]}
# The settings whose URLs reach auth and signal (gRPC: http:// or https://).
GRPC_DIALS = {"auth_url", "signal_urls", "health_targets"}
# Settings whose values are paths of files read at start (private keys
# among them), per service: mounted, and the private ones from Secrets,
# whether or not the binary lists them.
PATHS = {
    "auth": {"signing_key": "--signing-key", "verification_keys": "--verification-key"},
    "edge": {"tls_cert": "--tls-cert", "tls_key": "--tls-key"},
}
# Every service's mTLS identity (global flags).
COMMON_PATHS = {"mtls_ca": "--mtls-ca", "mtls_cert": "--mtls-cert", "mtls_key": "--mtls-key"}
PRIVATE_PATHS = {"signing_key", "tls_key", "mtls_key"}
# Which of them each service dials.
DIALS = {
    "edge": ["auth_url", "signal_urls", "redis"],
    "signal": ["auth_url", "redis"],
    "auth": ["redis"],
    "health": ["health_targets", "health_redis"],
}


# ---------------------------------------------------------------- helpers


def env_name(key: str) -> str:
    return "SWITCHBOARD_" + key.upper()


def labels_match(selector: dict | None, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def port_of(address: str) -> int:
    """The port of HOST:PORT or [V6]:PORT."""
    return int(address.rsplit(":", 1)[1])


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]")).is_loopback
    except ValueError:
        return False


def selects_some(selector: dict | None) -> bool:
    """Whether a label selector narrows anything ({} selects everything)."""
    return bool(selector and (selector.get("matchLabels") or selector.get("matchExpressions")))


def has_password(url: str) -> bool:
    try:
        return bool(urlsplit(url.removeprefix("cluster+")).password)
    except ValueError:
        return False


def dockerfile_env(path: str | None) -> dict:
    """The ENV of the Dockerfile's last stage (the image's environment)."""
    if not path:
        return {}
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"\\\n", " ", text)
    env: dict = {}
    for line in text.splitlines():
        line = line.strip()
        word = line.split(None, 1)[0].upper() if line else ""
        if word == "FROM":
            env = {}
        elif word == "ENV":
            rest = line.split(None, 1)[1]
            parts = shlex.split(rest, comments=False)
            if parts and "=" not in parts[0]:
                env[parts[0]] = " ".join(parts[1:])  # legacy `ENV KEY value`
            else:
                for part in parts:
                    k, _, v = part.partition("=")
                    env[k] = v
    return env


# ---------------------------------------------------------------- manifests


@dataclass
class Workload:
    """A Deployment: its pod template and what selects it."""

    doc: dict

    @property
    def name(self) -> str:
        return self.doc["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.doc["metadata"].get("namespace", "default")

    @property
    def pod(self) -> dict:
        return self.doc["spec"]["template"]["spec"]

    @property
    def labels(self) -> dict:
        return self.doc["spec"]["template"]["metadata"].get("labels") or {}

    def containers(self) -> list:
        return list(self.pod.get("initContainers") or []) + list(self.pod["containers"])

    def ports(self) -> dict:
        """containerPort names → numbers, and every number → itself."""
        out = {}
        for c in self.pod["containers"]:
            for p in c.get("ports") or []:
                out[p["containerPort"]] = p["containerPort"]
                if "name" in p:
                    out[p["name"]] = p["containerPort"]
        return out


class Manifests:
    def __init__(self, path: str):
        with open(path, encoding="utf-8") as f:
            self.docs = [d for d in yaml.safe_load_all(f) if d]
        self.namespaces = {
            d["metadata"]["name"]: d["metadata"].get("labels") or {}
            for d in self.of("Namespace")
        }

    def of(self, kind: str) -> list:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict | None:
        for d in self.of(kind):
            if d["metadata"]["name"] == name:
                return d
        return None

    def workloads(self) -> list:
        return [Workload(d) for d in self.of("Deployment")]

    def selected(self, selector: dict | None, namespace: str) -> list:
        return [
            w
            for w in self.workloads()
            if w.namespace == namespace and labels_match(selector, w.labels)
        ]

    def behind(self, svc: dict) -> list:
        """The Deployments a Service sends to (its selector is a plain map;
        none selects nothing)."""
        selector = svc["spec"].get("selector")
        if not selector:
            return []
        return self.selected({"matchLabels": selector}, svc["metadata"].get("namespace", "default"))

    def namespace_labels(self, name: str) -> dict:
        labels = dict(self.namespaces.get(name, {}))
        labels["kubernetes.io/metadata.name"] = name
        return labels

    def service(self, host: str, namespace: str) -> dict | None:
        """The Service a cluster DNS name names, if it is one of ours."""
        parts = host.split(".")
        name = parts[0]
        if len(parts) > 1 and parts[1] != namespace:
            return None
        if len(parts) > 2 and parts[2] != "svc":
            return None
        svc = self.get("Service", name)
        if svc and svc["metadata"].get("namespace", "default") == namespace:
            return svc
        return None

    def policies_for(self, dst: Workload) -> list:
        """The NetworkPolicies that restrict connections to `dst`'s pods."""
        return [
            p
            for p in self.of("NetworkPolicy")
            if p["metadata"].get("namespace", "default") == dst.namespace
            and labels_match(p["spec"].get("podSelector", {}), dst.labels)
            and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        ]

    def rules_admitting(self, dst: Workload, port: int) -> list:
        """(policy, ingress rule) for every rule that opens `port` of `dst`,
        whoever its peers are."""
        named = dst.ports()
        out = []
        for policy in self.policies_for(dst):
            for rule in policy["spec"].get("ingress") or []:
                ports = rule.get("ports")
                for p in ports or [{}]:
                    if "port" not in p:
                        out.append((policy, rule))
                        break
                    want = p["port"] if isinstance(p["port"], int) else named.get(p["port"])
                    if want is not None and want <= port <= p.get("endPort", want):
                        out.append((policy, rule))
                        break
        return out

    def allows(self, src_ns: str, src_labels: dict, dst: Workload, port: int) -> bool:
        """Whether the NetworkPolicies let a pod with `src_labels` in `src_ns`
        connect to `dst`'s pods on `port`."""
        if not self.policies_for(dst):
            return True
        return any(
            self._peers_match(rule.get("from"), src_ns, src_labels, dst.namespace)
            for _, rule in self.rules_admitting(dst, port)
        )

    def _peers_match(self, peers, src_ns, src_labels, policy_ns) -> bool:
        if not peers:
            return True
        for peer in peers:
            if "ipBlock" in peer:
                continue  # pod traffic is not matched by address here
            ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
            ns_ok = (
                labels_match(ns_sel, self.namespace_labels(src_ns))
                if ns_sel is not None
                else src_ns == policy_ns
            )
            pod_ok = labels_match(pod_sel, src_labels) if pod_sel is not None else True
            if ns_ok and pod_ok:
                return True
        return False


# ---------------------------------------------------------------- one overlay


@dataclass
class Provided:
    """Where a file in a container comes from."""

    kind: str  # "configmap", "secret", or "" (not provided)
    source: str = ""  # the ConfigMap's or Secret's name
    key: str = ""
    content: str | None = None  # a ConfigMap's data


@dataclass
class Check:
    """The checks of one rendered overlay; `failures` collects what failed."""

    bin: str
    image_env: dict
    ingress_namespace: str
    ingress_labels: dict
    monitoring_namespace: str
    monitoring_labels: dict
    failures: list = field(default_factory=list)
    secrets_needed: dict = field(default_factory=dict)
    # Deployment name → its admin (metrics_listen) port, for `exposure`.
    admin_ports: dict = field(default_factory=dict)
    # Deployment name → (subcommand, effective settings, the binary's
    # report), for the dials (a server's TLS and allow-list).
    answers: dict = field(default_factory=dict)

    @property
    def scraper(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in self.monitoring_labels.items())
        return f"{labels} in namespace {self.monitoring_namespace}"

    def fail(self, where: str, message: str) -> None:
        self.failures.append(f"{where}: {message}")
        print(f"  FAIL {where}: {message}")

    def ok(self, where: str, message: str) -> None:
        print(f"  ok   {where}: {message}")

    # -- files and env

    def provided(self, m: Manifests, w: Workload, container: dict, path: str) -> Provided:
        best = None
        for mount in container.get("volumeMounts") or []:
            mp = mount["mountPath"].rstrip("/")
            if mount.get("subPath"):
                if path == mp:
                    best = (mount, mount["subPath"])
            elif path.startswith(mp + "/") and (best is None or len(mp) > len(best[0]["mountPath"].rstrip("/"))):
                best = (mount, path[len(mp) + 1 :])
        if best is None:
            return Provided("")
        mount, rel = best
        volume = next((v for v in w.pod.get("volumes") or [] if v["name"] == mount["name"]), None)
        if volume is None:
            return Provided("")
        sources = []
        if "configMap" in volume:
            sources.append(("configmap", volume["configMap"]))
        if "secret" in volume:
            sources.append(("secret", {**volume["secret"], "name": volume["secret"]["secretName"]}))
        for s in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in s:
                sources.append(("configmap", s["configMap"]))
            if "secret" in s:
                sources.append(("secret", s["secret"]))
        for kind, src in sources:
            items = src.get("items")
            if items:
                key = next((i["key"] for i in items if i["path"] == rel), None)
            else:
                key = rel
            if key is None:
                continue
            if kind == "configmap":
                cm = m.get("ConfigMap", src["name"])
                data = (cm or {}).get("data") or {}
                if key in data:
                    return Provided("configmap", src["name"], key, data[key])
            else:
                return Provided("secret", src["name"], key)
        return Provided("")

    def container_env(self, m: Manifests, where: str, container: dict) -> dict:
        env = dict(self.image_env)
        for src in container.get("envFrom") or []:
            if "secretRef" in src:
                self.fail(where, f"envFrom secret {src['secretRef'].get('name')}: secrets go in files (SWITCHBOARD_*_FILE)")
                continue
            cm = m.get("ConfigMap", src["configMapRef"]["name"]) or {}
            for k, v in (cm.get("data") or {}).items():
                env[src.get("prefix", "") + k] = v
        for e in container.get("env") or []:
            name = e["name"]
            if "valueFrom" not in e:
                env[name] = e.get("value", "")
                continue
            vf = e["valueFrom"]
            if "secretKeyRef" in vf:
                self.fail(where, f"env {name} comes from a Secret: secrets go in files (SWITCHBOARD_*_FILE)")
            elif "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                cm = m.get("ConfigMap", ref["name"]) or {}
                value = (cm.get("data") or {}).get(ref["key"])
                if value is None:
                    if not ref.get("optional"):
                        self.fail(where, f"env {name}: ConfigMap {ref['name']} has no key {ref['key']}")
                else:
                    env[name] = value
            else:
                env[name] = "<" + next(iter(vf)) + ">"
        return env

    # -- one switchboard container

    def switchboard_container(self, m: Manifests, w: Workload, c: dict):
        """Checks one container against the binary; returns (subcommand,
        effective settings) when the binary answered."""
        where = f"{w.name}/{c['name']}"
        command = c.get("command")
        if command and command[0] != ENTRYPOINT:
            self.fail(where, f"command {command!r} does not run {ENTRYPOINT}")
            return None
        env = self.container_env(m, where, c)
        args = list((command or [])[1:]) + list(c.get("args") or [])
        args = [
            re.sub(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda g: env.get(g[1], g[0]), a)
            for a in args
        ]
        subcommand = next((a for a in args if a in SUBCOMMANDS), None)
        if subcommand is None:
            self.fail(where, f"no subcommand ({', '.join(sorted(SUBCOMMANDS))}) in args {args!r}")
            return None

        # The config file: from its ConfigMap, into a temp file.
        config_text = ""
        run_env = dict(env)
        tmp = None
        if "SWITCHBOARD_CONFIG" in env:
            p = self.provided(m, w, c, env["SWITCHBOARD_CONFIG"])
            if p.kind != "configmap":
                self.fail(where, f"SWITCHBOARD_CONFIG={env['SWITCHBOARD_CONFIG']} is not a mounted ConfigMap key")
                return None
            config_text = p.content or ""
            tmp = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
            tmp.write(config_text)
            tmp.close()
            run_env["SWITCHBOARD_CONFIG"] = tmp.name
        try:
            config = tomllib.loads(config_text)
        except tomllib.TOMLDecodeError as e:
            self.fail(where, f"the config file is not TOML: {e}")
            return None

        # Ask the binary.
        run_env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        cmd = [self.bin, "--check-config", *args]
        shown = " ".join(shlex.quote(a) for a in ["switchboard", "--check-config", *args])
        try:
            done = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.fail(where, f"`{shown}` did not run: {e}")
            return None
        finally:
            if tmp:
                os.unlink(tmp.name)
        if done.returncode != 0:
            self.fail(where, f"`{shown}` exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
            return None
        lines = [l for l in done.stdout.splitlines() if l.strip()]
        try:
            report = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            self.fail(where, f"`{shown}` printed no JSON line: {done.stdout.strip()!r}")
            return None
        if tmp:
            # The config file is one of the files it reads: where the pod has it.
            report["files"] = [
                env["SWITCHBOARD_CONFIG"] if f == tmp.name else f for f in report.get("files", [])
            ]
        served = f"`{shown}` → {report.get('service')} on {report.get('listen')}"
        if report.get("metrics_listen"):
            served += f", metrics on {report['metrics_listen']}"
        self.ok(where, served)
        if report.get("service") != subcommand:
            self.fail(where, f"the binary says service {report.get('service')!r}, the args say {subcommand!r}")
        listen = port_of(report["listen"])
        if is_loopback(report["listen"]):
            self.fail(where, f"listens on loopback ({report['listen']}): unreachable from other pods and the kubelet")
        metrics = self.metrics_port(where, report, listen)
        health = self.health_port(where, report, listen, metrics)

        self.check_ports(w, c, where, listen, metrics, health)
        self.check_probes(w, c, where, report, listen, health)
        self.check_scrape(m, w, where, report, listen, metrics)
        self.check_files(m, w, c, where, report, env, config, self.paths(subcommand, args, env, config))
        self.check_secrets(where, args, env, config)
        self.check_shadowing(where, subcommand, args, env, config)
        values = {k: self.effective(k, args, env, config) for k in FLAGS}
        if subcommand == "edge":
            self.check_drain(w, c, where, values)
        return subcommand, values, report

    def effective(self, key: str, args: list, env: dict, config: dict):
        """(value, source) of a setting: flag > env > file > default. A value
        read from a *_FILE is None (its content is unknown here)."""
        flag = FLAGS[key]
        got = []
        for i, a in enumerate(args):
            if a == flag and i + 1 < len(args):
                got.append(args[i + 1])
            elif a.startswith(flag + "="):
                got.append(a.split("=", 1)[1])
        if got:
            values = [v for g in got for v in g.split(",")] if key in LISTS else got[-1]
            return values, "flag"
        name = env_name(key)
        if name in env:
            return (env[name].split(",") if key in LISTS else env[name]), "env"
        if name + "_FILE" in env:
            return None, f"env {name}_FILE"
        if key in config:
            return config[key], "file"
        if key + "_file" in config:
            return None, f"file {key}_file"
        return DEFAULTS[key], "default"

    def metrics_port(self, where, report, listen):
        """The admin port the binary reports (metrics_listen), or None."""
        address = report.get("metrics_listen")
        if address is None:
            return None
        port = port_of(address)
        if is_loopback(address):
            self.fail(where, f"metrics_listen on loopback ({address}): Prometheus cannot scrape it")
        if port == listen:
            self.fail(where, f"metrics_listen {address} is on the listen port {listen}: the two servers cannot share it")
        return port

    def health_port(self, where, report, listen, metrics):
        """The plaintext grpc.health.v1 port the binary reports
        (grpc_health_listen, beside a TLS-only gRPC port), or None."""
        address = report.get("grpc_health_listen")
        if address is None:
            return None
        port = port_of(address)
        if is_loopback(address):
            self.fail(where, f"grpc_health_listen on loopback ({address}): the kubelet's probes cannot reach it")
        if port in (listen, metrics):
            self.fail(where, f"grpc_health_listen {address} shares port {port} with another server")
        if not report.get("grpc_tls"):
            self.fail(where, f"grpc_health_listen {address} without mTLS (grpc_tls false): the gRPC port itself is plaintext")
        return port

    def check_ports(self, w, c, where, listen, metrics, health=None):
        """The port named `metrics` is the metrics_listen port, the
        grpc_health_listen port (when served) has a containerPort; every
        other one is the listen port."""
        ports = c.get("ports") or []
        if not ports:
            self.fail(where, "no containerPort")
        if health is not None and not any(p["containerPort"] == health for p in ports):
            self.fail(where, f"grpc_health_listen port {health} has no containerPort (the kubelet's gRPC probes go there)")
        good = []
        for p in ports:
            name, number = p.get("name", ""), p["containerPort"]
            if name == METRICS_PORT_NAME:
                if metrics is None:
                    self.fail(where, f"containerPort {name} {number}: the binary serves no metrics port (no --metrics-listen / SWITCHBOARD_METRICS_LISTEN)")
                elif number != metrics:
                    self.fail(where, f"containerPort {name} {number} ≠ metrics_listen port {metrics}")
                else:
                    good.append(f"{name} {number}")
            elif health is not None and number == health:
                good.append(f"{name} {number} (grpc_health_listen)".strip())
            elif number != listen:
                what = f"listen port {listen}" + (f" or grpc_health_listen port {health}" if health is not None else "")
                self.fail(where, f"containerPort {name} {number} ≠ {what}")
            else:
                good.append(f"{name} {number}".strip())
        if metrics is not None and not any(p.get("name") == METRICS_PORT_NAME for p in ports):
            self.fail(where, f"metrics_listen port {metrics} has no containerPort named {METRICS_PORT_NAME!r}")
        if ports and len(good) == len(ports):
            self.ok(where, "containerPort " + ", ".join(good))

    def check_scrape(self, m, w, where, report, listen, metrics):
        """The pod's scrape annotations name the port that serves /metrics,
        the scraper may reach it, and only the scraper reaches an admin
        port."""
        if metrics is not None:
            port, what = metrics, f"metrics_listen {report['metrics_listen']}"
        elif METRICS_PATH in report.get("http_paths", []):
            port, what = listen, "the listen port"
        else:
            port, what = None, ""
        annotations = w.doc["spec"]["template"]["metadata"].get("annotations") or {}
        scraped = annotations.get(SCRAPE) == "true"
        if port is None:
            if scraped:
                self.fail(where, f'{SCRAPE} is "true" but the binary serves no {METRICS_PATH} (no --metrics-listen)')
            return
        if not scraped:
            self.fail(where, f'serves {METRICS_PATH} on {port} ({what}) but the pod has no {SCRAPE}: "true": Prometheus would not find it')
            return
        problems = []
        declared = annotations.get(SCRAPE_PORT)
        if declared is None:
            problems.append(f"no {SCRAPE_PORT} (Prometheus would try every declared port)")
        elif declared != str(port):
            problems.append(f"{SCRAPE_PORT} {declared} ≠ {port}, the port serving {METRICS_PATH} ({what})")
        path = annotations.get(SCRAPE_PATH, METRICS_PATH)
        if path != METRICS_PATH:
            problems.append(f"{SCRAPE_PATH} {path} is not {METRICS_PATH}")
        if problems:
            self.fail(where, "scrape annotations: " + "; ".join(problems))
        else:
            self.ok(where, f"annotated for scraping at :{port}{METRICS_PATH} ({what})")
        if m.allows(self.monitoring_namespace, self.monitoring_labels, w, port):
            self.ok(where, f"the NetworkPolicies let the scraper ({self.scraper}) reach :{port}")
        else:
            self.fail(where, f"the NetworkPolicies keep the scraper ({self.scraper}) from {w.name}:{port}")
        if metrics is not None:
            self.admin_ports[w.name] = metrics
            self.check_admin_closed(m, w, where, metrics)

    def check_admin_closed(self, m, w, where, port):
        """Every NetworkPolicy rule that opens an admin port names the
        scraper, and only it: a namespace and pods, neither of them 'all'."""
        if not m.policies_for(w):
            self.fail(where, f"no NetworkPolicy selects {w.name}: its metrics port {port} is open to every pod")
            return
        problems = []
        for policy, rule in m.rules_admitting(w, port):
            name = policy["metadata"]["name"]
            peers = rule.get("from")
            if not peers:
                problems.append(f"policy {name} admits every source")
            for peer in peers or []:
                if "ipBlock" in peer:
                    problems.append(f"policy {name} admits the addresses {peer['ipBlock'].get('cidr')}")
                elif not selects_some(peer.get("podSelector")):
                    scope = "of every namespace it selects" if "namespaceSelector" in peer else f"of namespace {w.namespace}"
                    problems.append(f"policy {name} admits every pod {scope}")
                elif "namespaceSelector" in peer and not selects_some(peer["namespaceSelector"]):
                    problems.append(f"policy {name} admits such pods of every namespace")
                elif not m._peers_match([peer], self.monitoring_namespace, self.monitoring_labels, w.namespace):
                    problems.append(f"policy {name} admits {json.dumps(peer, sort_keys=True)}, which is not the scraper")
        if m.allows(self.ingress_namespace, self.ingress_labels, w, port):
            problems.append(f"the ingress controller ({self.ingress_namespace}) can reach it")
        if problems:
            self.fail(where, f"metrics port {port} is not the scraper's alone: " + "; ".join(problems))
        else:
            self.ok(where, f"metrics port {port}: only the scraper gets in (not the ingress controller)")

    def check_probes(self, w, c, where, report, listen, health=None):
        named = w.ports()
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = c.get(kind)
            if probe is None:
                self.fail(where, f"no {kind}")
                continue
            wants_live = kind != "readinessProbe"
            if "httpGet" in probe:
                h = probe["httpGet"]
                port = named.get(h["port"], h["port"])
                path = h.get("path", "/")
                desc = f"{kind} GET {path} on {port}"
                problems = []
                if port != listen:
                    problems.append(f"port {port} ≠ listen port {listen}")
                if path not in report.get("http_paths", []):
                    problems.append(f"path {path} is not one of {report.get('http_paths')}")
                if wants_live and path != LIVE_PATH:
                    problems.append(f"a {kind} must use {LIVE_PATH} (never depends on another process)")
                if not wants_live and path != READY_PATH:
                    problems.append(f"a readinessProbe must use {READY_PATH}")
            elif "grpc" in probe:
                g = probe["grpc"]
                port, service = g["port"], g.get("service", "")
                desc = f"{kind} gRPC {service!r} on {port}"
                problems = []
                if report.get("grpc_tls"):
                    # The kubelet's gRPC probes are plaintext and present no
                    # certificate: the TLS-only gRPC port would fail them.
                    if health is None:
                        problems.append(f"the listen port {listen} speaks TLS only (mTLS) and there is no grpc_health_listen for the kubelet's plaintext gRPC probes (--grpc-health-listen)")
                    elif port == listen:
                        problems.append(f"the listen port {listen} speaks TLS only (mTLS): the kubelet's plaintext gRPC probes must ask the grpc_health_listen port {health}")
                    elif port != health:
                        problems.append(f"port {port} ≠ grpc_health_listen port {health}")
                elif port != listen:
                    problems.append(f"port {port} ≠ listen port {listen}")
                if service not in report.get("grpc_health_services", []):
                    problems.append(f"service {service!r} is not one of {report.get('grpc_health_services')}")
                if wants_live and service != LIVENESS_SERVICE:
                    problems.append(f"a {kind} must ask for {LIVENESS_SERVICE!r} (never depends on another process)")
                if not wants_live and service == LIVENESS_SERVICE:
                    problems.append("a readinessProbe must ask for the readiness ('' or the named service)")
            else:
                self.fail(where, f"{kind} is neither httpGet nor grpc: use the service's health endpoints")
                continue
            if problems:
                self.fail(where, f"{desc}: " + "; ".join(problems))
            else:
                self.ok(where, desc)

    def paths(self, subcommand, args, env, config) -> dict:
        """path → setting, for the path-valued settings of `subcommand`."""
        out = {}
        for key, flag in {**PATHS.get(subcommand, {}), **COMMON_PATHS}.items():
            values = [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]
            values += [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
            if not values and env_name(key) in env:
                values = env[env_name(key)].split(",")
            if not values and key in config:
                values = config[key] if isinstance(config[key], list) else [config[key]]
            for v in values:
                if v:
                    out[v] = key
        return out

    def check_files(self, m, w, c, where, report, env, config, paths):
        files = list(report.get("files", []))
        files += [p for p in paths if p not in files]
        for path in files:
            p = self.provided(m, w, c, path)
            if not p.kind:
                self.fail(where, f"reads {path}, which no volume mounts")
                continue
            if paths.get(path) in PRIVATE_PATHS and p.kind != "secret":
                self.fail(where, f"{paths[path]} {path} comes from a {p.kind}: private keys belong in Secrets")
            if p.kind == "secret":
                self.secrets_needed.setdefault(p.source, set()).add(p.key)
            self.ok(where, f"file {path} from {p.kind} {p.source} key {p.key}")
        # Secret settings given as files must come from Secrets.
        for key in SECRET_KEYS:
            path = env.get(env_name(key) + "_FILE") or config.get(key + "_file")
            if path:
                p = self.provided(m, w, c, path)
                if p.kind and p.kind != "secret":
                    self.fail(where, f"{key} is read from {path}, a {p.kind} ({p.source}): secrets belong in Secrets")

    def check_secrets(self, where, args, env, config):
        for a in args:
            flag = a.split("=", 1)[0]
            if flag in SECRET_FLAGS:
                self.fail(where, f"{flag} on the command line: give SWITCHBOARD_*_FILE instead")
        for key in SECRET_KEYS:
            if env_name(key) in env:
                self.fail(where, f"{env_name(key)} as a plain value: use {env_name(key)}_FILE")
            if key in config:
                self.fail(where, f"{key} in the config file: use {key}_file (a file from a Secret)")
        urls = env.get("SWITCHBOARD_REDIS", "").split(",") + list(config.get("redis") or [])
        urls += [env.get("SWITCHBOARD_HEALTH_REDIS", ""), str(config.get("health_redis", ""))]
        urls += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--redis"]
        if any(has_password(u) for u in urls if u):
            self.fail(where, "a Redis URL with a password outside a Secret: use SWITCHBOARD_REDIS_FILE")

    def check_shadowing(self, where, subcommand, args, env, config):
        flagged = set(DIALS.get(subcommand, []))
        if subcommand == "edge":
            flagged |= {"allowed_origins", "drain_seconds", "drain_spread_seconds"}
        for key in config:
            base = key.removesuffix("_file")
            shadows = [n for n in (env_name(base), env_name(base) + "_FILE") if n in env]
            if base in flagged and any(a == FLAGS[base] or a.startswith(FLAGS[base] + "=") for a in args):
                shadows.append(FLAGS[base])
            if shadows:
                named = [
                    f"{n} (the image's ENV)" if self.image_env.get(n) == env.get(n) and n in self.image_env else n
                    for n in shadows
                ]
                self.fail(where, f"config key {key} is overridden by {', '.join(named)}: flag > env > file")

    def check_dials(self, m, w, where, subcommand, values):
        for key in DIALS.get(subcommand, []):
            value, source = values[key]
            if value is None:
                self.ok(where, f"{key} from {source} (a secret file; not checked here)")
                continue
            urls = value if isinstance(value, list) else [value]
            for raw in filter(None, urls):
                url = raw
                if key == "health_targets":
                    url = raw.split("=", 1)[1].split("#", 1)[0] if "=" in raw else raw
                name = raw.split("=", 1)[0] if key == "health_targets" and "=" in raw else None
                self.check_dial(m, w, where, subcommand, key, url.removeprefix("cluster+"), name)
        if subcommand == "health":
            targets, _ = values["health_targets"]
            followed = set()
            for raw in targets or []:
                url = urlsplit(raw.split("=", 1)[-1].split("#", 1)[0])
                svc = m.service(url.hostname or "", w.namespace)
                if svc:
                    for t in m.behind(svc):
                        followed.add(t.name)
            for wanted in ("auth", "signal"):
                if not any(x.name == wanted for x in m.workloads()):
                    continue
                if wanted in followed:
                    self.ok(where, f"health_targets follow {wanted}")
                else:
                    self.fail(where, f"health_targets do not follow {wanted}")

    def check_dial(self, m, w, where, subcommand, key, url, name=None):
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
        if port is None and parts.scheme in ("http", "https"):
            port = 443 if parts.scheme == "https" else 80
        svc = m.service(host, w.namespace)
        if svc is None:
            if "." not in host or ".svc" in host:
                self.fail(where, f"{key} {url}: no Service {host!r} in namespace {w.namespace}")
            else:
                self.ok(where, f"{key} {url}: outside the cluster")
            return
        sport = next((p for p in svc["spec"]["ports"] if p["port"] == port), None)
        if sport is None:
            self.fail(where, f"{key} {url}: Service {host} has no port {port}")
            return
        targets = m.behind(svc)
        if not targets:
            self.fail(where, f"{key} {url}: Service {host} selects no Deployment")
        for t in targets:
            tport = t.ports().get(sport.get("targetPort", sport["port"]))
            if tport is None:
                self.fail(where, f"{key} {url}: {t.name} has no port {sport.get('targetPort')}")
            elif not m.allows(w.namespace, w.labels, t, tport):
                self.fail(where, f"{key} {url}: the NetworkPolicies keep {w.name} from {t.name}:{tport}")
            else:
                self.ok(where, f"{key} {url} → {t.name}:{tport}, allowed")
            if key in GRPC_DIALS:
                self.check_grpc_dial(where, subcommand, key, url, parts.scheme, name, t)

    def check_grpc_dial(self, where, subcommand, key, url, scheme, name, t):
        """A gRPC server with mTLS speaks TLS only: https:// reaches it, and
        its allow-list must name the caller; one without answers http://."""
        answer = self.answers.get(t.name)
        if answer is None:
            return  # not a switchboard container, or the binary refused it
        server, values, report = answer
        if server not in MTLS_ALLOW_DEFAULTS:
            return
        tls = bool(report.get("grpc_tls"))
        if tls and scheme != "https":
            self.fail(where, f"{key} {url}: {t.name} serves mTLS only (grpc_tls): dial https://")
            return
        if not tls and scheme == "https":
            self.fail(where, f"{key} {url}: {t.name} serves plaintext gRPC (no mTLS): https:// would fail its handshake")
            return
        if not tls:
            return
        if name is not None and name != server:
            self.fail(where, f"{key} {name}={url}: over https:// the name must be the peer name {server!r} its certificate carries")
        allowed, source = values["mtls_allow"]
        if allowed is None:
            self.ok(where, f"{key} {url}: {t.name}'s mtls_allow from {source} (not checked here)")
            return
        allowed = [a.strip() for a in allowed if a.strip()] or MTLS_ALLOW_DEFAULTS[server]
        if subcommand in allowed:
            self.ok(where, f"{key} {url}: mTLS, {t.name} lets {subcommand} in (mtls_allow {','.join(allowed)}, {source})")
        else:
            self.fail(where, f"{key} {url}: {t.name}'s mtls_allow {','.join(allowed)} ({source}) does not let {subcommand} in")

    def check_drain(self, w, c, where, values):
        drain, dsrc = values["drain_seconds"]
        spread, ssrc = values["drain_spread_seconds"]
        if drain is None or spread is None:
            self.fail(where, "drain_seconds and drain_spread_seconds must be plain settings")
            return
        drain, spread = float(drain), float(spread)
        if ssrc == "default":
            spread = min(spread, drain / 2)  # the binary's default: 5 s, or half the drain
        pre = 0
        hook = ((c.get("lifecycle") or {}).get("preStop")) or {}
        if "sleep" in hook:
            pre = int(hook["sleep"]["seconds"])
        elif "exec" in hook:
            found = re.search(r"\bsleep\s+(\d+)", " ".join(hook["exec"]["command"]))
            pre = int(found[1]) if found else 0
        grace = w.pod.get("terminationGracePeriodSeconds", 30)
        if grace <= pre + drain:
            self.fail(where, f"terminationGracePeriodSeconds {grace} ≤ preStop {pre} s + drain_seconds {drain:g} ({dsrc}): SIGKILL would cut the drain")
        else:
            self.ok(where, f"grace {grace} s > preStop {pre} s + drain {drain:g} s ({dsrc})")
        if spread >= drain:
            self.fail(where, f"drain_spread_seconds {spread:g} ({ssrc}) must be below drain_seconds {drain:g}")
        else:
            self.ok(where, f"reconnects spread over {spread:g} s ({ssrc}) < drain {drain:g} s")

    # -- every pod

    def security(self, w: Workload, c: dict, switchboard: bool) -> None:
        where = f"{w.name}/{c['name']}"
        pod_sc = w.pod.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        eff = lambda k: sc.get(k, pod_sc.get(k))  # noqa: E731
        problems = []
        if eff("runAsNonRoot") is not True:
            problems.append("runAsNonRoot is not true")
        if switchboard and eff("runAsUser") != UID:
            problems.append(f"runAsUser is not {UID}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append("readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append("privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append("capabilities do not drop ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append("capabilities added")
        if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append("seccompProfile is not RuntimeDefault")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(part) or {}):
                    problems.append(f"no {part}.{r}")
        if w.pod.get("automountServiceAccountToken") is not False:
            problems.append("automountServiceAccountToken is not false (nothing here talks to the API)")
        if problems:
            self.fail(where, "security/resources: " + "; ".join(problems))
        else:
            self.ok(where, "non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp, requests and limits")

    # -- objects that point at others

    def references(self, m: Manifests, edge_origins) -> None:
        for svc in m.of("Service"):
            name, ns = svc["metadata"]["name"], svc["metadata"].get("namespace", "default")
            targets = m.behind(svc)
            if not targets:
                self.fail(f"service/{name}", "selects no Deployment")
            for p in svc["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                for t in targets:
                    if tp not in t.ports():
                        self.fail(f"service/{name}", f"targetPort {tp} is not a port of {t.name}")
            if targets:
                self.ok(f"service/{name}", "→ " + ", ".join(t.name for t in targets))
        for ing in m.of("Ingress"):
            name, ns = ing["metadata"]["name"], ing["metadata"].get("namespace", "default")
            for rule in ing["spec"].get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    b = path["backend"]["service"]
                    svc = m.get("Service", b["name"])
                    if svc is None:
                        self.fail(f"ingress/{name}", f"backend Service {b['name']} does not exist")
                        continue
                    sp = next(
                        (p for p in svc["spec"]["ports"] if p.get("name") == b["port"].get("name") or p["port"] == b["port"].get("number")),
                        None,
                    )
                    if sp is None:
                        self.fail(f"ingress/{name}", f"Service {b['name']} has no port {b['port']}")
                        continue
                    for t in m.behind(svc):
                        tport = t.ports().get(sp.get("targetPort", sp["port"]))
                        if m.allows(self.ingress_namespace, self.ingress_labels, t, tport):
                            self.ok(f"ingress/{name}", f"{rule.get('host')}{path['path']} → {b['name']} → {t.name}:{tport}, allowed from namespace {self.ingress_namespace}")
                        else:
                            self.fail(f"ingress/{name}", f"the NetworkPolicies keep the ingress controller ({self.ingress_namespace}) from {t.name}:{tport}")
            for tls in ing["spec"].get("tls") or []:
                for host in tls.get("hosts") or []:
                    origin = f"https://{host}"
                    if edge_origins is None:
                        continue
                    if origin in edge_origins:
                        self.ok(f"ingress/{name}", f"{origin} is an allowed origin of the edge")
                    else:
                        self.fail(f"ingress/{name}", f"{origin} is not in the edge's allowed_origins {edge_origins}: browsers would get 403")
        for hpa in m.of("HorizontalPodAutoscaler"):
            name = hpa["metadata"]["name"]
            ref = hpa["spec"]["scaleTargetRef"]
            target = m.get(ref["kind"], ref["name"])
            if target is None:
                self.fail(f"hpa/{name}", f"scales {ref['kind']} {ref['name']}, which does not exist")
                continue
            if "replicas" in target["spec"]:
                self.fail(f"hpa/{name}", f"{ref['name']} sets spec.replicas: every apply would undo the autoscaler")
            if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
                self.fail(f"hpa/{name}", "minReplicas > maxReplicas")
            self.ok(f"hpa/{name}", f"{ref['name']}: {hpa['spec'].get('minReplicas', 1)}..{hpa['spec']['maxReplicas']}")
        for pdb in m.of("PodDisruptionBudget"):
            name, ns = pdb["metadata"]["name"], pdb["metadata"].get("namespace", "default")
            targets = m.selected(pdb["spec"].get("selector"), ns)
            if not targets:
                self.fail(f"pdb/{name}", "selects no Deployment")
            else:
                self.ok(f"pdb/{name}", "→ " + ", ".join(t.name for t in targets))

    def exposure(self, m: Manifests) -> None:
        """No Service routes to an admin port, least of all one behind an
        Ingress or outside the cluster: Prometheus scrapes each pod, and
        the edge's admin port must never be public."""
        behind_ingress = {}
        for ing in m.of("Ingress"):
            for rule in ing["spec"].get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    b = path["backend"].get("service") or {}
                    port = b.get("port") or {}
                    behind_ingress[(b.get("name"), port.get("name") or port.get("number"))] = ing["metadata"]["name"]
        routed = set()
        for svc in m.of("Service"):
            name, kind = svc["metadata"]["name"], svc["spec"].get("type", "ClusterIP")
            for p in svc["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                for t in m.behind(svc):
                    admin = self.admin_ports.get(t.name)
                    if admin is None or t.ports().get(tp) != admin:
                        continue
                    routed.add(t.name)
                    public = []
                    if kind in ("NodePort", "LoadBalancer"):
                        public.append(f"type {kind}")
                    if svc["spec"].get("externalIPs"):
                        public.append("externalIPs")
                    for key in ((name, p.get("name")), (name, p["port"])):
                        if key in behind_ingress:
                            public.append(f"Ingress {behind_ingress[key]}")
                    how = f", publicly ({', '.join(public)})" if public else ""
                    self.fail(f"service/{name}", f"port {p['port']} routes to {t.name}'s metrics port {admin}{how}: the admin port is scraped pod by pod, never through a Service")
        for name, port in sorted(self.admin_ports.items()):
            if name not in routed:
                self.ok(name, f"no Service or Ingress routes to its metrics port {port}")

    def replicas(self, m: Manifests, w: Workload) -> int:
        for hpa in m.of("HorizontalPodAutoscaler"):
            if hpa["spec"]["scaleTargetRef"]["name"] == w.name:
                return hpa["spec"]["maxReplicas"]
        return w.doc["spec"].get("replicas", 1)

    def run(self, m: Manifests) -> None:
        edge_origins = None
        dials = []
        for w in m.workloads():
            for c in w.containers():
                image = c.get("image", "")
                repo = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
                switchboard = repo == IMAGE
                self.security(w, c, switchboard)
                if not switchboard:
                    continue
                result = self.switchboard_container(m, w, c)
                if not result:
                    continue
                subcommand, values, report = result
                self.answers[w.name] = result
                dials.append((w, f"{w.name}/{c['name']}", subcommand, values))
                if subcommand == "edge":
                    edge_origins = values["allowed_origins"][0]
                if subcommand in ("signal", "auth"):
                    n = self.replicas(m, w)
                    redis, source = values["redis"]
                    if n > 1 and redis is not None and not redis:
                        self.fail(f"{w.name}", f"up to {n} replicas but no Redis to share state through")
                    elif n > 1:
                        self.ok(f"{w.name}", f"up to {n} replicas share state through Redis ({source})")
        # After every container: a dial checks what the server answered.
        for w, where, subcommand, values in dials:
            self.check_dials(m, w, where, subcommand, values)
        self.references(m, edge_origins)
        self.exposure(m)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="the switchboard binary to ask")
    parser.add_argument("--dockerfile", help="the image's Dockerfile (its ENV is the containers' base environment)")
    parser.add_argument("--ingress-namespace", default="ingress-nginx")
    parser.add_argument("--ingress-pod-label", default="app.kubernetes.io/name=ingress-nginx")
    parser.add_argument("--monitoring-namespace", default="monitoring", help="where the Prometheus that scrapes /metrics runs")
    parser.add_argument("--monitoring-pod-label", default="app.kubernetes.io/name=prometheus", help="a label of its pods")
    parser.add_argument("rendered", nargs="+", help="an overlay rendered by kubectl kustomize")
    args = parser.parse_args()
    image_env = dockerfile_env(args.dockerfile)
    k, _, v = args.ingress_pod_label.partition("=")
    mk, _, mv = args.monitoring_pod_label.partition("=")
    failed = 0
    for path in args.rendered:
        label = os.path.basename(path).removesuffix(".yaml")
        print(f"== {label} ({path})")
        check = Check(args.bin, image_env, args.ingress_namespace, {k: v}, args.monitoring_namespace, {mk: mv})
        check.run(Manifests(path))
        for secret, keys in sorted(check.secrets_needed.items()):
            print(f"  Secret {secret} must hold: {', '.join(sorted(keys))}")
        if check.failures:
            print(f"  {label}: {len(check.failures)} failed")
            failed += 1
        else:
            print(f"  {label}: all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
