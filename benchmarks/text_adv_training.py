"""Cost of text adversarial training (``AdvConfig(method="text")``) against the clean epoch.

Times whole compiled epochs of text-mf on the experiment's data (``text-mf-adv``: ml-100k,
cold-item split, batch 2048): the clean BPR epoch, then the text phase for each
``(text_attack, text_items_per_step)`` setting. Compilation (the first epoch) and the
steady state (the median of the next ``--epochs``) are recorded separately, with the
encoder passes per step (FGSM: 2 forward + 1 backward; PGD-K: K + 1 forward + K backward,
each over ``[M, T]`` tokens).

    python -m benchmarks.text_adv_training [--epochs 2] [--settings fgsm:16,fgsm:32,...]
"""

import argparse
import dataclasses
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import SHARED, environment, timed, write_record


def _text_mf_adv(data_path: str):
    """``(cfg, split, fns, params, text inputs, optimizer, training arrays)`` of the
    ``text-mf-adv`` experiment on ``data_path``."""
    from robustjax.data import prepare
    from robustjax.experiments import get_config
    from robustjax.models import build_model
    from robustjax.runs.folder import optimizer_of
    from robustjax.runs.text import run_text_adv_inputs, text_model_inputs
    from robustjax.train import build_train_arrays
    from robustjax.train.sparse_step import optimizer_for

    cfg = get_config("text-mf-adv")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=data_path))
    split = prepare(cfg.data)
    tokens = split.train.item_tokens
    fns, params = build_model(
        cfg.model, split.num_users, split.num_items, seed=0, **text_model_inputs(cfg, tokens)
    )
    inputs = run_text_adv_inputs(cfg, tokens)
    tx = optimizer_for(cfg.train, fns, lambda: optimizer_of(cfg.train))
    data = build_train_arrays(
        split.train.user, split.train.item, split.num_users, split.num_warm_items
    )
    return cfg, split, fns, params, inputs, tx, data


def _epoch_times(epoch_fn, state, data, extra, *, batch_size: int, epochs: int) -> dict:
    """The first epoch's seconds (compilation included) and the next ``epochs``' (median)."""
    from robustjax.train import epoch_permutation

    times = []
    for e in range(1 + epochs):
        perm = jnp.asarray(epoch_permutation(data.num_interactions, batch_size, seed=0, epoch=e))
        (state, _), s = timed(epoch_fn, state, perm, data, jax.random.key(e), *extra)
        times.append(s)
    return {"first_epoch_s": times[0], "epoch_s_median": statistics.median(times[1:]),
            "epoch_s": times[1:]}  # fmt: skip


def _setting_row(setting: str, cfg, fns, inputs, pgd_steps: int, measure) -> dict:
    """The text phase of ``setting`` (``kind:items_per_step``) timed by ``measure``."""
    from robustjax.objectives import build_phases

    t = cfg.train
    kind, m = setting.split(":")
    adv = dataclasses.replace(
        cfg.adv, warm_epochs=0, text_attack=kind, text_items_per_step=int(m),
        num_steps=pgd_steps,
    )  # fmt: skip
    (phase,) = build_phases(fns, loss=t.loss, l2=t.l2, adv=adv, epochs=t.epochs,
                            text_inputs=inputs)  # fmt: skip
    k = 1 if kind == "fgsm" else pgd_steps
    return {"setting": setting, "text_attack": kind, "items_per_step": int(m),
            "encoder_forward_per_step": k + 1, "encoder_backward_per_step": k,
            **measure(phase.objective, (inputs,))}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(SHARED, "ml-100k"))
    p.add_argument("--epochs", type=int, default=2, help="steady-state epochs per setting")
    p.add_argument("--settings", default="fgsm:16,fgsm:32,fgsm:64,pgd:32")
    p.add_argument("--pgd-steps", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from robustjax.objectives import AdvConfig, build_phases
    from robustjax.train import init_state, make_train_epoch

    cfg, split, fns, params, inputs, tx, data = _text_mf_adv(args.data)
    t = cfg.train
    steps = -(-data.num_interactions // t.batch_size)

    def measure(objective, extra):
        epoch_fn = make_train_epoch(objective, tx)
        state = init_state(jax.tree.map(jnp.copy, params), tx)
        return _epoch_times(epoch_fn, state, data, extra, batch_size=t.batch_size,
                            epochs=args.epochs)  # fmt: skip

    clean = build_phases(fns, loss=t.loss, l2=t.l2, adv=AdvConfig(),
                         epochs=t.epochs)[0]  # fmt: skip
    rows = [{"setting": "clean", **measure(clean.objective, ())}]
    for setting in args.settings.split(","):
        rows.append(_setting_row(setting, cfg, fns, inputs, args.pgd_steps, measure))
        print(rows[-1])
    record = {
        **environment(),
        "data": args.data,
        "batch_size": t.batch_size,
        "steps_per_epoch": steps,
        "tokens_per_text": int(inputs.ids.shape[1]),
        "num_items": int(split.num_items),
        "encoder": cfg.model.text_encoder,
        "eps": cfg.adv.eps,
        "budget_kind": cfg.adv.budget_kind,
        "pgd_steps": args.pgd_steps,
        "mean_real_tokens": float(np.mean(np.asarray(inputs.mask).sum(1))),
        "rows": rows,
    }
    write_record("text_adv_training", record, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
