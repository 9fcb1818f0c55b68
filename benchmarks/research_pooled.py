"""Issue 17, "pooled training across datasets": one LPM trained on the training rows of several make_results
sections at once (one readout / gene-node space, one gene encoder, one trunk), scored on each section's own
held-out experiments, beside the same LPM trained on that section alone and the section's strongest baselines.

    nice -n 19 python benchmarks/research_pooled.py --sections 11,6 --seeds 0,1,2 --lpm-epochs 12 --threads 1 \
        --out <copy of docs/results.md>        # docs/results.md "Research: pooled training across datasets"
    ... --sections 11@shared,6             # section 11's lines and split on the readouts the others measure

A section is a make_results index; `<index>@shared` reads that section's dataset on all its dense readouts
(no random subset) and keeps those that another chosen section measures, so every one of its readouts is
shared (same split rule, seed and held-out experiments; Tahoe's split depends only on the target's drugs).

Per seed, every section is split exactly as make_results splits it (make_split with the section's kind,
target and seed). The pooled fit trains on the union of the sections' training parts and stops early on the
union of their validation parts; each section's test rows are scored separately. The sections must come
from different datasets with disjoint contexts (`pooled_parts` checks that no held-out experiment of any
section is in the pooled training or validation rows). The residual base stays per dataset
(`GroupedCrossContextBase`: one `CrossContextBase` per section, fitted on that section's training rows), so
the pooled LPM starts from exactly the base the section's own LPM starts from (checked per fit: `base diff`)
and only the network is shared; `--naive` adds `lpm_pooled_naive`, one base over the pooled rows (its
cross-context mean and shrink then mix the datasets' value scales).

Rows are stored per (section, model, seed) in <home>/results/research_pooled.json (a run replaces the pairs it
ran); the tables between POOLED_MARKERS in --out are rewritten from all stored rows (or printed without --out).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.lpm import LPM  # noqa: E402
from models.residual_base import BaseParts, CrossContextBase  # noqa: E402

POOLED_MARKERS = ("<!-- research-pooled:start -->", "<!-- research-pooled:end -->")
BASELINES = ("other_contexts", "similar_contexts", "linear", "network_knn")  # network_knn: genetic sections only
LPMS = ("lpm", "lpm_pooled", "lpm_pooled_naive", "lpm_pooled_std")


def pooled_parts(splits: dict[str, object]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """splits: section key -> its Split. Returns the pooled training rows, the pooled validation rows and
    context -> section key. Refuses sections that share a context (the per-dataset base needs each context
    in one section) and checks that no section's held-out (test) experiment is in the pooled train / valid."""
    group: dict[str, str] = {}
    for key, s in splits.items():
        for c in pd.concat([s.train["context"], s.valid["context"], s.test["context"]]).astype(str).unique():
            if group.setdefault(c, key) != key:
                raise ValueError(f"pooled_parts: context {c!r} is in sections {group[c]} and {key}; pooling needs "
                                 "disjoint contexts")
    train = pd.concat([s.train for s in splits.values()], ignore_index=True)
    valid = pd.concat([s.valid for s in splits.values()], ignore_index=True)
    held = set().union(*(s.experiments("test") for s in splits.values()))
    for name, part in (("training", train), ("validation", valid)):
        leak = held & set(zip(part["context"].astype(str), part["perturbation"].astype(str), strict=True))
        if leak:
            raise ValueError(f"pooled_parts: {len(leak)} held-out experiments in the pooled {name} rows, "
                             f"e.g. {sorted(leak)[:3]}")
    return train, valid, group


