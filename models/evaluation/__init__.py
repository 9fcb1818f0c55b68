"""Evaluation of the LPM against baselines: splits, baselines, metrics and the harness that runs them."""

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
from models.evaluation.harness import (
    Resources,
    build_model,
    evaluate_model,
    markdown_table,
    run_benchmark,
    write_results,
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
