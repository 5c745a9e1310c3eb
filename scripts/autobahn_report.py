#!/usr/bin/env python3
"""Summarise an Autobahn|Testsuite index.json for one agent and check it against expectations.

Usage: autobahn_report.py INDEX_JSON AGENT EXPECTED_JSON [--cases PATTERNS] [--update]

Prints a per-category table. Exits non-zero when any case is FAILED or UNIMPLEMENTED (in its
behaviour or its close behaviour), or when a case's class differs from the expected file
(classes: pass = OK or NON-STRICT, INFORMATIONAL, FAILED, UNIMPLEMENTED; OK <-> NON-STRICT
swings are timing-dependent for a few cases and are listed but allowed). With --cases (the
comma-separated case-id patterns the run was given, e.g. "1.*,12.1.*"), only the expected cases
those patterns match are compared, so a case that should have run and did not is still caught;
without it, the expected cases of every category that ran. --update merges this run's results
into the expected file instead.
"""
import fnmatch
import json
import sys
from collections import Counter, defaultdict

COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def klass(behavior):
    return "pass" if behavior in ("OK", "NON-STRICT") else behavior


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    index_path, agent, expected_path = sys.argv[1:4]
    options = sys.argv[4:]
    update = "--update" in options
    patterns = None
    if "--cases" in options:
        at = options.index("--cases")
        if at + 1 >= len(options):
            print("autobahn: --cases needs a list of patterns", file=sys.stderr)
            return 2
        patterns = options[at + 1].split(",")
    with open(index_path) as f:
        index = json.load(f)
    if agent not in index:
        print(f"autobahn: agent {agent!r} not in report (agents: {list(index)})", file=sys.stderr)
        return 1
    results = index[agent]
    if not results:
        print("autobahn: no case ran", file=sys.stderr)
        return 1

    per_category = defaultdict(Counter)
    problems = []
    for case_id, result in results.items():
        behavior = result["behavior"]
        per_category[case_id.split(".")[0]][behavior] += 1
        if behavior in ("FAILED", "UNIMPLEMENTED"):
            problems.append(f"{case_id}: {behavior}")
        if result.get("behaviorClose") == "FAILED":
            problems.append(f"{case_id}: close behaviour FAILED")

    print(f"Autobahn|Testsuite results for {agent} ({len(results)} cases)")
    header = f"{'category':>8} " + " ".join(f"{c:>13}" for c in COLUMNS) + f" {'total':>6}"
    print(header)
    print("-" * len(header))
    totals = Counter()
    for category in sorted(per_category, key=int):
        counts = per_category[category]
        totals.update(counts)
        row = " ".join(f"{counts.get(c, 0):>13}" for c in COLUMNS)
        print(f"{category:>8} {row} {sum(counts.values()):>6}")
    print("-" * len(header))
    print(f"{'all':>8} " + " ".join(f"{totals.get(c, 0):>13}" for c in COLUMNS) + f" {sum(totals.values()):>6}")

    observed = {case: results[case]["behavior"] for case in sorted(results, key=case_key)}
    if update:
        try:
            with open(expected_path) as f:
                previous = json.load(f)
        except FileNotFoundError:
            previous = {}
        observed = dict(sorted({**previous, **observed}.items(), key=lambda kv: case_key(kv[0])))
        with open(expected_path, "w") as f:
            json.dump(observed, f, indent=1)
            f.write("\n")
        print(f"autobahn: wrote {expected_path}")
    else:
        try:
            with open(expected_path) as f:
                expected = json.load(f)
        except FileNotFoundError:
            print(f"autobahn: expected results {expected_path} missing", file=sys.stderr)
            return 1
        if patterns is not None:
            # A run of some cases is checked against the expected results of those cases.
            expected = {
                case: b for case, b in expected.items() if any(fnmatch.fnmatchcase(case, p) for p in patterns)
            }
        else:
            # Without the patterns, against the categories that ran.
            ran = {case.split(".")[0] for case in observed}
            expected = {case: b for case, b in expected.items() if case.split(".")[0] in ran}
        for case in sorted(set(expected) | set(observed), key=case_key):
            want, got = expected.get(case), observed.get(case)
            if want is None or got is None:
                problems.append(f"{case}: expected {want}, got {got}")
            elif klass(want) != klass(got):
                problems.append(f"{case}: expected {want}, got {got}")
            elif want != got:
                print(f"autobahn: note: {case} expected {want}, got {got} (timing-dependent, allowed)")

    if problems:
        print(f"autobahn: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("autobahn: 0 FAILED, 0 UNIMPLEMENTED, matches expected results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