class GroupedCrossContextBase(nn.Module):
    """CrossContextBase per group of contexts (a dataset): each group's statistics (context-readout means, the
    across-context mean, a perturbation's mean elsewhere, the shrink) come from its own rows only, so a
    pooled residual LPM starts from the base each dataset's own LPM starts from. Same interface as
    CrossContextBase where models/lpm.py uses it (fit, fit_shrink, parts, leave_own_out_parts, ctx_sum,
    ctx_w). ctx_group: (C+1,) group of each context vocabulary row, -1 = none (row 0, an unknown context)."""

    def __init__(self, n_contexts: int, n_perturbations: int, n_genes: int, shrinkable: bool, ctx_group: list[int]):
        super().__init__()
        self.subs = nn.ModuleList(CrossContextBase(n_contexts, n_perturbations, n_genes, shrinkable)
                                  for _ in range(max(ctx_group) + 1))
        self.register_buffer("ctx_group", torch.tensor(ctx_group, dtype=torch.long))
        self.ctx_w = None  # similar_contexts_base is not supported here

    @property
    def ctx_sum(self) -> torch.Tensor:
        return self.subs[0].ctx_sum

    @property
    def shrinks(self) -> list[float]:
        return [1.0 if s.shrink is None else float(s.shrink) for s in self.subs]

    def _groups(self, ctx: torch.Tensor) -> torch.Tensor:
        g = self.ctx_group[ctx]
        if (g < 0).any():
            raise ValueError(f"GroupedCrossContextBase: {int((g < 0).sum()):,} rows of a context in no group")
        return g

    @torch.no_grad()
    def fit(self, ctx, pert, gene, value):
        g = self._groups(ctx)
        for i, sub in enumerate(self.subs):
            sel = g == i
            sub.fit(ctx[sel], pert[sel], gene[sel], value[sel])
        return self

    @torch.no_grad()
    def fit_shrink(self, ctx, pert, gene, value) -> list[float]:
        g = self._groups(ctx)
        return [sub.fit_shrink(ctx[g == i], pert[g == i], gene[g == i], value[g == i]) for i, sub in enumerate(self.subs)]

    def _scatter(self, ctx, call) -> BaseParts:
        g = self._groups(ctx)
        f64 = dict(dtype=torch.float64, device=ctx.device)
        out = BaseParts(torch.zeros(len(ctx), **f64), torch.zeros(len(ctx), **f64),
                        torch.zeros(len(ctx), dtype=torch.bool, device=ctx.device))
        for i, sub in enumerate(self.subs):
            sel = g == i
            for o, p in zip(out, call(sub, sel), strict=True):
                o[sel] = p
        return out

    @torch.no_grad()
    def parts(self, ctx, pert, gene) -> BaseParts:
        return self._scatter(ctx, lambda sub, sel: sub.parts(ctx[sel], pert[sel], gene[sel]))

    @torch.no_grad()
    def leave_own_out_parts(self, ctx, pert, gene, value) -> BaseParts:
        return self._scatter(ctx, lambda sub, sel: sub.leave_own_out_parts(ctx[sel], pert[sel], gene[sel], value[sel]))

    def forward(self, ctx, pert, gene) -> torch.Tensor:
        return self.parts(ctx, pert, gene).cross


class Rescaled:
    """A fitted model trained on values x scale, predicting on the original scale (history kept for the detail)."""

    def __init__(self, model, scale: float):
        self.model, self.scale, self.history = model, scale, model.history

    def predict(self, rows):
        return self.model.predict(rows) / self.scale


class PooledLPM(LPM):
    """The LPM with its cross-context base kept per dataset (context_group: context -> dataset key)."""

    def __init__(self, config, *, side, seed: int, context_group: dict[str, str]):
        # its own cross-context base only (measured so): no choice among the weighted / graph bases
        super().__init__(replace(config, base_choice="fixed"), side=side, seed=seed)
        self.context_group = context_group

    def _new_module(self, edge_index=None, edge_weight=None):
        m = super()._new_module(edge_index, edge_weight)
        if m.base is not None:
            if m.base.ctx_w is not None or m.graph_base is not None:
                raise ValueError("PooledLPM: similar_contexts_base and graph_base are not supported")
            keys = sorted(set(self.context_group.values()))
            ctx_group = [-1] + [keys.index(self.context_group[c]) for c in self.vocab["context"]]
            C, G = m.base.ctx_sum.shape[0] - 1, m.base.ctx_sum.shape[1] - 1
            m.base = GroupedCrossContextBase(C, m.base.pert_sum.shape[0] - 1, G, m.base.shrink is not None, ctx_group)
        return m


def index(section: str) -> int:
    """The make_results index of a section key ('11' or '11@shared')."""
    return int(section.split("@")[0])


def _record(section: str, model: str, seed: int, split, scores: dict, **extra) -> dict:
    return {"section": section, "model": model, "seed": seed, "split": split.kind, "error": "",
            "n_test": len(split.test), "n_test_experiments": len(split.experiments("test")),
            "description": split.description, **scores, **extra}


