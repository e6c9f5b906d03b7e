"""The training case of the 2-process test, shared by the worker processes and the
single-process reference (tests/sharding/test_multiprocess.py)."""

import numpy as np

U, I, N, DIM, EPOCHS, BATCH = 16, 24, 192, 4, 2, 32


def train_case(mesh):
    """BPR-MF (+ L2) for ``EPOCHS`` epochs on ``mesh`` (None: one device). Returns the
    final tables as ``{(name,): host array}`` and the epoch losses."""
    import jax

    from robustjax import sharding
    from robustjax.models import build_model
    from robustjax.models.registry import ModelConfig
    from robustjax.objectives import AdvConfig, build_phases
    from robustjax.train import build_train_arrays, fit, make_optimizer

    rng = np.random.default_rng(0)
    user = rng.integers(0, U, N).astype(np.int32)
    item = rng.integers(0, I, N).astype(np.int32)
    fns, params = build_model(ModelConfig(name="mf", dim=DIM), U, I, seed=0)
    tx = make_optimizer("adam", 1e-2)
    result = fit(
        params=params,
        tx=tx,
        phases=build_phases(fns, loss="bpr", l2=1e-4, adv=AdvConfig(), epochs=EPOCHS),
        data=build_train_arrays(user, item, U, I),
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=0,
        progress=False,
        mesh=mesh,
    )
    tables = sharding.gather(result.final_params)
    flat = jax.tree_util.tree_flatten_with_path(tables)[0]
    out = {tuple(str(getattr(k, "key", k)) for k in p[:1]): np.asarray(x) for p, x in flat}
    return out, [r["loss"] for r in result.history]
