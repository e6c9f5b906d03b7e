"""The ``robustjax`` console script."""

import argparse
import json
import sys

EPILOG = """examples:
  robustjax train --out runs/demo                      (bpr-mf on the embedded synthetic data)
  robustjax train --experiment bpr-mf --data ../shared/data/ml-100k-split --out runs/bpr
  robustjax train --experiment bpr-mf --data ratings.csv --set data.rating_threshold=4 \\
      --set train.epochs=20 --out runs/quick
  robustjax sweep --checkpoint runs/bpr --checkpoint runs/apr --attack pgd --eps 0:1:32 \\
      --out runs/sweep                                 (robustness curves, one report)
  robustjax experiments                                (list named experiments)
  robustjax config --experiment bpr-mf                 (print a config and every --set key)
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robustjax",
        description="Robustness analysis and adversarial training of recommender models in JAX.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp):
        sp.add_argument(
            "--experiment",
            default="bpr-mf",
            metavar="NAME",
            help="named config from experiments/ (default: bpr-mf); "
            "`robustjax experiments` lists them",
        )
        sp.add_argument(
            "--data",
            default=None,
            metavar="PATH",
            help="data file or split folder (format auto-detected); omitted: the "
            "embedded synthetic data set",
        )
        sp.add_argument(
            "--format",
            default=None,
            metavar="FMT",
            help="data format when auto-detection is ambiguous: atomic, movielens, "
            "delimited, user-lines, pairs, split-folder",
        )
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            dest="overrides",
            help="override a config field, e.g. train.epochs=20 "
            "or model.dim=32 (repeatable; `robustjax config` lists the keys)",
        )
        sp.add_argument(
            "--tiny",
            action="store_true",
            help="a tiny version of the experiment (smoke test, seconds)",
        )

    t = sub.add_parser(
        "train",
        help="train a model, evaluate it, write outputs",
        description="Train, select on validation, evaluate on test. Writes "
        "OUT/metrics.json (keys <split>/<metric>@<k>), config.json, "
        "history.jsonl, data.json, recommendations.tsv (top-N per test user, "
        "original ids) and checkpoint/.",
    )
    common(t)
    t.add_argument("--out", required=True, metavar="DIR", help="output folder")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint/state.npz (same final result as an uninterrupted run)",
    )
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    from robustjax.cli import sweep as sweep_cli

    sweep_cli.add_parser(sub)

    c = sub.add_parser("config", help="print the resolved config and the valid --set keys")
    common(c)
    sub.add_parser("experiments", help="list the named experiments")
    return p


def resolve_config(args):
    from experiments import get_config
    from robustjax.config import apply_overrides

    cfg = get_config(args.experiment, tiny=args.tiny).with_data(args.data, args.format)
    return apply_overrides(cfg, args.overrides)


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "sweep":
            from robustjax.cli import sweep as sweep_cli

            return sweep_cli.run(args)
        if args.command == "experiments":
            from experiments import names

            print("\n".join(names()))
            return 0
        cfg = resolve_config(args)
        if args.command == "config":
            from robustjax.config import valid_keys

            print(cfg.to_json())
            print("\n--set keys: " + ", ".join(valid_keys(cfg)))
            return 0
        from experiments import runner
        from robustjax.run import run_experiment

        run = runner(args.experiment) or run_experiment
        metrics = run(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"robustjax: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: round(v, 4) for k, v in cfg.headline(metrics).items()}))
    print(f"wrote {args.out}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