def run(args, argv) -> int:
    from make_results import BENCHMARKS

    from graph.settings import get_settings
    from models.datasets import load_input, resources_for
    from models.evaluation.harness import build_model, evaluate_model, score_fitted, write_results
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import GENETIC_TYPES, make_split
    from models.module import LPMConfig

    overrides = {k: v for k, v in (("max_epochs", args.lpm_epochs), ("patience", args.lpm_patience)) if v is not None}
    config = LPMConfig(base_choice="fixed", **overrides)  # the cross-context base, as every stored row was fitted
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.naive and "lpm_pooled_naive" not in models:
        models.append("lpm_pooled_naive")
    json_dir = Path(get_settings().home) / "results"
    stored = json_dir / "research_pooled.json"
    rows = pd.read_json(stored, orient="records") if stored.exists() else pd.DataFrame()
    if len(rows):
        rows["section"] = rows["section"].astype(str)  # read_json reads '11' back as 11
        run_models = {*models, *(BASELINES if "baselines" in models else ())}
        rows = rows.loc[~(rows["model"].isin(run_models) & rows["seed"].isin(seeds) & rows["section"].isin(sections))]
    t0 = time.time()
    data, res, names, targets = {}, {}, {}, {}  # names/targets: what each loader recorded (one path with make_results)
    for i in sections:
        _, name, kwargs, *_ = BENCHMARKS[index(i)]
        if i.endswith("@shared"):
            kwargs = {k: v for k, v in kwargs.items() if k not in ("n_random", "seed")}
        loaded = load_input(name, **kwargs)
        data[i] = loaded.frame
        names |= loaded.perturbation_names
        targets |= loaded.perturbation_targets
    for i in [s for s in sections if s.endswith("@shared")]:
        others = set().union(*(set(data[o]["readout"].astype(str)) for o in sections if o != i))
        data[i] = data[i].loc[data[i]["readout"].astype(str).isin(others)].reset_index(drop=True)
    for i in sections:
        res[i] = replace(resources_for(data[i], gene_graph=True, perturbation_names=names, perturbation_targets=targets),
                         lpm_config=config)
    whole = pd.concat(data.values(), ignore_index=True)
    pooled_res = replace(resources_for(whole, gene_graph=True, perturbation_names=names, perturbation_targets=targets),
                         lpm_config=config)
    readouts = {i: set(d["readout"].astype(str)) for i, d in data.items()}
    shared = set.intersection(*readouts.values())
    print(f"[{time.time() - t0:6.0f}s] readouts per section {[len(r) for r in readouts.values()]}, in all "
          f"{len(shared)}, union {len(set.union(*readouts.values()))}", file=sys.stderr, flush=True)
    new = []

    def keep(rec):
        new.append(rec)
        print(f"[{time.time() - t0:6.0f}s] section {rec['section']} seed {rec['seed']} {rec['model']}: "
              f"r {rec['pearson_per_signature']:.4f} rmse {rec['rmse']:.4f} fit {rec['fit_s']:.0f}s "
              f"{rec.get('detail', '')}", file=sys.stderr, flush=True)
        write_results(pd.concat([rows, pd.DataFrame(new)], ignore_index=True), json_dir, name="research_pooled",
                      title="Research: pooled training across datasets")

    for seed in seeds:
        splits = {i: make_split(data[i], BENCHMARKS[index(i)][3], context=BENCHMARKS[index(i)][4], seed=seed)
                  for i in sections}
        alone = {}
        for i, split in splits.items():
            genetic = data[i]["perturbation_type"].astype(str).isin(GENETIC_TYPES).any()
            names = [b for b in BASELINES if b != "network_knn" or genetic] if "baselines" in models else []
            for b in names:
                keep(_record(i, b, seed, split, evaluate_model(build_model(b, seed=seed, resources=res[i],
                                                                           split_kind=split.kind), split)))
            if "lpm" in models or "lpm_pooled" in models:  # the pooled fit is compared with this one's base
                m = build_model("lpm", seed=seed, resources=res[i], split_kind=split.kind)
                scores = evaluate_model(m, split)
                alone[i] = m
                if "lpm" in models:
                    keep(_record(i, "lpm", seed, split, scores))
        train, valid, group = pooled_parts(splits)
        for model in [m for m in ("lpm_pooled", "lpm_pooled_naive", "lpm_pooled_std") if m in models]:
            side, scale = pooled_res.side, {i: 1.0 for i in splits}
            if model == "lpm_pooled_std":  # each dataset's values / its training sd (the base scales with them)
                scale = {i: 1.0 / float(s.train["value"].std()) for i, s in splits.items()}
                train, valid, _ = pooled_parts({i: replace(s, train=s.train.assign(value=s.train["value"] * scale[i]),
                                                           valid=s.valid.assign(value=s.valid["value"] * scale[i]))
                                                for i, s in splits.items()})
            lpm = (LPM(config, side=side, seed=seed) if model == "lpm_pooled_naive" else
                   PooledLPM(config, side=side, seed=seed, context_group={c: str(k) for c, k in group.items()}))
            f0 = time.perf_counter()
            lpm.fit(train, valid if len(valid) else None, progress=False)
            fit_s = time.perf_counter() - f0
            shrinks = (lpm.module.base.shrinks if model != "lpm_pooled_naive"
                       else [float(lpm.module.base.shrink)] if lpm.module.base.shrink is not None else [])
            for i, split in splits.items():
                scores = score_fitted(Rescaled(lpm, scale[i]), split, fit_s=fit_s)
                test = split.test
                pred = lpm.predict_base(test) / scale[i]
                extra = {"n_train": len(train), "pooled_sections": ",".join(map(str, sections))}
                scores["detail"] += f", base alone r {per_signature_pearson(test, test['value'], pred):.4f}"
                scores["detail"] += f", shrink {'/'.join(f'{s:.3f}' for s in shrinks)}"
                if i in alone:  # the pooled base must be the section's own LPM's base
                    diff = float(abs(pred - alone[i].predict_base(test)).max())
                    scores["detail"] += f", base diff vs alone {diff:.1e}"
                keep(_record(i, model, seed, split, scores, **extra))
    rows = pd.concat([rows, pd.DataFrame(new)], ignore_index=True)
    body = render(rows, BENCHMARKS, overrides, argv, time.time() - t0, readouts, shared)
    if args.out is None:
        print(body)
    else:
        from make_results import write_marked_block

        write_marked_block(args.out, POOLED_MARKERS, body)
    return 0


