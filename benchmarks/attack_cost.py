"""Cost of adversarial training on MF: time per training step relative to the clean step.

Every variant trains BPR-MF (dim 64, batch 2048, Adam) on ml-100k-split with the fused
epoch (one ``lax.scan`` per epoch); the step time is the median epoch time divided by the
steps per epoch, measured side by side in one process, compile time apart. ``free`` counts
one batch (its m replays, m optimizer updates) as a step.

Usage: python -m benchmarks.attack_cost [--epochs 15] [--data PATH]
or: robustjax bench attack_cost [the same arguments]
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import environment, mf_shapes, training_parser, write_record
from robustjax.data import DataConfig, prepare
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases
from robustjax.train import (
    build_train_arrays,
    epoch_permutation,
    init_state,
    make_optimizer,
    pair_epoch_fn,
)

# forward/backward passes of the score function per step, beyond the shared table gather,
# scatter and optimizer update (which every variant pays once, free AT m times)
COST_MODEL = {
    "clean": "1 fwd + 1 bwd",
    "apr": "span path: Gram of the 3 batch vectors (6 dot products) fwd + 1 bwd; the FGSM "
    "runs on [B, 3] coordinates",
    "apr-generic": "2 fwd + 2 bwd on batch embeddings (the FGSM gradient doubles as the "
    "clean backward)",
    "pgd-K": "span path: as APR, with K inner steps on [B, 3] coordinates",
    "pgd-K-generic": "K+1 fwd + K+1 bwd on [B, 64] batch embeddings (K inner grads + the "
    "adversarial term)",
    "free-4": "4 x (1 fwd + 1 bwd + optimizer update): 4 full steps",
    "vat": "clean + 1 power iteration (fwd+bwd) + 1 fwd/bwd at the virtual adversarial point",
}


def variants():
    """APR and PGD run on MF's span path (robustjax.losses.gram, the library default);
    the ``-generic`` variants force the generic attacks on [B, D] embeddings
    (``AdvConfig(span=False)``) for comparison."""
    out = {
        "clean": AdvConfig(method="none"),
        "apr": AdvConfig(method="apr", eps=0.5),
        "apr-generic": AdvConfig(method="apr", eps=0.5, span=False),
    }
    for k in (1, 3, 5, 10, 20):
        out[f"pgd-{k}"] = AdvConfig(method="pgd", eps=0.5, num_steps=k)
    out["pgd-10-generic"] = AdvConfig(method="pgd", eps=0.5, num_steps=10, span=False)
    out["free-4"] = AdvConfig(method="free", eps=0.5, replays=4)
    out["vat"] = AdvConfig(method="vat", eps=0.5)
    return out


def time_variant(fns, params, data, adv, perms, *, seed):
    """Compile seconds (the first epoch, ``perms[0]``), median epoch seconds and ms per step
    of ``adv``'s fused epoch over the epochs of ``perms`` (one permutation per epoch)."""
    epochs = len(perms) - 1
    tx = make_optimizer("adam", 1e-3)
    phase = build_phases(fns, loss="bpr", l2=0.0, adv=adv, epochs=epochs + 1)[-1]
    epoch_fn = pair_epoch_fn(phase, tx)
    state = init_state(jax.tree.map(jnp.copy, params), tx)
    root = jax.random.key(seed)
    t = time.perf_counter()
    state, m = epoch_fn(state, perms[0], data, root)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t
    times = []
    for e in range(1, epochs + 1):
        t = time.perf_counter()
        state, m = epoch_fn(state, perms[e], data, jax.random.fold_in(root, e))
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    steps = perms[0].shape[0]
    return {
        "compile_s": compile_s,
        "epoch_s_median": float(np.median(times)),
        "step_ms": 1e3 * float(np.median(times)) / steps,
    }


def _interleaved(fns, params, data, args) -> dict:
    """``args.rounds`` timings of every variant (the same permutations for all), the
    variants interleaved so machine noise hits every one alike."""
    perms = [
        epoch_permutation(data.num_interactions, args.batch_size, seed=args.seed, epoch=e)
        for e in range(args.epochs + 1)
    ]
    runs = {name: [] for name in variants()}
    for _ in range(args.rounds):
        for name, adv in variants().items():
            runs[name].append(time_variant(fns, params, data, adv, perms, seed=args.seed))
            print(f"{name}: {runs[name][-1]['step_ms']:.3f} ms/step", flush=True)
    return runs


def _summarise(runs: dict) -> dict:
    """Per variant: the median over rounds, the ratio to the clean step, the cost model."""
    result = {}
    for name, rs in runs.items():
        result[name] = {
            "step_ms": float(np.median([r["step_ms"] for r in rs])),
            "compile_s": float(np.median([r["compile_s"] for r in rs])),
        }
    clean = result["clean"]["step_ms"]
    for name, r in result.items():
        r["ratio_to_clean"] = r["step_ms"] / clean
        key = name
        if name.startswith("pgd-"):
            key = "pgd-K-generic" if name.endswith("-generic") else "pgd-K"
        r["cost_model"] = COST_MODEL[key]
    return result


def main(argv=None):
    p = training_parser(__doc__, epochs=15)
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="interleaved rounds over all variants (the median is kept)",
    )
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    split = prepare(DataConfig(path=args.data))
    fns, params = build_model(
        ModelConfig(dim=args.dim), split.num_users, split.num_items, seed=args.seed
    )
    data = build_train_arrays(split.train.user, split.train.item, split.num_users, split.num_items)
    result = _summarise(_interleaved(fns, params, data, args))
    num_train = int(split.train.user.size)
    record = {
        "benchmark": "attack_cost",
        **environment(),
        "shapes": mf_shapes(
            split.num_users, split.num_items, num_train, dim=args.dim, batch_size=args.batch_size
        ),
        "epochs_timed": args.epochs,
        "rounds": args.rounds,
        "variants": result,
    }
    write_record("attack_cost", record, args.out)
    print("\n| variant | ms/step | x clean | cost model |\n|---|---|---|---|")
    for name, r in result.items():
        print(f"| {name} | {r['step_ms']:.3f} | {r['ratio_to_clean']:.2f} | {r['cost_model']} |")


if __name__ == "__main__":
    main()
