#!/usr/bin/env python3
"""Dependency hygiene without network access (issue 16).

cargo-deny and cargo-audit need an advisory database fetched from GitHub,
which this machine cannot reach; so CI checks what the advisories behind
them say, as explicit floors:

1. Cargo.lock: every locked version of a crate with a known advisory is at
   or above the fixed release (FLOORS, with the advisory it answers).
2. Licenses: every package in the dependency graph (`cargo metadata`, no
   build) is under a license expression made only of allowed licenses;
   the list of packages per license is printed (docs/security.md links the
   command).

    scripts/dependency-check.py            # check Cargo.lock and licenses
    scripts/dependency-check.py --selftest # the checks catch what they must
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# crate -> (lowest acceptable version, why)
FLOORS = {
    "h2": ("0.4.16", "HTTP/2 CONTINUATION and reset floods (RUSTSEC-2024-0332 and later fixes)"),
    "rustls": ("0.23.18", "RUSTSEC-2024-0399: server panic on fragmented ClientHello"),
    "rustls-webpki": ("0.103.13", "the floor issue 16 sets for certificate verification fixes"),
    "tungstenite": ("0.20.1", "RUSTSEC-2023-0065: unbounded headers (DoS)"),
    "jsonwebtoken": ("10.3.0", "the floor issue 16 sets for token validation fixes"),
}

# SPDX ids every dependency's license expression may use.
ALLOWED = {
    "MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "BSD-2-Clause",
    "BSD-3-Clause", "BSD-1-Clause", "ISC", "Zlib", "Unicode-3.0",
    "Unlicense", "BSL-1.0", "CDLA-Permissive-2.0", "0BSD", "CC0-1.0",
}


def version(v):
    return tuple(int(x) for x in re.findall(r"\d+", v.split("-")[0])[:3])


def locked(lock_text):
    """(name, version) of every package in a Cargo.lock."""
    packages = []
    for block in lock_text.split("[[package]]")[1:]:
        name = re.search(r'^name = "([^"]+)"', block, re.M)
        ver = re.search(r'^version = "([^"]+)"', block, re.M)
        if name and ver:
            packages.append((name.group(1), ver.group(1)))
    return packages


def floor_failures(packages):
    failures = []
    for name, ver in packages:
        if name in FLOORS and version(ver) < version(FLOORS[name][0]):
            floor, why = FLOORS[name]
            failures.append(f"{name} {ver} < {floor}: {why}")
    return failures


def license_ok(expression):
    """Whether every license named in an SPDX expression is allowed (an OR
    needs one allowed side; AND needs all; we require all named ones for
    AND and any for OR, conservatively by terms)."""
    if not expression:
        return False
    expr = expression.replace("/", " OR ")
    # Keep WITH exceptions attached to their license.
    expr = re.sub(r"\s+WITH\s+", "_WITH_", expr)
    def allowed(term):
        return term.replace("_WITH_", " WITH ") in ALLOWED
    # Split on OR at the top level: one allowed alternative suffices.
    for alternative in re.split(r"\s+OR\s+", expr.replace("(", "").replace(")", "")):
        terms = [t for t in re.split(r"\s+AND\s+", alternative.strip()) if t]
        if terms and all(allowed(t) for t in terms):
            return True
    return False


def license_failures(packages):
    return [f"{p['name']} {p['version']}: license {p.get('license')!r}"
            for p in packages if not license_ok(p.get("license"))]


def metadata():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [p for p in json.loads(out)["packages"] if p.get("source")]


def selftest():
    bad_lock = '[[package]]\nname = "h2"\nversion = "0.4.15"\n\n[[package]]\nname = "rustls"\nversion = "0.23.18"\n'
    assert floor_failures(locked(bad_lock)) == [
        f"h2 0.4.15 < 0.4.16: {FLOORS['h2'][1]}"], floor_failures(locked(bad_lock))
    assert floor_failures(locked('[[package]]\nname = "h2"\nversion = "0.4.16"\n')) == []
    assert version("0.103.13") > version("0.103.9")
    for good in ["MIT OR Apache-2.0", "MIT/Apache-2.0", "(MIT OR Apache-2.0) AND Unicode-3.0",
                 "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT", "MIT OR Apache-2.0 OR LGPL-2.1-or-later"]:
        assert license_ok(good), good
    for bad in ["GPL-3.0", "MIT AND GPL-3.0", "", None, "AGPL-3.0 OR SSPL-1.0"]:
        assert not license_ok(bad), bad
    print("dependency-check selftest: ok")


def main():
    if "--selftest" in sys.argv:
        selftest()
        return 0
    packages = locked((ROOT / "Cargo.lock").read_text())
    failures = floor_failures(packages)
    present = {name for name, _ in packages}
    for name, (floor, _) in FLOORS.items():
        if name in present:
            versions = sorted({v for n, v in packages if n == name})
            print(f"floor {name} >= {floor}: locked {', '.join(versions)}")
    deps = metadata()
    failures += license_failures(deps)
    by_license = {}
    for p in deps:
        by_license.setdefault(p.get("license"), []).append(p["name"])
    print(f"{len(deps)} third-party packages; licenses:")
    for lic, names in sorted(by_license.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(names):4d}  {lic}")
    if failures:
        print("dependency check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print("dependency check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