def render(rows: pd.DataFrame, benchmarks, overrides: dict, argv, wall: float, readouts, shared) -> str:
    """Per section: per-seed pearson_per_signature of the baselines and LPMs, the strongest baseline (best mean
    over the seeds the LPMs ran), pooled - alone and each LPM - strongest baseline, with the win counts."""
    out = [f"Config `LPMConfig({', '.join(f'{k}={v}' for k, v in overrides.items())})` for every LPM "
           f"({datetime.now(UTC):%Y-%m-%d}, `research_pooled.py {' '.join(argv)}`, this run {wall:.0f} s). Readouts "
           f"per section {', '.join(f'{i}: {len(r)}' for i, r in readouts.items())}; in every section: {len(shared)}."]
    order = list(readouts)
    for i in sorted(rows["section"].unique(), key=lambda s: (0, order.index(s), "") if s in order else (1, 0, s)):
        sub = rows.loc[(rows["section"] == i) & ~rows["error"].astype(bool)]
        r = sub.pivot_table(index="seed", columns="model", values="pearson_per_signature")
        lpms = [m for m in LPMS if m in r]
        base = [m for m in BASELINES if m in r]
        if not lpms or not base:
            continue
        r = r.dropna(subset=lpms)
        best = max(base, key=lambda m: r[m].mean())
        cols = [*base, *lpms]
        diffs = [(m, best) for m in lpms] + [(m, "lpm") for m in lpms if m != "lpm" and "lpm" in r]
        title = benchmarks[index(i)][0]
        if i.endswith("@shared"):
            title += f", on the {len(readouts[i])} dense readouts the other sections measure (`{i}`)"
        lines = [f"#### Section {i}: {title}\n",
                 "| seed | " + " | ".join(cols) + " | " + " | ".join(f"{a} − {b}" for a, b in diffs) + " |",
                 "|---|" + "---|" * (len(cols) + len(diffs))]
        for seed in r.index:
            cells = ["–" if pd.isna(r.at[seed, m]) else f"{r.at[seed, m]:.4f}" for m in cols]
            cells += [f"{r.at[seed, a] - r.at[seed, b]:+.4f}" for a, b in diffs]
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
        for a, b in diffs:
            d = (r[a] - r[b]).dropna()
            lines.append(f"\n`{a}` − `{b}` over {len(d)} seeds: higher on {int((d > 0).sum())}, by >= 0.01 on "
                         f"{int((d >= 0.01).sum())}; mean {d.mean():+.4f}.")
        det = sub.loc[sub["model"].isin(lpms)].sort_values(["model", "seed"])
        lines.append("\nLPM fits: " + "; ".join(f"{x.model} seed {int(x.seed)}: {x.detail} ({x.fit_s:.0f} s)"
                                                for x in det.itertuples()) + ".")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="11,6", help="make_results section indices pooled (different datasets)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default="baselines,lpm,lpm_pooled",
                    help="baselines (BASELINES), lpm (each section alone), lpm_pooled, lpm_pooled_naive, lpm_pooled_std "
                         "(lpm_pooled on each dataset's values divided by its training sd)")
    ap.add_argument("--naive", action="store_true", help="also lpm_pooled_naive (one base over the pooled rows)")
    ap.add_argument("--lpm-epochs", type=int, default=12)
    ap.add_argument("--lpm-patience", type=int, default=None, help="default: LPMConfig")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="a copy of docs/results.md with the POOLED_MARKERS block")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    return run(args, list(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
