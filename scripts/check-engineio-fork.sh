#!/usr/bin/env bash
# Fails unless socketioxide runs on the vendored engine.io (vendor/engineioxide).
#
#   scripts/check-engineio-fork.sh
#
# The vendored crate reaches socketioxide through `[patch.crates-io]` in Cargo.toml. When
# socketioxide starts requiring an engineioxide the vendored copy does not satisfy, cargo only
# warns "patch was not used" and builds the registry crate: WebSocket sessions silently lose
# the direct write path and shutdown no longer ends every session. This check reads the
# resolved dependency graph (`cargo metadata`) and fails when:
#   - engineioxide is in the graph more than once, or not from vendor/engineioxide;
#   - socketioxide's engineioxide is not that package;
#   - the vendored version is not exactly the one socketioxide requires.
# Needs: cargo, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The host platform only: the graph that is built here, without downloading other targets' crates.
HOST="$(rustc -vV | sed -n 's/^host: //p')"
cargo metadata --format-version 1 --filter-platform "$HOST" --manifest-path "$ROOT/Cargo.toml" |
    python3 -c '
import json, os, sys

root = sys.argv[1]
vendored = os.path.join(root, "vendor", "engineioxide", "Cargo.toml")
meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
problems = []

engines = [p for p in packages.values() if p["name"] == "engineioxide"]
vendor = [p for p in engines if p["manifest_path"] == vendored and p["source"] is None]
for p in engines:
    if p not in vendor:
        problems.append(
            "engineioxide %s from %s is in the dependency graph"
            % (p["version"], p["source"] or p["manifest_path"])
        )
if not vendor:
    problems.append("the vendored engineioxide (vendor/engineioxide) is not used at all")

sio = [p for p in packages.values() if p["name"] == "socketioxide"]
if len(sio) != 1:
    problems.append("expected one socketioxide in the graph, found %d" % len(sio))
vendor_version = vendor[0]["version"] if vendor else None
for p in sio:
    deps = [d for d in nodes[p["id"]]["deps"] if d["name"] == "engineioxide"]
    if not vendor or [d["pkg"] for d in deps] != [vendor[0]["id"]]:
        used = ", ".join(
            "%s %s" % (packages[d["pkg"]]["version"], packages[d["pkg"]]["source"] or "path")
            for d in deps
        )
        problems.append("socketioxide %s uses engineioxide %s, not vendor/engineioxide" % (p["version"], used))
    reqs = [d["req"] for d in p["dependencies"] if d["name"] == "engineioxide"]
    for req in reqs:
        wanted = req.lstrip("^=~ ")
        if wanted != vendor_version:
            problems.append(
                "socketioxide %s requires engineioxide %s; vendor/engineioxide is %s"
                % (p["version"], req, vendor_version)
            )

if problems:
    print("engine.io fork check FAILED:", file=sys.stderr)
    for problem in problems:
        print("  - " + problem, file=sys.stderr)
    print(
        "\nsocketioxide must run on the patched engine.io in vendor/engineioxide. Either keep\n"
        "socketioxide on a version that requires the vendored engineioxide, or re-apply the\n"
        "patches listed in vendor/engineioxide/PATCHES.md to the engineioxide version socketioxide\n"
        "now requires (replace vendor/engineioxide with that release, set its version, port each\n"
        "patch and its tests), then run this check and tests/engineio_direct.rs again.",
        file=sys.stderr,
    )
    sys.exit(1)
print("engine.io fork in use: socketioxide -> engineioxide %s (vendor/engineioxide)" % vendor_version)
' "$ROOT"
