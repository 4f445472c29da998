"""`python -m bench`: run every benchmark, each in a process of its own (a fresh Django, its own
database and sandbox), and merge their records into bench/results.json."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results.json"
# Benchmark name -> module whose `python -m` prints {record name: record} as its last line.
BENCHMARKS = {
    "bulk_users": "bench.bulk_users",
    "entra_flow_overhead": "bench.entra_flow_overhead",
    "audit_log": "bench.audit_log",
    "dashboard": "bench.dashboard",
    "status_fragment": "bench.status_fragment",
    "audit_export": "bench.audit_export",
    "sync_noop": "bench.sync_noop",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(BENCHMARKS)} (default all)")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in args.names or list(BENCHMARKS):
        print(f"{name}: running…", flush=True)
        finished = subprocess.run(  # noqa: S603 - our own module, our own interpreter
            [sys.executable, "-m", BENCHMARKS[name]],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        records = json.loads(finished.stdout.strip().splitlines()[-1])
        for record_name, record in records.items():
            record["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record["machine"] = f"{platform.machine()} {platform.python_version()}"
            results[record_name] = record
            print(f"{record_name}: {json.dumps(record)}", flush=True)
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
