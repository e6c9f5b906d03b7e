"""The ``robustjax`` console script."""

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import sys
import zipfile

EPILOG = """examples:
  robustjax train --out runs/demo                      (bpr-mf on the embedded synthetic data)
  robustjax train --experiment bpr-mf --data ../shared/data/ml-100k-split --out runs/bpr
  robustjax train --experiment bpr-mf --data ratings.csv --set data.rating_threshold=4 \\
      --set train.epochs=20 --out runs/quick
  robustjax sweep --checkpoint runs/bpr --checkpoint runs/apr --attack pgd --eps 0:1:32 \\
      --out runs/sweep                                 (robustness curves, one report)
  robustjax study poisoning --data ../shared/data/ml-100k-split --out runs/poison
                                                       (a study: many runs, one report)
  robustjax experiments                                (list named experiments)
  robustjax config --experiment bpr-mf                 (print a config and every --set key)
  robustjax bench attack_cost --epochs 5               (run benchmarks/attack_cost.py)
"""

# each command's line in `robustjax --help` and its `robustjax COMMAND --help` text
TRAIN_HELP = "train a model, evaluate it, write outputs"
TRAIN_DESCRIPTION = """Train, select on validation, evaluate on test. Writes OUT/metrics.json
(keys <split>/<metric>@<k>), config.json, history.jsonl, data.json, recommendations.tsv
(top-N per test user, original ids) and checkpoint/. A study's name (see `robustjax study`)
runs the study."""
STUDY_HELP = "run a study: several trainings, one report"
STUDY_DESCRIPTION = """Run a study (apr, apr-reproduction, irgan, natural-noise, poisoning,
transfer, tune-*): its config is experiments/NAME/config.py; it writes OUT/results.json,
results.md, metrics.json and every run's own outputs."""
BENCH_HELP = "run a benchmark (benchmarks/NAME.py)"
BENCH_DESCRIPTION = """Run benchmarks/NAME.py with the remaining arguments (the same as
`python -m benchmarks.NAME ARGS` from the checkout)."""

TINY_USERS = 64  # --tiny --data: the users (the first by id) a smoke run trains on


def _add_common(sp, *, named: bool = True) -> None:
    """The data/config options shared by ``train``, ``study`` and ``config``."""
    if named:
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
        help="a tiny version of the experiment (smoke test, seconds); with --data, on its "
        f"first {TINY_USERS} users",
    )


def _add_run_options(sp, out_default=None) -> None:
    """The output/resume options shared by ``train`` and ``study``."""
    sp.add_argument(
        "--out",
        required=out_default is None,
        default=out_default,
        metavar="DIR",
        help="output folder" + ("" if out_default is None else f" (default: {out_default})"),
    )
    sp.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint/state.npz (same final result as an uninterrupted run)",
    )
    sp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sp.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="start from the selected parameters of an earlier run's folder (same model "
        "and data; e.g. APR from a trained BPR run), with fresh model selection "
        "(= --set train.init_from=RUN)",
    )


def _train_options(t) -> None:
    """The options of ``robustjax train``."""
    _add_common(t)
    _add_run_options(t)
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in OUT (without it, such an OUT is refused)",
    )
    t.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: continue with a changed config (config.json records the change)",
    )
    _add_distributed(t)


def _add_distributed(sp) -> None:
    """Multi-process (multi-host) options: every process runs the same command with its
    own --process-id (or the ROBUSTJAX_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID
    environment variables); --set train.mesh=... then spans all processes' devices."""
    g = sp.add_argument_group(
        "devices",
        "train.mesh='data=D,model=M' shards over D*M devices; on CPU set "
        "ROBUSTJAX_CPU_DEVICES=N first. Several hosts: the same command in every process, "
        "each with its --process-id (and its own --out).",
    )
    g.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="process 0's address: joins a multi-process run (jax.distributed)",
    )
    g.add_argument(
        "--num-processes",
        type=int,
        default=None,
        metavar="N",
        help="number of processes of the multi-process run",
    )
    g.add_argument("--process-id", type=int, default=None, metavar="I", help="this process, 0..N-1")


