"""The `perturbgraph` command line: one typer app (`app`, the console script in pyproject.toml), one
module per command group.

    common   the app, the thread policy, error lines           (pipelines/cli/common.py)
    server   neo4j start|stop|status, where, ui               (pipelines/cli/server.py)
    demo     demo: every asset on the chosen inputs            (pipelines/cli/demo.py)
    model    train, evaluate (train also is the torchrun rank) (pipelines/cli/model.py)
    query    queries, query, cypher, prune-versions            (pipelines/cli/query.py)

`python -m pipelines.cli ...` is `perturbgraph ...`. models/ holds no command-line code.
"""

from __future__ import annotations

import sys

from pipelines.cli.common import app  # isort: skip - first: the thread policy before numpy / torch load
from pipelines.cli import demo, model, query, server  # noqa: E402,F401,I001 - each registers its commands on app

query.register(app)


def main() -> None:  # pragma: no cover - console-script shim
    sys.exit(app())
