"""Time `perturbgraph demo` on a fresh home: wall and CPU-seconds, per step, idle and under contention.

    python benchmarks/demo_time.py --mode idle            # the demo alone
    python benchmarks/demo_time.py --mode busy            # beside two CPU-bound processes
    python benchmarks/demo_time.py --mode both --json out.json

Each run gets a new PERTURBGRAPH_HOME (a temp folder; the Neo4j jars come from the shared cache) and
runs the real CLI in a subprocess, exactly as a user would. Per-step times come from the run's Dagster
event log (STEP_START -> STEP_SUCCESS/FAILURE); per-step CPU from sampling the demo process's
/proc/<pid>/stat (all threads, and waited-for children) twice a second. The managed Neo4j's CPU is
read from its own /proc entry before it is stopped and reported separately. The load average seen
during the run is printed: on a shared machine, say what else was running.

`--repo` runs another checkout's code (e.g. an unpacked `git archive` of an older commit, for a
before/after comparison) with this script.

`--mode threads` isolates the thread policy: one LPM epoch on a synthetic 5-context, 300-readout table
(200 perturbations = the demo's size; `--fit-perturbations`) in a fresh process, torch's default threads with OpenMP's default (spinning) wait
policy vs `models.runtime` (PERTURBGRAPH_TORCH_THREADS / OMP_WAIT_POLICY), alone and beside two
CPU-bound processes: wall and CPU-seconds of the fit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    """utime + stime (+ waited-for children) of a process, in seconds; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # fields[0] is the state (field 3 of stat): utime, stime, cutime, cstime are fields 14-17.
    return sum(int(x) for x in fields[11:15]) / TICK


class Sampler(threading.Thread):
    """(unix time, CPU-seconds, 1-min load) of one process, every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            cpu = _cpu_s(self.pid)
            if cpu is not None:
                self.samples.append((time.time(), cpu, os.getloadavg()[0]))
            self.stop.wait(self.every)

    def cpu_at(self, t: float) -> float:
        """CPU-seconds used by time t (linear between samples)."""
        s = self.samples
        if not s:
            return 0.0
        if t <= s[0][0]:
            return s[0][1]
        for (t0, c0, _), (t1, c1, _) in zip(s, s[1:], strict=False):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1e-9)
        return s[-1][1]


def _burners(n: int) -> list[subprocess.Popen]:
    """n CPU-bound processes (a pure-Python spin loop each), as other users' jobs would be."""
    return [subprocess.Popen([sys.executable, "-c", "while True:\n    pass"]) for _ in range(n)]


def _step_times(dagster_home: Path) -> list[dict]:
    """[{step, start, end, status}] of the latest run in that Dagster instance."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)  # the project's dagster.yaml reads its folders from it
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return []
        steps: dict[str, dict] = {}
        for entry in instance.all_logs(runs[0].run_id):
            ev = entry.dagster_event
            if ev is None or not entry.step_key:
                continue
            name = ev.event_type_value
            if name == "STEP_START":
                steps.setdefault(entry.step_key, {"step": entry.step_key})["start"] = entry.timestamp
            elif name in ("STEP_SUCCESS", "STEP_FAILURE"):
                steps.setdefault(entry.step_key, {"step": entry.step_key}).update(
                    end=entry.timestamp, status=name.removeprefix("STEP_").lower())
    return sorted((s for s in steps.values() if "start" in s and "end" in s), key=lambda s: s["start"])


def time_demo(repo: Path, bolt_port: int, *, busy: int = 0, epochs: int | None = None,
              keep_home: bool = False) -> dict:
    home = Path(tempfile.mkdtemp(prefix="pg-demo-time-"))
    env = {k: v for k, v in os.environ.items() if k not in ("NEO4J_URI", "DAGSTER_HOME")}
    env.update(PERTURBGRAPH_HOME=str(home), PERTURBGRAPH_NEO4J_BOLT_PORT=str(bolt_port),
               PERTURBGRAPH_INPUTS="default", PYTHONPATH=str(repo))
    cli = [sys.executable, "-c", "from pipelines.cli import main; main()"]
    burners = _burners(busy)
    load_before = os.getloadavg()
    try:
        began = time.time()
        proc = subprocess.Popen(cli + ["demo"] + (["--epochs", str(epochs)] if epochs else []), cwd=repo, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = Sampler(proc.pid)
        sampler.start()
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - began
        sampler.stop.set()
        sampler.join()
        pid_file = home / "neo4j" / "run" / "neo4j.pid"
        neo4j_cpu = _cpu_s(int(pid_file.read_text())) if pid_file.exists() else None
    finally:
        for b in burners:
            b.kill()
            b.wait()
        subprocess.run(cli + ["neo4j", "stop"], cwd=repo, env=env, capture_output=True, timeout=120)
    steps = _step_times(home / "dagster")
    for s in steps:
        s["wall_s"] = round(s["end"] - s["start"], 1)
        s["cpu_s"] = round(sampler.cpu_at(s["end"]) - sampler.cpu_at(s["start"]), 1)
    loads = [ld for _, _, ld in sampler.samples]
    result = {
        "mode": f"beside {busy} CPU-bound processes" if busy else "idle", "exit_code": proc.returncode,
        "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "neo4j_cpu_s": None if neo4j_cpu is None else round(neo4j_cpu, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_mean_during": round(sum(loads) / len(loads), 2) if loads else None,
        "cpus": os.cpu_count(), "steps": [{k: s[k] for k in ("step", "wall_s", "cpu_s", "status")} for s in steps],
        "output_tail": output.splitlines()[-40:],
    }
    if keep_home:
        result["home"] = str(home)
    else:
        shutil.rmtree(home, ignore_errors=True)
    return result


FIT_CODE = """
import os, sys, time
import numpy as np, pandas as pd
if sys.argv[1] == "policy":
    from models.runtime import configure_threads
    configure_threads()
