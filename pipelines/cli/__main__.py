"""`python -m pipelines.cli` = `perturbgraph` (torchrun starts the ranks of `train --nproc N` this way)."""

from pipelines.cli import main

main()
