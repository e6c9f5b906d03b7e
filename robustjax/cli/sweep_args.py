"""The ``robustjax sweep`` command line: its options, and their checks before anything is
loaded, computed or created (:func:`check_args`). :mod:`robustjax.cli.sweep` runs it."""

import itertools

from robustjax.attacks.budget import BUDGETS
from robustjax.eval.sweep_engine import OBJECTIVES, all_sweep_kinds, parse_eps, sweep_kinds

SWEEP_HELP = "evaluate trained runs under a grid of perturbations (one report)"
SWEEP_DESCRIPTION = """Evaluate each --checkpoint under KIND at every eps (x seeds), all levels
vmapped in one compiled call. Writes OUT/sweep.json (every metric at every level, per
checkpoint, per user-activity group, head/tail items), OUT/sweep.md, and PNG plots of
metric-vs-eps and stability-vs-eps (needs matplotlib: pip install 'robustjax[plot]'; the
JSON never does)."""

# integer options that must be >= 1 (check_args): option -> (default, help)
_SIZES = {
    "--stability-k": (20, "K of Jaccard@K and RBO@K"),
    "--user-batch": (256, "users per compiled step"),
    "--level-chunk": (
        8,
        "levels attacked and scored together (user-item sweeps); lower it to bound memory",
    ),
    "--memory-mb": (
        1024,
        (
            "user-item sweeps: bound on each step's score tensor and on the attack's pair "
            "embeddings, which are then processed in chunks (default 1024)"
        ),
    ),
}


def add_parser(sub) -> None:
    """Adds the ``sweep`` command and its options to ``sub`` (the ``robustjax`` parser's
    subparsers)."""
    add_options(sub.add_parser("sweep", help=SWEEP_HELP, description=SWEEP_DESCRIPTION))


def add_options(s) -> None:
    """Adds the options of ``robustjax sweep`` to its parser ``s``."""
    _add_attack_args(s)
    _add_eval_args(s)


def _add_attack_args(s) -> None:
    """What is evaluated under which perturbation: runs, kind, grid, seeds, objective."""
    s.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="RUN_DIR",
        help="the --out folder of a `robustjax train` run (repeat to compare)",
    )
    s.add_argument(
        "--attack",
        default="pgd",
        choices=all_sweep_kinds(),
        help="perturbation kind; embedding kinds for every run: "
        + ", ".join(sweep_kinds("items"))
        + "; for sequential runs (sasrec-*, bert4rec-*) also the history attacks: "
        + ", ".join(k for k in sweep_kinds("sequence") if k not in sweep_kinds("items"))
        + "; for text-aware runs (text-mf) the text attacks: "
        + ", ".join(k for k in all_sweep_kinds() if k not in sweep_kinds("sequence"))
        + " (robustjax.cli.text_sweep)",
    )
    s.add_argument(
        "--eps",
        default="0:1:32",
        metavar="GRID",
        help="START:STOP:COUNT (evenly spaced) or a list a,b,c (default 0:1:32); "
        "for history attacks the budgets (items per sequence), e.g. 0,1,2,4",
    )
    s.add_argument(
        "--seeds",
        default="0",
        metavar="S,S,..",
        help="attack seeds (negatives, random starts, noise); spread is plotted",
    )
    _add_objective_args(s)


def _add_objective_args(s) -> None:
    """What the attack maximises and its PGD/ball settings."""
    s.add_argument(
        "--objective",
        default=None,
        choices=OBJECTIVES,
        help="label-free: train (default for user-item runs; max BPR over training "
        "triples, the APR study), prediction (default for sequential runs; max "
        "cross-entropy of the model's own clean top item); oracle, an upper bound that "
        "knows the test items (user-item: max BPR of the test positives; sequential: "
        "the target's cross-entropy among its candidates), labelled so in every output; "
        "targeted: promote --target-items",
    )
    s.add_argument(
        "--target-items",
        default="",
        metavar="I,I,..",
        help="item tokens (original ids) to promote with --objective targeted",
    )
    s.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    s.add_argument(
        "--rescore",
        type=int,
        default=64,
        metavar="C",
        help="text_substitute_gradient: candidates scored exactly per edit (default 64; "
        "0: first-order only)",
    )
    s.add_argument("--norm", default="l2", choices=("l2", "linf"))
    s.add_argument(
        "--budget",
        default="relative",
        choices=BUDGETS,
        help="absolute: ||delta|| <= eps; relative: ||delta|| <= eps * ||x|| per scope unit "
        "(the size of the perturbed embedding rows; invariant to rescalings that leave the "
        "scores unchanged, e.g. MF users x a, items x 1/a). Default relative; absolute eps are "
        "only comparable between models of equal row norms (sweep.json records them)",
    )
    s.add_argument(
        "--scope",
        default="row",
        choices=("row", "example", "batch"),
        help="the eps ball: per embedding row (row); per example, i.e. jointly over "
        "everything perturbed at one leading index, such as a user's whole history "
        "(example; table attacks need tables of equal size for it); or one ball over "
        "everything perturbed (batch)",
    )
    s.add_argument(
        "--targets",
        default="user,item",
        metavar="T,T",
        help="embedding tables to perturb: user, item or both (default)",
    )


