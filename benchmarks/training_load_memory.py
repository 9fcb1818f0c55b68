"""Peak memory of reading a training table back from the store (`graph.store.load_training_table`).

For each input file, two kinds of fresh subprocesses (peak RSS is per process):
1. once: ingest the file into a store under --home (pipelines.ingest.read_experiment, the demo's path);
2. per repeat: with PERTURBGRAPH_HOME=--home, import graph.store, record RSS after the imports, call
   load_training_table(settings, [dataset]) and record peak RSS (getrusage ru_maxrss), the wall time,
   the rows and the memory of the returned DataFrame (its arrays: categorical codes, float32 values).

"peak - after imports" is what loading costs; "table MB" is what it has to cost. Run it with nice:

    nice -n 19 python benchmarks/training_load_memory.py \\
        --files ../shared/data/chemical/tahoe100m_ranked_signatures.parquet --home /tmp/tahoe-store --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's packages, whatever is installed
from gctx_stream_memory import _current_rss_mb, _rss_mb  # noqa: E402


def ingest(path: Path, home: Path) -> dict:
    os.environ["PERTURBGRAPH_HOME"] = str(home)
    from graph.settings import reload_settings
    from pipelines.ingest import read_experiment
    from pipelines.inputs import spec_for

    settings = reload_settings()
    t0 = time.perf_counter()
    bundle = read_experiment(spec_for(path), settings, progress=lambda _m: None)
    return {"dataset": bundle.store_entry.dataset_id, "store_rows": bundle.store_entry.n_rows,
            "store_sha256": bundle.store_entry.sha256[:12], "ingest_s": round(time.perf_counter() - t0, 1)}


def load(home: Path, dataset: str) -> dict:
    os.environ["PERTURBGRAPH_HOME"] = str(home)
    from graph.settings import reload_settings
    from graph.store.measurements import load_training_table

    settings = reload_settings()
    rss_imports = _current_rss_mb()
    t0 = time.perf_counter()
    table = load_training_table(settings, [dataset])
    wall = time.perf_counter() - t0
    return {"load_s": round(wall, 1), "rows": len(table), "table_mb": round(table.memory_usage(deep=True).sum() / 2**20, 1),
            "dtypes": {c: str(t) for c, t in table.dtypes.items()},
            "rss_after_imports_mb": round(rss_imports, 1), "peak_rss_mb": round(_rss_mb(), 1),
            "rss_after_load_mb": round(_current_rss_mb(), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", nargs="+", help="measurement files to ingest once and load back")
    ap.add_argument("--home", required=True, help="PERTURBGRAPH_HOME of the store (kept: later runs reuse it)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--ingest", metavar="PATH", help=argparse.SUPPRESS)
    ap.add_argument("--load", metavar="DATASET", help=argparse.SUPPRESS)
    args = ap.parse_args()
    home = Path(args.home)
    if args.ingest:
        print(json.dumps(ingest(Path(args.ingest), home)))
        return
    if args.load:
        print(json.dumps(load(home, args.load)))
        return

    def child(*extra: str) -> dict:
        out = subprocess.run([sys.executable, __file__, "--home", str(home), *extra], check=True, capture_output=True,
                             text=True, cwd=ROOT)
        return json.loads(out.stdout.strip().splitlines()[-1])

    for f in args.files or []:
        done = home / f"ingested-{Path(f).name}.json"
        if not done.exists():
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(child("--ingest", str(Path(f).resolve()))))
        info = json.loads(done.read_text())
        for _ in range(args.repeat):
            r = {"file": Path(f).name, **info, **child("--load", info["dataset"])}
            r["load_cost_mb"] = round(r["peak_rss_mb"] - r["rss_after_imports_mb"], 1)
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
