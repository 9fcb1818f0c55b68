"""Evaluation of the LPM against baselines: splits, baselines, metrics and the harness that runs them.

The harness names are loaded on first use: the harness imports models.registry, which imports the
baselines from this package, so importing the harness here would make the package import itself.
"""

from models.evaluation.baselines import (
    BASELINES,
    ContextReadoutMean,
    GlobalMean,
    LinearPCARidge,
    NoChange,
    OtherContextsMean,
    Predictor,
    TanimotoKNN,
)
from models.evaluation.metrics import (
    evaluate_predictions,
    per_signature_pearson,
    pooled_metrics,
    summarize,
    top_k_overlap,
)
from models.evaluation.splits import (
    Split,
    make_split,
    unseen_compound,
    unseen_context,
    unseen_experiment,
    unseen_gene,
)

__all__ = [
    "BASELINES", "ContextReadoutMean", "GlobalMean", "LinearPCARidge", "NoChange", "OtherContextsMean", "Predictor",
    "TanimotoKNN", "Resources", "build_model", "evaluate_model", "markdown_table", "run_benchmark", "write_results",
    "evaluate_predictions", "per_signature_pearson", "pooled_metrics", "summarize", "top_k_overlap", "Split",
    "make_split", "unseen_compound", "unseen_context", "unseen_experiment", "unseen_gene",
]

_HARNESS_NAMES = {"Resources", "build_model", "evaluate_model", "markdown_table", "run_benchmark", "write_results"}


def __getattr__(name: str):
    if name in _HARNESS_NAMES:
        from models.evaluation import harness

        return getattr(harness, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