def _add_eval_args(s) -> None:
    """What is measured and where it goes: cutoffs, batching, output."""
    s.add_argument("--ks", default="10,20", help="ranking cutoffs (default 10,20)")
    s.add_argument("--auc", action="store_true", help="also compute AUC at every level")
    for option, (default, text) in _SIZES.items():
        s.add_argument(option, type=int, default=default, help=text)
    s.add_argument("--out", required=True, metavar="DIR", help="output folder")
    s.add_argument(
        "--mesh",
        default="data=1,model=1",
        metavar="data=D,model=M",
        help="device mesh (robustjax.sharding): tables row-sharded over M devices, users "
        "split over D (on CPU set ROBUSTJAX_CPU_DEVICES=D*M); default one device",
    )
    s.add_argument("--no-progress", action="store_true", help="hide progress bars")


def attack_fields(args) -> dict:
    """The fields both sweep configs take from the same flags: the attack, its seeds,
    steps, norm, scope and budget, and the cut-offs ``ks``."""
    return {
        "kind": args.attack,
        "seeds": _ints(args.seeds, "--seeds"),
        "num_steps": args.steps,
        "norm": args.norm,
        "scope": args.scope,
        "budget": args.budget,
        "ks": _ints(args.ks),
    }


def _ints(text, option: str = "--ks", minimum: int | None = None):
    """Comma-separated integers of ``option`` (each >= ``minimum`` when given)."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(
            f"{option} {text!r}: expected comma-separated integers (e.g. {option} 0,1,2)."
        ) from None
    if not values:
        raise ValueError(f"{option} {text!r}: expected at least one integer.")
    if minimum is not None and min(values) < minimum:
        raise ValueError(f"{option} {text!r}: every value must be >= {minimum}.")
    return values


def check_args(args) -> None:
    """Checks every argument before anything is loaded, computed or created: the grid
    (finite, >= 0, strictly ascending), seeds, cutoffs, batch sizes, that every
    checkpoint is a run folder and that ``--out`` can be created."""
    import math
    import os

    eps = parse_eps(args.eps)
    if not eps:
        raise ValueError(f"--eps {args.eps!r}: expected at least one level.")
    bad = [e for e in eps if not (math.isfinite(e) and e >= 0)]
    if bad:
        raise ValueError(
            f"--eps {args.eps!r}: eps must be finite and >= 0, got {bad}; use e.g. --eps 0:1:32."
        )
    if any(b <= a for a, b in itertools.pairwise(eps)):
        raise ValueError(f"--eps {args.eps!r}: levels must be strictly ascending, got {list(eps)}.")
    _ints(args.seeds, "--seeds", minimum=0)
    _ints(args.ks, "--ks", minimum=1)
    for option in _SIZES:
        value = getattr(args, option.removeprefix("--").replace("-", "_"))
        if value < 1:
            raise ValueError(f"{option} {value}: expected an integer >= 1.")
    if args.steps < 0:
        raise ValueError(f"--steps {args.steps}: expected an integer >= 0.")
    for path in args.checkpoint:
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"--checkpoint {path!r}: no such folder; expected the --out folder of a "
                "`robustjax train` run."
            )
        params = os.path.join(path, "checkpoint", "params.npz")
        if not os.path.exists(params):
            raise FileNotFoundError(
                f"--checkpoint {path!r}: no {params}; expected the --out folder of a "
                "finished `robustjax train` run."
            )
    _check_out(args.out)


def _check_out(out: str) -> None:
    """``out`` is a folder, or can be made one (its nearest existing parent is a writable
    folder)."""
    import os

    if os.path.exists(out):
        if not os.path.isdir(out):
            raise NotADirectoryError(f"--out {out!r} exists and is not a folder.")
        if not os.access(out, os.W_OK):
            raise PermissionError(f"--out {out!r}: the folder is not writable.")
        return
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"--out {out!r} cannot be created: {parent!r} is not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out!r} cannot be created: {parent!r} is not writable.")


__all__ = [
    "SWEEP_DESCRIPTION",
    "SWEEP_HELP",
    "add_options",
    "add_parser",
    "attack_fields",
    "check_args",
]
