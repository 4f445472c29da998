"""`python -m bench`: run every benchmark and merge its record into bench/results.json."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from bench import bulk_users_baseline, entra_flow_overhead

RESULTS = Path(__file__).parent / "results.json"
BENCHMARKS = {
    "bulk_users_baseline": bulk_users_baseline.run,
    "entra_flow_overhead": entra_flow_overhead.run,
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
        record = BENCHMARKS[name]()
        record["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record["machine"] = f"{platform.machine()} {platform.python_version()}"
        results[name] = record
        print(f"{name}: {json.dumps(record)}", flush=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
