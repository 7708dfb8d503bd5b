#!/usr/bin/env python3
"""Checks deploy/monitoring against a scrape of a running stack.

usage: monitoring-check.py SCRAPE_FILE DASHBOARD_JSON RULES_YAML

- the Grafana dashboard parses as JSON, has panels, each with a PromQL
  target;
- the PrometheusRule parses as YAML, is a monitoring.coreos.com/v1
  PrometheusRule, and every rule has an alert name, an expression, a
  severity label and a summary;
- every `switchboard_*` metric either of them names is exposed by the
  scrape (a series of that name, or `<name>_bucket` etc. of a histogram);
- every expression has balanced brackets.
A selftest (--selftest) shows it catches a missing metric and a broken file.
"""
import json
import re
import sys

import yaml

NAME = re.compile(r"\bswitchboard_[a-z0-9_]+")


def exposed(scrape_text):
    names = set()
    for line in scrape_text.splitlines():
        if not line or line.startswith("#"):
            continue
        names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def balanced(expr):
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in re.sub(r'"[^"]*"', "", expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def expressions(dashboard, rules):
    problems = []
    exprs = []
    panels = dashboard.get("panels") or []
    if not panels:
        problems.append("dashboard: no panels")
    for panel in panels:
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"dashboard panel {panel.get('title')!r}: no targets")
        for target in targets:
            exprs.append((f"dashboard {panel.get('title')!r}", target.get("expr", "")))
    if rules.get("apiVersion") != "monitoring.coreos.com/v1" or rules.get("kind") != "PrometheusRule":
        problems.append("rules: not a monitoring.coreos.com/v1 PrometheusRule")
    for group in (rules.get("spec") or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert")
            if not name or not rule.get("expr"):
                problems.append(f"rule {name!r}: needs alert and expr")
            if (rule.get("labels") or {}).get("severity") not in ("page", "ticket"):
                problems.append(f"rule {name!r}: severity must be page or ticket")
            if not (rule.get("annotations") or {}).get("summary"):
                problems.append(f"rule {name!r}: no summary")
            exprs.append((f"rule {name!r}", rule.get("expr", "")))
    return exprs, problems


def check(scrape_text, dashboard_text, rules_text):
    problems = []
    try:
        dashboard = json.loads(dashboard_text)
        rules = yaml.safe_load(rules_text)
    except (ValueError, yaml.YAMLError) as err:
        return [f"does not parse: {err}"]
    exprs, problems = expressions(dashboard, rules)
    names = exposed(scrape_text)
    for where, expr in exprs:
        if not balanced(expr):
            problems.append(f"{where}: unbalanced brackets in {expr!r}")
        for metric in NAME.findall(expr):
            if metric not in names:
                problems.append(f"{where}: {metric} is not in the scrape")
    return problems


def selftest(scrape_text, dashboard_text, rules_text):
    assert check(scrape_text, dashboard_text, rules_text) == [], "the real files must pass first"
    broken = dashboard_text.replace("switchboard_signal_sessions", "switchboard_signal_sesions")
    assert any("switchboard_signal_sesions" in p for p in check(scrape_text, broken, rules_text))
    assert check(scrape_text, "{", rules_text), "a broken dashboard"
    unbalanced = rules_text.replace("max(switchboard_redis_circuit_open)", "max(switchboard_redis_circuit_open")
    assert any("unbalanced" in p for p in check(scrape_text, dashboard_text, unbalanced))
    missing = scrape_text.replace("switchboard_redis_circuit_open", "gone")
    assert any("switchboard_redis_circuit_open" in p for p in check(missing, dashboard_text, rules_text))


def main():
    args = [a for a in sys.argv[1:] if a != "--selftest"]
    scrape, dashboard, rules = (open(path).read() for path in args)
    if "--selftest" in sys.argv:
        selftest(scrape, dashboard, rules)
        print("monitoring-check selftest: catches a missing metric, a broken file, unbalanced brackets")
    problems = check(scrape, dashboard, rules)
    for problem in problems:
        print(f"monitoring-check: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    names = {m for _, e in expressions(json.loads(dashboard), yaml.safe_load(rules))[0] for m in NAME.findall(e)}
    print(f"monitoring-check: {len(names)} metrics named by the dashboard and rules, all in the scrape")


if __name__ == "__main__":
    main()
