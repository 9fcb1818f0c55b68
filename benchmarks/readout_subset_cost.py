"""Cost of the two-pass readout subset on the product ingest path (`perturbgraph demo --inputs FILE?readouts=N`).

A readout subset of N random readouts is drawn from the readouts measured in every accepted signature
(graph/io/options.py), so the streamed ingest reads the file twice: a first pass through the reader and
the validation step only counts readouts per signature, the second stores the kept values. This script
measures what that first pass costs, against the same file ingested whole:

1. one subprocess writes a synthetic (n_samples x 978) float32 GCTX (benchmarks/demo_inputs_memory.py's
   `--write`, i.e. gctx_stream_memory.write_synthetic_gctx);
2. for each variant (no subset, then each `?readouts=N`), a fresh subprocess runs demo_inputs_memory.py's
   `--ingest` on `FILE` or `FILE?readouts=N`: the Dagster `sources` group of the demo job in process
   (input_manifest, reference_data, experiments: GctxToLong chunks -> validation -> the store's
   MeasurementWriter), recording wall time and peak RSS (ru_maxrss) of that process;
3. the file and the homes are deleted.

    nice -n 19 python benchmarks/readout_subset_cost.py --samples 100000 --readouts 150

Run it with nice on a shared machine; one run takes minutes per variant at 100k columns.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
import demo_inputs_memory  # noqa: E402  (its --write / --ingest subprocess steps are reused as they are)


def _child(*args: str) -> dict:
    """One step of demo_inputs_memory.py in a fresh process (peak RSS is per process); its last JSON line."""
    out = subprocess.run([sys.executable, demo_inputs_memory.__file__, *args], check=True, capture_output=True,
                         text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000, help="GCTX columns (signatures)")
    ap.add_argument("--readouts", type=int, nargs="+", default=[150], help="subset sizes N to measure")
    ap.add_argument("--tmp", default=None, help="folder for the GCTX and the homes (default: system temp)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="readout-subset-bench-", dir=args.tmp) as tmp:
        path = Path(tmp) / f"bench_{args.samples}.gctx"
        written = _child("--write", str(args.samples), str(path))
        print(json.dumps({"n_samples": args.samples, **written}), flush=True)
        for n in [None, *args.readouts]:
            target = str(path) + (f"?readouts={n}" if n else "")
            r = {"variant": f"?readouts={n}" if n else "whole file", "n_samples": args.samples}
            r |= _child("--ingest", target, str(Path(tmp) / f"home_{n or 'all'}"))
            rows.append(r)
            print(json.dumps(r), flush=True)
    base = rows[0]
    print(f"\n{args.samples:,} x 978 GCTX ({written['file_mb']:,} MB)\n")
    print("| input | passes | store rows | ingest s | vs whole | RSS after imports MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| FILE{'' if r is base else r['variant']} | {1 if r is base else 2} | {r['store_rows']:,} | "
              f"{r['ingest_s']} | {r['ingest_s'] / base['ingest_s']:.2f}x | {r['rss_after_imports_mb']:,} | "
              f"{r['peak_rss_mb']:,} |")


if __name__ == "__main__":
    main()