import torch
from models.lpm import LPM
from models.module import LPMConfig
rng = np.random.default_rng(0)
ci, pi, ri = (a.ravel() for a in np.meshgrid(np.arange(5), np.arange(int(sys.argv[2])), np.arange(300), indexing="ij"))
df = pd.DataFrame({"context": [f"CL{c}" for c in ci], "perturbation": [f"P{p}" for p in pi],
                   "readout": [f"G{r}" for r in ri], "value": rng.normal(size=ci.size).astype(np.float32)})
c0, w0 = time.process_time(), time.perf_counter()
LPM(LPMConfig(max_epochs=1)).fit(df, progress=False, device="cpu")
print(torch.get_num_threads(), round(time.process_time() - c0, 1), round(time.perf_counter() - w0, 1))
"""


def time_thread_policy(repo: Path, perturbations: int = 200) -> list[dict]:
    """One LPM epoch (5 contexts x perturbations x 300 readouts) per (policy, load): torch defaults vs
    models.runtime."""
    rows = []
    for busy in (0, 2):
        for policy in ("torch-default", "policy"):
            env = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "MKL_NUM_THREADS",
                                "OPENBLAS_NUM_THREADS")}
            env["PYTHONPATH"] = str(repo)
            burners = _burners(busy)
            try:
                out = subprocess.run([sys.executable, "-c", FIT_CODE, policy, str(perturbations)], cwd=repo, env=env, capture_output=True,
                                     text=True, timeout=3600)
            finally:
                for b in burners:
                    b.kill()
                    b.wait()
            threads, cpu, wall = out.stdout.split()[-3:]
            rows.append({"policy": policy, "beside": busy, "triples": 5 * perturbations * 300, "threads": int(threads), "cpu_s": float(cpu),
                         "wall_s": float(wall), "load_after": round(os.getloadavg()[0], 2)})
            print(rows[-1], flush=True)
    return rows


def _print(r: dict) -> None:
    print(f"\n== {r['mode']}: exit {r['exit_code']}, wall {r['wall_s']:.0f} s ({r['wall_s'] / 60:.1f} min), "
          f"CPU {r['cpu_s']:.0f} s (demo process) + {r['neo4j_cpu_s']} s (Neo4j); load before "
          f"{r['load_before']}, mean 1-min load during {r['load_mean_during']} on {r['cpus']} CPUs")
    print(f"{'step':40s} {'wall s':>8s} {'CPU s':>8s}")
    for s in r["steps"]:
        print(f"{s['step']:40s} {s['wall_s']:8.1f} {s['cpu_s']:8.1f}  {s['status']}")
    if r["exit_code"]:
        print("\n".join(r["output_tail"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["idle", "busy", "both", "threads"], default="both")
    p.add_argument("--repo", type=Path, default=REPO_ROOT, help="checkout whose code runs (default: this one)")
    p.add_argument("--bolt-port", type=int, default=7799, help="Bolt port of the fresh home's managed Neo4j")
    p.add_argument("--epochs", type=int, default=None, help="pass --epochs to the demo (default: its own)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--keep-home", action="store_true")
    p.add_argument("--fit-perturbations", type=int, default=200, help="--mode threads: table size (x 5 x 300)")
    args = p.parse_args()
    if args.mode == "threads":
        rows = time_thread_policy(args.repo.resolve(), args.fit_perturbations)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return
    results = []
    for busy in {"idle": [0], "busy": [2], "both": [0, 2]}[args.mode]:
        r = time_demo(args.repo.resolve(), args.bolt_port, busy=busy, epochs=args.epochs, keep_home=args.keep_home)
        _print(r)
        results.append(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