def _start_devices(args) -> None:
    """Before any JAX computation: ROBUSTJAX_CPU_DEVICES, then a multi-process run from
    --coordinator/--num-processes/--process-id or the ROBUSTJAX_* environment variables."""
    from robustjax import sharding

    sharding.force_cpu_devices()
    flags = [getattr(args, k, None) for k in ("coordinator", "num_processes", "process_id")]
    if all(v is None for v in flags):
        sharding.initialize_from_env()
    elif any(v is None for v in flags):
        raise ValueError(
            "--coordinator, --num-processes and --process-id go together (got "
            f"{flags[0]!r}, {flags[1]!r}, {flags[2]!r}); give all three or none."
        )
    else:
        sharding.initialize_distributed(*flags)


def _study_options(st) -> None:
    """The options of ``robustjax study``."""
    st.add_argument("name", metavar="NAME", help="the study, e.g. apr or poisoning")
    st.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="training seeds per method, for studies that report intervals over seeds "
        "(= --set seeds=N)",
    )
    _add_common(st, named=False)
    _add_run_options(st, out_default="runs/NAME")


def _bench_options(b) -> None:
    """The options of ``robustjax bench``: the benchmark and its own arguments."""
    b.add_argument("name", metavar="NAME", help="e.g. attack_cost, eval_sweep, train_throughput")
    b.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's own arguments")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robustjax",
        description="Robustness analysis and adversarial training of recommender models in JAX.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (summary, description, add_options) in _commands().items():
        command = sub.add_parser(name, help=summary, description=description)
        if add_options is not None:
            add_options(command)
    return p


def _commands() -> dict:
    """Each command: its line in ``robustjax --help``, the text of ``robustjax COMMAND
    --help`` (None: none; argparse re-wraps it) and what adds its options (None: none)."""
    from robustjax.cli import sweep_args

    return {
        "train": (TRAIN_HELP, TRAIN_DESCRIPTION, _train_options),
        "study": (STUDY_HELP, STUDY_DESCRIPTION, _study_options),
        "sweep": (sweep_args.SWEEP_HELP, sweep_args.SWEEP_DESCRIPTION, sweep_args.add_options),
        "config": ("print the resolved config and the valid --set keys", None, _add_common),
        "experiments": ("list the named experiments", None, None),
        "bench": (BENCH_HELP, BENCH_DESCRIPTION, _bench_options),
    }


def resolve_config(args, name: str | None = None):
    from robustjax.config import ExperimentConfig, apply_overrides
    from robustjax.experiments import get_config

    name = args.experiment if name is None else name
    cfg = get_config(name, tiny=args.tiny).with_data(args.data, args.format)
    if args.tiny and args.data is not None and isinstance(cfg, ExperimentConfig):
        # --tiny means seconds on a real data set too: the first users only
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, max_users=TINY_USERS))
    overrides = list(args.overrides)
    if getattr(args, "init_from", None) is not None:
        overrides.append(f"train.init_from={args.init_from}")
    if getattr(args, "seeds", None) is not None:
        if "seeds" not in {f.name for f in dataclasses.fields(cfg)}:
            raise ValueError(f"--seeds: {name!r} does not run over seeds; drop --seeds.")
        overrides.append(f"seeds={args.seeds}")
    return apply_overrides(cfg, overrides)


def _runner(cfg):
    """What runs ``cfg``: its study, else ``run_experiment`` (every model family)."""
    from robustjax import studies
    from robustjax.run import run_experiment

    return studies.run_study if studies.is_study(cfg) else run_experiment


def studies_is_study(cfg) -> bool:
    from robustjax import studies

    return studies.is_study(cfg)


def _study_names() -> list[str]:
    from robustjax import studies
    from robustjax.experiments import get_config, names

    return [n for n in names() if studies.is_study(get_config(n, tiny=True))]


