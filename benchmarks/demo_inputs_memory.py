"""Peak memory of the product ingest path for a GCTX: `perturbgraph demo --inputs FILE`'s `sources` group.

For each size, three fresh subprocesses (peak RSS is per process):
1. write a synthetic (n_samples x 978) float32 GCTX (benchmarks/gctx_stream_memory.write_synthetic_gctx;
   column ids in file order, or shuffled with --shuffle-ids so the store has to sort out-of-order chunks);
2. with PERTURBGRAPH_HOME in a temporary folder and PERTURBGRAPH_INPUTS=FILE, materialize the Dagster
   assets of the `sources` group (input_manifest, reference_data, experiments) in process, exactly the
   assets and code the demo job runs first: GctxToLong chunks -> graph.io.validation -> the store's
   MeasurementWriter, plus the quarantine table. It records peak RSS (getrusage ru_maxrss), RSS after
   the imports, wall time and the store entry;
3. nothing else: the GCTX and the home are deleted.

The later groups are not run: loading 200k Signature nodes needs a Neo4j (its memory is its own process)
and training reads the table it trains on. Bounded for a shared machine: run it with nice.

    nice -n 10 python benchmarks/demo_inputs_memory.py --sizes 50000 200000
    nice -n 10 python benchmarks/demo_inputs_memory.py --sizes 50000 200000 --shuffle-ids
    nice -n 10 python benchmarks/demo_inputs_memory.py --files ../shared/data/chemical/tahoe100m_ranked_signatures.parquet

`--files` measures step 2 on existing input files (any kind the demo reads), one subprocess each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's packages, whatever is installed
from gctx_stream_memory import _current_rss_mb, _rss_mb, write_synthetic_gctx  # noqa: E402


def write_file(path: Path, n_samples: int, shuffle_ids: bool) -> dict:
    t0 = time.perf_counter()
    write_synthetic_gctx(path, n_samples, shuffle_ids=shuffle_ids)
    return {"write_s": round(time.perf_counter() - t0, 1), "file_mb": round(path.stat().st_size / 2**20, 1)}


def ingest(path: Path, home: Path) -> dict:
    """The `sources` group of the demo job on PERTURBGRAPH_INPUTS=path, in this process."""
    os.environ["PERTURBGRAPH_HOME"] = str(home)
    os.environ["PERTURBGRAPH_INPUTS"] = str(path)
    from graph.settings import reload_settings

    reload_settings()
    import dagster as dg

    from pipelines.definitions import defs

    rss_imports = _current_rss_mb()
    t0 = time.perf_counter()
    result = dg.materialize_to_memory(
        list(defs.assets), selection=dg.AssetSelection.groups("sources"), resources=dict(defs.resources),
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=True)
    wall = time.perf_counter() - t0
    bundles = result.output_for_node("experiments")
    (bundle,) = bundles
    entry = bundle.store_entry
    return {"ingest_s": round(wall, 1), "rss_after_imports_mb": round(rss_imports, 1),
            "peak_rss_mb": round(_rss_mb(), 1), "signatures": len(bundle.signatures),
            "read": bundle.report.read, "quarantined": bundle.report.quarantined,
            "store_rows": entry.n_rows, "store_mb": round((home / "store" / entry.relpath).stat().st_size / 2**20, 1),
            "store_sha256": entry.sha256[:12]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--shuffle-ids", action="store_true", help="column ids out of order (the store sorts on disk)")
    ap.add_argument("--files", nargs="+", help="measure the ingest of these existing files instead")
    ap.add_argument("--tmp", default=None, help="folder for the GCTX and the home (default: system temp)")
    ap.add_argument("--write", nargs=2, metavar=("N", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--ingest", nargs=2, metavar=("PATH", "HOME"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write:
        print(json.dumps(write_file(Path(args.write[1]), int(args.write[0]), args.shuffle_ids)))
        return
    if args.ingest:
        print(json.dumps(ingest(Path(args.ingest[0]), Path(args.ingest[1]))))
        return

    def child(*extra: str) -> dict:
        out = subprocess.run([sys.executable, __file__, *extra], check=True, capture_output=True, text=True, cwd=ROOT)
        return json.loads(out.stdout.strip().splitlines()[-1])

    if args.files:
        for f in args.files:
            with tempfile.TemporaryDirectory(prefix="demo-inputs-bench-", dir=args.tmp) as tmp:
                r = {"file": f, "file_mb": round(Path(f).stat().st_size / 2**20, 1)}
                r |= child("--ingest", str(Path(f).resolve()), str(Path(tmp) / "home"))
            print(json.dumps(r), flush=True)
        return
    results = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="demo-inputs-bench-", dir=args.tmp) as tmp:
            path = Path(tmp) / f"bench_{n}.gctx"
            r = {"n_samples": n, "n_genes": 978, "ids": "shuffled" if args.shuffle_ids else "in order"}
            r |= child("--write", str(n), str(path), *(["--shuffle-ids"] if args.shuffle_ids else []))
            r |= child("--ingest", str(path), str(Path(tmp) / "home"))
            shutil.rmtree(Path(tmp) / "home", ignore_errors=True)
        results.append(r)
        print(json.dumps(r), flush=True)
    print("\n| samples x genes | column ids | file MB | store rows | store MB | ingest s | RSS after imports MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['n_samples']:,} x {r['n_genes']} | {r['ids']} | {r['file_mb']:,} | {r['store_rows']:,} | "
              f"{r['store_mb']:,} | {r['ingest_s']} | {r['rss_after_imports_mb']:,} | {r['peak_rss_mb']:,} |")
    if len(results) > 1:
        growth = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"] - 1
        print(f"\npeak RSS growth {results[0]['n_samples']:,} -> {results[-1]['n_samples']:,}: {growth:+.1%}")


if __name__ == "__main__":
    main()
