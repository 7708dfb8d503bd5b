#!/usr/bin/env python3
"""Prints BENCHMARKS.md's tables from the JSON that scripts/bench.sh wrote.

Usage: bench-tables.py DIR  (DIR = target/bench-results)

Every figure is the median over the rounds of one run; ratios are taken
within each round and then their median, so they compare servers measured
minutes apart on the same machine, never across runs.
"""
import json
import os
import statistics
import sys

DIR = sys.argv[1] if len(sys.argv) > 1 else "target/bench-results"
ORDER = ["bare-relay", "matchbox", "peerjs", "switchboard", "split", "split-redis"]
NAMES = {
    "bare-relay": "bare relay (ceiling)",
    "matchbox": "matchbox_server 0.15",
    "peerjs": "PeerJS server 1.0.2",
    "switchboard": "switchboard all",
    "split": "switchboard, 3 processes",
    "split-redis": "switchboard, Redis: 2 edges + 2 signal replicas",
}


def load(name):
    path = os.path.join(DIR, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def by_server(results):
    out = {}
    for r in results:
        out.setdefault(r["server"], []).append(r)
    return out


def rounds(results):
    out = {}
    for r in results:
        out.setdefault(r.get("round", 1), {})[r["server"]] = r
    return out


def ratio(results, server, base, key):
    """Median over rounds of server[key] / base[key] within a round."""
    values = []
    for per in rounds(results).values():
        if server in per and base in per and per[base].get(key) and per[server].get(key):
            values.append(per[server][key] / per[base][key])
    return med(values)


def fmt(v, digits=0, unit=""):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}{unit}"


def relay_table(name, title, bases=(("bare-relay", "×bare"), ("matchbox", "×matchbox"))):
    data = load(name)
    if not data:
        return
    res = data["results"]
    servers = [s for s in ORDER if s in by_server(res)]
    print(f"\n### {title}\n")
    print(
        f"{data['pairs']} pairs, {data['messages']} offers of {data['size']} B per pair, "
        f"window {data['window']}, rate {data['rate'] or 'saturation'}, "
        f"{len(rounds(res))} rounds (medians); servers pinned to CPU {data['server_cpu']}.\n"
    )
    print(
        f"| server | msg/s | msg per server core-second | {bases[0][1]} | {bases[1][1]} | server CPU µs/msg "
        "| CPU share | p50 µs | p99 µs | p99.9 µs | max µs | lost |"
    )
    print("|---" * 12 + "|")
    for s in servers:
        rs = by_server(res)[s]
        lat = lambda q: med([r["latency_us"][q] for r in rs])
        print(
            f"| {NAMES.get(s, s)} | {fmt(med([r['msg_per_s'] for r in rs]))} "
            f"| {fmt(med([r['msg_per_server_core_s'] for r in rs]))} "
            f"| {fmt(ratio(res, s, bases[0][0], 'msg_per_server_core_s'), 2)} "
            f"| {fmt(ratio(res, s, bases[1][0], 'msg_per_server_core_s'), 2)} "
            f"| {fmt(med([r['server_cpu_us_per_msg'] for r in rs]), 1)} "
            f"| {fmt(100 * (med([r['server_cpu_share'] for r in rs]) or 0), 0, ' %')} "
            f"| {fmt(lat('p50'))} | {fmt(lat('p99'))} | {fmt(lat('p999'))} | {fmt(lat('max'))} "
            f"| {sum(r['lost_or_reordered'] for r in rs)} |"
        )
    redis = [r.get("redis_cpu_us_per_msg") for r in by_server(res).get("split-redis", [])]
    if any(v is not None for v in redis):
        print(f"\nRedis's own CPU per message of the Redis stack (included above): {fmt(med(redis), 1)} µs.")


def hold_table():
    data = load("hold-10k.json")
    if not data:
        return
    print("\n### Idle connections held\n")
    print(
        "| server | connections | opened in s | RSS before → held (KiB) | KiB per connection "
        "| busy pair p50 µs | p99 µs | max µs |"
    )
    print("|---" * 8 + "|")
    for r in sorted(data["results"], key=lambda r: ORDER.index(r["server"]) if r["server"] in ORDER else 99):
        busy = r.get("busy_pair", {}).get("latency_us", {})
        print(
            f"| {NAMES.get(r['server'], r['server'])} | {r['connections']:,} | {r['open_seconds']:.1f} "
            f"| {r['rss_before_kib']:,} → {r['rss_held_kib']:,} | {r['kib_per_connection']:.1f} "
            f"| {fmt(busy.get('p50'))} | {fmt(busy.get('p99'))} | {fmt(busy.get('max'))} |"
        )


def storm_table():
    data = load("storm.json")
    if not data:
        return
    print("\n### Reconnect storm\n")
    print("| sessions | resumed: 50 % | 99 % | all | receivers with a lost, duplicated or reordered message |")
    print("|---" * 5 + "|")
    r = data["resume_ms"]
    print(
        f"| {data['sessions']:,} | {r['p50']:,.0f} ms | {r['p99']:,.0f} ms | {r['max']:,.0f} ms "
        f"| {data['receivers_with_errors']} (of {data['sessions'] // 2:,}; {data['messages_per_sender']} messages each) |"
    )


def hold_many_table():
    data = load("hold-100k.json")
    if not data:
        return
    busy = data.get("busy_pair", {}).get("latency_us", {})
    print("\n### Many idle sessions (separate processes)\n")
    print("| sessions | edges | opened in s | RSS of all server processes (KiB) | KiB per session | busy pair p50 µs | p99 µs |")
    print("|---" * 7 + "|")
    print(
        f"| {data['sessions']:,} | {data['edges']} | {data['open_seconds']:.0f} "
        f"| {data['rss_before_kib']:,} → {data['rss_held_kib']:,} | {data['kib_per_session']:.1f} "
        f"| {fmt(busy.get('p50'))} | {fmt(busy.get('p99'))} |"
    )


def joins_table():
    data = load("joins.json")
    if not data:
        return
    print("\n### Join storm\n")
    print("| tokens | sessions | joins/s | joins per server core-second | server CPU µs/join | p50 µs | p99 µs |")
    print("|---" * 7 + "|")
    for r in data["results"]:
        print(
            f"| {r['signing']} | {r['sessions']:,} | {fmt(r['joins_per_s'])} | {fmt(r['joins_per_server_core_s'])} "
            f"| {fmt(r['server_cpu_us_per_join'])} | {fmt(r['latency_us']['p50'])} | {fmt(r['latency_us']['p99'])} |"
        )


if __name__ == "__main__":
    machine = os.path.join(DIR, "machine.txt")
    if os.path.exists(machine):
        print("```\n" + open(machine).read().strip() + "\n```")
    relay_table("relay-1k.json", "Relay throughput, 1 KiB offers, saturation")
    relay_table("relay-4k.json", "Relay throughput, 4 KiB offers, saturation")
    relay_table("latency-5k.json", "Latency and CPU at 5,000 msg/s, 1 KiB offers")
    hold_table()
    hold_many_table()
    joins_table()
    storm_table()
    memory = (("switchboard", "×all (memory)"), ("split", "×split (memory)"))
    relay_table("redis-1k.json", "Redis mode, saturation, 1 KiB offers", memory)
    relay_table("redis-latency-5k.json", "Redis mode, 5,000 msg/s, 1 KiB offers", memory)
