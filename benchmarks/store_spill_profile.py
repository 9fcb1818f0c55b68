"""Where the store's memory goes when GCTX column ids are out of order, phase by phase.

Each size runs in a fresh subprocess: write a synthetic (n x 978) GCTX with shuffled column ids
(benchmarks/gctx_stream_memory.write_synthetic_gctx), stream it through GctxToLong (chunks of 250
signatures, as the demo) into graph.store.MeasurementWriter, and sample RSS (and the Arrow memory pool)
every 50 ms, keeping the peak of each phase: reader set-up, appending (spilling), and close (external
sort, then emitting the sorted buckets). No Dagster: the writer alone.

    nice -n 19 python benchmarks/store_spill_profile.py --sizes 20000 40000 80000

`--parquet-iter` instead measures the Arrow pool while iterating a spill-like parquet file (shuffled
signatures, 250k-row row groups, text read as dictionaries) three ways: iter_batches (parquet's default
pre_buffer=True), iter_batches with pre_buffer=False, and read_row_group one at a time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's packages, whatever is installed
from gctx_stream_memory import N_GENES, _current_rss_mb, write_synthetic_gctx  # noqa: E402


def profile(n: int, tmp: Path) -> dict:
    import pyarrow as pa

    from graph.io.gctx import GctxToLong
    from graph.settings import Settings
    from graph.store import measurements as store

    path = write_synthetic_gctx(tmp / "bench.gctx", n, shuffle_ids=True)
    phase, peaks, stop = ["reader"], {}, threading.Event()

    def sample() -> None:
        while not stop.is_set():
            p = phase[0]
            peaks[p] = max(peaks.get(p, 0.0), _current_rss_mb())
            peaks[p + " arrow"] = max(peaks.get(p + " arrow", 0.0), pa.total_allocated_bytes() / 2**20)
            time.sleep(0.05)

    # The sort's second step (its name before commit c66046b: _emit_sorted) marks the phase.
    step = "_emit_bucket" if hasattr(store.MeasurementWriter, "_emit_bucket") else "_emit_sorted"
    real_emit = getattr(store.MeasurementWriter, step)

    def emit_bucket(self, *args):
        phase[0] = "close: emit buckets"
        return real_emit(self, *args)

    setattr(store.MeasurementWriter, step, emit_bucket)
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    reader = GctxToLong(path, "bench", chunk_size=250)
    phase[0] = "append"
    with store.MeasurementWriter(Settings(home=tmp / "home"), "bench") as w:
        for chunk in reader.iter_long():
            w.append(chunk)
        phase[0] = "close: split"
    stop.set()
    return {"n_samples": n, "s": round(time.perf_counter() - t0, 1), "buckets": getattr(w, "buckets", None),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "phases_mb": {k: round(v) for k, v in peaks.items()}, "sha256": w.entry.sha256[:12]}


def parquet_iter(n: int, tmp: Path) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from graph.store.measurements import _TEXT_COLUMNS, STORE_SCHEMA

    rng, path = np.random.default_rng(0), tmp / "spill.parquet"
    genes = np.array([f"GENE{g}" for g in range(N_GENES)], dtype=object)
    with pq.ParquetWriter(path, STORE_SCHEMA, compression="lz4") as w:
        order = rng.permutation(n)
        for lo in range(0, n, 250):
            sig = np.repeat(np.array([f"bench:SIG{i:07d}" for i in order[lo:lo + 250]], dtype=object), N_GENES)
            k = len(sig)
            w.write_table(pa.table({"dataset": ["bench"] * k, "signature_id": sig, "context": ["A375"] * k,
                                    "perturbation": ["compound:x"] * k, "perturbation_type": ["compound"] * k,
                                    "readout": np.tile(genes, k // N_GENES),
                                    "value": rng.standard_normal(k, dtype=np.float32)}, schema=STORE_SCHEMA))
    out = {"n_samples": n, "file_mb": round(path.stat().st_size / 2**20, 1)}
    for name, pre_buffer, by_group in (("iter_batches", True, False), ("iter_batches pre_buffer=False", False, False),
                                       ("read_row_group", False, True)):
        f = pq.ParquetFile(path, read_dictionary=list(_TEXT_COLUMNS), pre_buffer=pre_buffer)
        it = (f.read_row_group(i) for i in range(f.num_row_groups)) if by_group else f.iter_batches(1_000_000)
        peak = 0
        for _ in it:
            peak = max(peak, pa.total_allocated_bytes())
        f.close()
        out[f"{name} arrow MB"] = round(peak / 2**20)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 40_000, 80_000])
    ap.add_argument("--parquet-iter", action="store_true")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory(prefix="store-spill-profile-") as tmp:
            run = parquet_iter if args.parquet_iter else profile
            print(json.dumps(run(args.one, Path(tmp))))
        return
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), *(["--parquet-iter"] if args.parquet_iter else [])],
                             check=True, capture_output=True, text=True, cwd=ROOT)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
