"""Peak memory of streaming a GCTX into the long table, for two file sizes.

Each size runs in a fresh subprocess (peak RSS is per process): write an (n_samples x 978) float32
GCTX in 10k-row blocks to a temporary folder, stream it through GctxToLong (chunks of 1,000 signatures)
consuming every long-table chunk, record peak RSS (resource.getrusage ru_maxrss) and wall time, delete
the file. The point: peak RSS stays flat while the file grows (goal < 1.5 GB).

    nice python benchmarks/gctx_stream_memory.py --sizes 50000 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_GENES = 978
BLOCK = 10_000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _current_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_synthetic_gctx(path: Path, n_samples: int, *, shuffle_ids: bool = False, seed: int = 0) -> Path:
    """An (n_samples x 978) float32 GCTX written in 10k-row blocks: 5 cell lines, 500 drugs x 5 doses,
    5% DMSO controls. Column ids are SIG0000000... in file order, or a random permutation of them
    (`shuffle_ids`, as in real plates whose ids are not sorted)."""
    import numpy as np
    import pandas as pd

    from graph.io.gctx import write_gctx

    rng = np.random.default_rng(seed)
    cells = np.array(["A375", "MCF7", "PC3", "HEPG2", "VCAP"])
    drugs = np.array([f"drug-{i}" for i in range(500)])
    doses = np.array(["0.04 um", "0.37 um", "3.33 um", "10 uM", "500 nM"])
    order = rng.permutation(n_samples) if shuffle_ids else np.arange(n_samples)
    col = pd.DataFrame({
        "id": [f"SIG{i:07d}" for i in order],
        "cell_id": cells[rng.integers(0, len(cells), n_samples)],
        "pert_type": np.where(rng.random(n_samples) < 0.05, "ctl_vehicle", "trt_cp"),
        "pert_iname": drugs[rng.integers(0, len(drugs), n_samples)],
        "pert_idose": doses[rng.integers(0, len(doses), n_samples)],
        "pert_itime": "24 h",
    })
    col.loc[col["pert_type"] == "ctl_vehicle", "pert_iname"] = "DMSO"
    row = pd.DataFrame({"id": [str(1000 + g) for g in range(N_GENES)], "pr_gene_symbol": [f"GENE{g}" for g in range(N_GENES)],
                        "pr_is_lm": 1})

    def blocks():
        for start in range(0, n_samples, BLOCK):
            k = min(BLOCK, n_samples - start)
            yield rng.standard_normal((k, N_GENES), dtype=np.float32)

    return write_gctx(path, blocks(), row, col)


def run_one(n_samples: int, chunk_size: int) -> dict:
    from graph.io.gctx import GctxToLong

    with tempfile.TemporaryDirectory(prefix="gctx-bench-") as tmp:
        path = Path(tmp) / f"bench_{n_samples}.gctx"
        t0 = time.perf_counter()
        write_synthetic_gctx(path, n_samples)
        write_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20
        rss_before = _current_rss_mb()
        t0 = time.perf_counter()
        conv = GctxToLong(path, "bench", chunk_size=chunk_size)
        n_rows = n_chunks = 0
        max_chunk_mb = 0.0
        for chunk in conv.iter_long():
            n_rows += len(chunk)
            n_chunks += 1
            max_chunk_mb = max(max_chunk_mb, chunk.memory_usage(deep=False).sum() / 2**20)
        stream_s = time.perf_counter() - t0
        n_sigs = len(conv.signatures())
    return {"n_samples": n_samples, "n_genes": N_GENES, "file_mb": round(size_mb, 1), "write_s": round(write_s, 1),
            "stream_s": round(stream_s, 1), "long_rows": n_rows, "signatures": n_sigs, "chunks": n_chunks,
            "largest_chunk_mb": round(max_chunk_mb, 1), "rss_before_stream_mb": round(rss_before, 1),
            "peak_rss_mb": round(_rss_mb(), 1),
            "rows_per_s": int(n_rows / stream_s) if stream_s else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--chunk-size", type=int, default=1000)
    ap.add_argument("--single", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        print(json.dumps(run_one(args.single, args.chunk_size)))
        return
    results = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--single", str(n), "--chunk-size", str(args.chunk_size)],
                             check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print("\n| samples x genes | file MB | write s | stream s | long rows | rows/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['n_samples']:,} x {r['n_genes']} | {r['file_mb']:,} | {r['write_s']} | {r['stream_s']} | "
              f"{r['long_rows']:,} | {r['rows_per_s']:,} | {r['peak_rss_mb']:,} |")


if __name__ == "__main__":
    main()
