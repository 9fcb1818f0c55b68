"""The one place that decides how many CPU threads torch uses, and how idle threads wait.

On a busy machine, extra intra-op threads do not finish sooner: they wait for cores, and OpenMP's
default waiting policy spins while it waits, so a 2-thread fit beside two other CPU-bound jobs
burned ~4.5x the CPU-seconds of the same fit on an idle machine (issue 16). So:

- threads come from the cores this process may use (sched_getaffinity) minus the load already on
  them (1-minute load average), at least 1; on a small machine (<= SMALL_MACHINE_CORES usable
  cores) always 1, because the LPM's small per-step matrices gain little from a second thread and
  the other core is needed by Neo4j and the rest of the pipeline;
- OMP_WAIT_POLICY=PASSIVE (threads sleep instead of spinning between parallel regions) is put in
  the environment before torch loads, for this process and the ones it starts (Dagster's).

`PERTURBGRAPH_TORCH_THREADS` (graph.settings) overrides the count.
"""

from __future__ import annotations

import math
import os

SMALL_MACHINE_CORES = 2
MAX_AUTO_THREADS = 8  # beyond this the LPM's per-step work is too small to split further
WAIT_POLICY_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}  # GNU / Intel OpenMP

_configured: int | None = None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def choose_threads(requested: int = 0, *, cores: int | None = None, load: float | None = None) -> int:
    """Threads for torch: `requested` when > 0 (capped at the usable cores), else from the free cores."""
    cores = cores or usable_cores()
    if requested > 0:
        return min(requested, cores)
    if cores <= SMALL_MACHINE_CORES:
        return 1
    load = os.getloadavg()[0] if load is None else load
    free = cores - math.floor(load + 0.5)
    return max(1, min(free, MAX_AUTO_THREADS))


def thread_env(requested: int = 0, environ=None) -> int:
    """Put the policy in the environment, where the user set nothing: sleeping (not spinning)
    OpenMP threads and the chosen count for OpenMP / MKL / OpenBLAS. Takes effect for runtimes
    loaded after this call (numpy and torch imported later, and every child process: Dagster's)."""
    environ = os.environ if environ is None else environ
    n = choose_threads(requested)
    for key, value in {**WAIT_POLICY_ENV, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n),
                       "OPENBLAS_NUM_THREADS": str(n)}.items():
        environ.setdefault(key, value)
    return n


def configure_threads(requested: int | None = None) -> int:
    """Apply the thread policy to torch in this process once (later calls return the decision) and
    return the thread count. requested None = the configured PERTURBGRAPH_TORCH_THREADS."""
    global _configured
    if _configured is not None:
        return _configured
    if requested is None:
        from graph.settings import get_settings

        requested = get_settings().torch_threads
    n = thread_env(requested)
    import torch

    if requested <= 0 and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        n = max(1, int(os.environ["OMP_NUM_THREADS"]))  # the user's (or parent process's) choice
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)  # the LPM runs no inter-op parallel work
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass
    _configured = n
    return n