def _run(args, name: str) -> int:
    cfg = resolve_config(args, name)
    if args.command == "study":
        from robustjax import studies

        if not studies.is_study(cfg):
            raise ValueError(
                f"{name!r} is one training run, not a study; run it with `robustjax train "
                f"--experiment {name}`. Studies: {', '.join(_study_names())}."
            )
        if args.out == "runs/NAME":
            args.out = os.path.join("runs", name)
    run = _runner(cfg)
    kwargs = {}
    if args.command == "train" and not studies_is_study(cfg):
        kwargs = {"overwrite": args.overwrite, "allow_config_change": args.allow_config_change}
    single = args.command == "train" and not studies_is_study(cfg)
    fresh = single and not os.path.exists(args.out)  # a study folder is never removed
    try:
        metrics = run(cfg, args.out, resume=args.resume, progress=not args.no_progress, **kwargs)
    except BaseException:
        if fresh:
            _remove_if_no_epoch(args.out)
        raise
    print(json.dumps({k: round(v, 4) for k, v in cfg.headline(metrics).items()}))
    print(f"wrote {args.out}/metrics.json")
    return 0


def _remove_if_no_epoch(out: str) -> None:
    """Removes a folder this command created when the run failed before logging any epoch
    (bad data, a bad setting): it holds only ``config.json`` and an empty history, which
    would look like a run. A run that trained (e.g. diverged) keeps its record."""
    import shutil

    history = os.path.join(out, "history.jsonl")
    if os.path.exists(history) and os.path.getsize(history) > 0:
        return
    checkpoint = os.path.join(out, "checkpoint")
    if os.path.isdir(checkpoint) and os.listdir(checkpoint):
        return
    shutil.rmtree(out, ignore_errors=True)


def _bench(name: str, argv: list[str]) -> int:
    """Runs ``benchmarks/<name>.py``'s ``main(argv)``; the ``benchmarks`` folder of the
    source checkout is imported as the package ``benchmarks`` (loaded by path)."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks")
    available = (
        sorted(f[:-3] for f in os.listdir(root) if f.endswith(".py") and not f.startswith("_"))
        if os.path.isdir(root)
        else []
    )
    if name not in available:
        raise ValueError(
            f"unknown benchmark {name!r}; available in {root}: {', '.join(available) or 'none'}."
        )
    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", os.path.join(root, "__init__.py"), submodule_search_locations=[root]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = package
        spec.loader.exec_module(package)
    importlib.import_module(f"benchmarks.{name}").main(argv)
    return 0


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        _start_devices(args)
        if args.command == "sweep":
            from robustjax.cli import sweep as sweep_cli

            return sweep_cli.run(args)
        if args.command == "bench":
            return _bench(args.name, args.args)
        if args.command == "experiments":
            from robustjax.experiments import names

            print("\n".join(names()))
            return 0
        if args.command == "config":
            from robustjax.config import valid_keys

            cfg = resolve_config(args)
            print(cfg.to_json())
            print("\n--set keys: " + ", ".join(valid_keys(cfg)))
            return 0
        return _run(args, args.name if args.command == "study" else args.experiment)
    except (ValueError, OSError, TypeError, zipfile.BadZipFile) as e:
        print(f"robustjax: error: {_message(e)}", file=sys.stderr)
        return 2


def _message(e: BaseException) -> str:
    """A user-facing message: OS errors name the file and what went wrong
    (``PATH: Permission denied (PermissionError)``), bad zip files (``.npz``) say so."""
    if isinstance(e, zipfile.BadZipFile):
        return f"{e} (not a valid .npz/zip file; it may be truncated or damaged)"
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 is not None else "")
        hint = {
            PermissionError: "check the permissions, or choose another path",
            FileExistsError: "remove it or choose another path",
            NotADirectoryError: "a part of the path is a file, not a folder",
            IsADirectoryError: "expected a file, got a folder",
        }.get(type(e))
        return f"{where}: {e.strerror} ({type(e).__name__}" + (f"; {hint})" if hint else ")")
    return str(e)


if __name__ == "__main__":
    sys.exit(main())
