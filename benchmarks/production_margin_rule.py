"""How much must the LPM or the stack lead the best baseline on validation before production publishes it?
The evidence behind models/predictor.py MIN_MARGIN, from stored make_results rows (docs/results.md,
"Production predictor", 2026-12-02 session 17).

    python benchmarks/production_margin_rule.py <home>/results/*.json [more homes' JSON ...]

Reads the `production` rows of each stored section (their `detail` records the choice and its validation
lead over the best baseline, 3 decimals) and, per fit, the test per-signature r of production and of that
baseline. Prints the fits grouped by the lead, then production minus the strongest baseline per section as
measured and with the rule applied to the stored choices (an LPM / stack lead under the threshold replaced by
the baseline's own test row). Test rows decide nothing in the platform; this only explains the constant.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

METRIC = "pearson_per_signature"
CHOICE = re.compile(r"(\S+) \(validation r [\d.]+, ([+-][\d.]+) over (\S+?)[;)]")
NOT_BASELINES = {"production", "lpm", "lpm_paper", "lpm_stacked", "global_mean", "no_change", "consensus",
                 "tanimoto_knn"}


def fits(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        df = pd.read_json(path, orient="records")
        section = path.name.split("_")[0]
        for _, prod in df[df["model"] == "production"].iterrows():
            m = CHOICE.match(str(prod["detail"]))
            if m is None:
                raise SystemExit(f"{path}: production detail not understood: {prod['detail']!r}")
            chosen, lead, best = m.group(1), float(m.group(2)), m.group(3)
            scores = df[df["seed"] == prod["seed"]].set_index("model")[METRIC]
            strongest = max((b for b in scores.index if b not in NOT_BASELINES), key=lambda b: scores[b])
            rows.append({"section": section, "seed": int(prod["seed"]), "chosen": chosen, "lead": lead,
                         "best": best, "production": prod[METRIC], "best_test": scores.get(best, float("nan")),
                         "strongest_test": scores[strongest]})
    return pd.DataFrame(rows)


def with_rule(r: pd.DataFrame, threshold: float) -> pd.Series:
    """Production's test r had a lead under `threshold` sent the choice to the best baseline."""
    passed_over = r["chosen"].isin(["lpm", "lpm_stacked"]) & (r["lead"] < threshold)
    return r["best_test"].where(passed_over, r["production"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", type=Path, help="stored rows: <PERTURBGRAPH_HOME>/results/<i>_*.json")
    args = ap.parse_args(argv)
    r = fits(args.json)
    lpm = r["chosen"].isin(["lpm", "lpm_stacked"])
    print(f"{len(r)} fits; the LPM or the stack chosen on {int(lpm.sum())}")
    for name, group in (("lead under 0.0015", r[lpm & (r["lead"] < 0.0015)]),
                        ("lead 0.002 or more", r[lpm & (r["lead"] >= 0.0015)])):
        d = group["production"] - group["best_test"]
        print(f"  {name}: {len(group)} fits, test r - that baseline min {d.min():+.4f} mean {d.mean():+.4f} "
              f"max {d.max():+.4f}")
    for threshold in (0.0, 0.001, 0.002, 0.005):
        margin = with_rule(r, threshold) - r["strongest_test"]
        per_section = margin.groupby(r["section"]).mean()
        print(f"rule {threshold:g}: mean production - strongest {margin.mean():+.5f}; by section "
              + ", ".join(f"{s} {v:+.4f}" for s, v in sorted(per_section.items(), key=lambda kv: int(kv[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
