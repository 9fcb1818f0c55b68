"""Regenerate docs/results.md's discovery sections on the real shared data (a benchmark tool).

    python benchmarks/discovery_results.py [--out docs/results.md] [--lpm CHECKPOINT | --train-lpm PATH]
    python benchmarks/discovery_results.py --vs-simple --train-lpm /tmp/lpm.pt --epochs 3 --max-readouts 200

The evaluation itself (mechanism links against annotated targets, gene-gene edges against STRING /
CORUM, each beside the simple answer and random) is models/evaluation_discovery.py; this script reads
the shared data, runs it and writes the markdown ("## Discoveries on the real data", or with
--vs-simple "## Discoveries vs the simple answer").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # this checkout's packages, whatever is installed

from models import evaluation_discovery as E  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    from graph.settings import get_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/results.md"))
    ap.add_argument("--lpm", type=Path, default=None, help="LPM checkpoint whose embeddings get their own rows")
    ap.add_argument("--train-lpm", type=Path, default=None,
                    help="first train an LPM on Tahoe + Replogle (discovery_training_table), save it here, use it")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--paper", action="store_true", help="with --train-lpm: the paper model (no encoders)")
    ap.add_argument("--vs-simple", action="store_true",
                    help=f"write the section '{E.VS_SIMPLE_HEADING[3:]}' (needs --lpm or --train-lpm) instead")
    ap.add_argument("--max-readouts", type=int, default=None, help="cap the shared readouts (CPU time)")
    ap.add_argument("--seed", type=int, default=0, help="with --train-lpm: the LPM's seed")
    ap.add_argument("--ema-decay", type=float, default=0.0,
                    help="with --train-lpm: keep a moving average of the parameters (LPMConfig.ema_decay; 0 = off)")
    args = ap.parse_args(argv)
    shared = args.shared or get_settings().shared_data
    lpm_path = args.lpm
    if args.train_lpm is not None:
        lpm_path = E.train_discovery_lpm(shared, args.train_lpm, epochs=args.epochs, paper=args.paper,
                                       max_readouts=args.max_readouts, seed=args.seed, ema_decay=args.ema_decay)
    if args.vs_simple:
        if lpm_path is None:
            raise SystemExit("--vs-simple needs --lpm CHECKPOINT or --train-lpm PATH")
        res = E.run_vs_simple(shared, lpm_path, max_readouts=args.max_readouts)
        given = list(argv) if argv is not None else sys.argv[1:]
        command = "python benchmarks/discovery_results.py --vs-simple " + " ".join(a for a in given if a != "--vs-simple")
        md = E.vs_simple_markdown(res, command.strip())
        old = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(E.replace_section(old, E.VS_SIMPLE_HEADING, md, before="## Discoveries on the real data"))
        print(md)
        return
    res, md = E.run_real(shared, lpm_path=lpm_path)
    md = md.replace("## Discoveries (models/evaluation_discovery.py)",
                    "## Discoveries on the real data (models/evaluation_discovery.py)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # The discoveries section is the last one of docs/results.md: replace it, keep the rest.
    old = args.out.read_text() if args.out.exists() else ""
    head = old.split("## Discoveries on the real data", 1)[0].rstrip()
    args.out.write_text((head + "\n\n" if head else "") + md)
    print(md)


if __name__ == "__main__":
    main()
