"""IRGAN-style adversarial training for item recommendation (Wang et al., SIGIR 2017).

Two models over the same users x items, each any :class:`~robustjax.models.ModelFns`:

- the generator G (MF in IRGAN) defines ``p_theta(i | u) = softmax_i(g(u, i) / temperature)``
  over **all** items (its ``score_all``);
- the discriminator D (the recommender) scores pairs, ``D(i | u) = sigmoid(f(u, i))``.

Training alternates epochs; each is one jit-compiled ``lax.scan`` over the shuffled training
pairs (no per-batch host round trip):

- **D epoch** (:func:`make_d_epoch`): for each training pair ``(u, i+)``, draw ``N`` items
  from ``p_theta(. | u)`` on device (inverse CDF over the full softmax) and minimise BCE
  (``i+`` real, drawn items generated; IRGAN's pointwise loss) or BPR (``i+`` above each
  drawn item). By default nothing is excluded: a draw may be one of ``u``'s training
  positives (even ``i+``), as in IRGAN's released code. ``exclude_positives=True`` removes
  the user's training positives from the softmax first (a G-driven hard-negative sampler).
- **G epoch** (:func:`make_g_epoch`): maximise ``J(theta) = E_{i ~ p_theta(.|u)} r(u, i)``
  with D's reward (D is not updated): ``"log1pexp"`` ``log(1 + exp(f))`` (the paper) or
  ``"irgan"`` ``2 sigmoid(f) - 1`` (the released code). ``estimator="reinforce"`` uses
  ``K`` draws and ``sum_k w_k (r_k - b_k) grad log p(i_k)``, with baseline ``"loo"`` (mean
  reward of the other ``K - 1`` draws; unbiased), ``"expected"`` (exact ``E_p[r]`` from D's
  scores on all items) or ``"none"``; ``importance_mix=lambda > 0`` draws from
  ``q = (1 - lambda) p + lambda Uniform(positives of u)`` with weights ``w = p / q`` (IRGAN's
  importance sampling, lambda 0.2 there; ``w = 1`` otherwise). ``estimator="gumbel"`` is
  the Gumbel-softmax relaxation (Jang et al., 2017): ``y = softmax((log p + g) / tau)``
  and reward ``sum_i y_i r_i``, differentiated through ``y`` (biased, low variance).

The gradient of G never flows into D and vice versa: each epoch takes the other model's
parameters as a constant input.
"""

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

from robustjax.losses import Term, clean_term, combine
from robustjax.losses.combine import masked_mean
from robustjax.models.base import ModelFns
from robustjax.train.gan_ops import (
    BASELINES,
    D_LOSSES,
    ESTIMATORS,
    REWARDS,
    _choice,
    draw_for_generator,
    generator_log_probs,
    gumbel_loss,
    positive_mask,
    reinforce_loss,
    sample_categorical,
    user_positives,
)
from robustjax.train.sampler import TrainArrays
from robustjax.train.state import TrainState

# ----------------------------------------------------------------------------- epochs


def _rows(data: TrainArrays, rows: Array):
    n = data.num_interactions
    mask = (rows < n).astype(jnp.float32)
    rows = jnp.where(rows < n, rows, 0)
    weight = getattr(data, "weight", None)  # per-interaction weights, as in make_batch
    if weight is not None:
        mask = mask * weight[rows]
    return data.user[rows], data.item[rows], mask


def _apply(tx, state: TrainState, grads) -> TrainState:
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return dataclasses.replace(
        state,
        step=state.step + 1,
        opt_state=opt_state,
        params=optax.apply_updates(state.params, updates),
    )


def _scan_epoch(one_step, data: TrainArrays, perm: Array, carry, key: Array):
    """Runs ``one_step(carry, rows, key) -> (carry, metrics)`` over ``perm``'s rows and
    returns the valid-row-weighted epoch means of the metrics."""
    step_keys = jax.random.split(key, perm.shape[0])
    carry, metrics = jax.lax.scan(lambda c, xs: one_step(c, *xs), carry, (perm, step_keys))
    w = jnp.sum((perm < data.num_interactions).astype(jnp.float32), axis=1)
    w = w / jnp.maximum(jnp.sum(w), 1.0)
    return carry, jax.tree.map(lambda m: jnp.sum(m * w), metrics)


def make_d_epoch(
    d_fns: ModelFns,
    g_fns: ModelFns,
    tx: optax.GradientTransformation,
    *,
    loss: str = "bce",
    num_negatives: int = 1,
    temperature: float = 1.0,
    exclude_positives: bool = False,
):
    """Returns the jitted ``d_epoch(d_state, g_params, perm, data, positives, key) ->
    (d_state, metrics)``: one discriminator epoch with negatives drawn from G.

    Args:
      d_fns, g_fns: the discriminator and the generator.
      tx: D's optimizer.
      loss: ``"bce"`` (real vs generated) or ``"bpr"`` (pairwise) on D's scores.
      num_negatives: draws from G per training pair.
      temperature: G's softmax temperature.
      exclude_positives: draw only among items that are not the user's training positives.

    ``perm`` is an :func:`~robustjax.train.epoch_permutation` block ``[S, B]``,
    ``positives`` the :func:`user_positives` table (only read when ``exclude_positives``);
    the state is donated. Metrics: epoch means of the loss and ``d_real`` / ``d_fake``
    (mean ``sigmoid(f)`` of the positives and of the drawn items).
    """
    _choice("make_d_epoch", "loss", loss, D_LOSSES)
    if num_negatives < 1:
        raise ValueError(f"make_d_epoch: num_negatives must be >= 1, got {num_negatives}.")
    if temperature <= 0:
        raise ValueError(f"make_d_epoch: temperature must be > 0, got {temperature!r}.")
    objective = combine(**{loss: Term(clean_term(d_fns, loss))})

    def one_step(state, g_params, data, positives, rows, key):
        user, pos, mask = _rows(data, rows)
        k_neg, k_obj = jax.random.split(key)
        log_p = generator_log_probs(g_fns, g_params, user, temperature=temperature)
        if exclude_positives:
            log_p = jnp.where(positive_mask(positives, user, data.num_items), -jnp.inf, log_p)
        neg = sample_categorical(jax.lax.stop_gradient(log_p), num=num_negatives, key=k_neg)
        batch = {
            "user": user,
            "pos": pos,
            "neg": neg[:, 0] if num_negatives == 1 else neg,
            "mask": mask,
        }
        (total, parts), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params, batch, key=k_obj
        )
        scores = d_fns.score_items(state.params, user, jnp.concatenate([pos[:, None], neg], 1))
        prob = jax.nn.sigmoid(scores)
        metrics = {
            "loss": total,
            **parts,
            "d_real": masked_mean(prob[:, 0], mask),
            "d_fake": masked_mean(jnp.mean(prob[:, 1:], axis=-1), mask),
        }
        return _apply(tx, state, grads), metrics

    @functools.partial(jax.jit, donate_argnums=0)
    def d_epoch(
        state: TrainState, g_params, perm: Array, data: TrainArrays, positives: Array, key: Array
    ):
        return _scan_epoch(
            lambda s, rows, k: one_step(s, g_params, data, positives, rows, k),
            data,
            perm,
            state,
            key,
        )

    return d_epoch


def make_g_epoch(
    g_fns: ModelFns,
    d_fns: ModelFns,
    tx: optax.GradientTransformation,
    *,
    estimator: str = "reinforce",
    num_samples: int = 4,
    temperature: float = 1.0,
    reward: str = "log1pexp",
    baseline: str = "loo",
    gumbel_tau: float = 0.5,
    importance_mix: float = 0.0,
):
    """Returns the jitted ``g_epoch(g_state, d_params, perm, data, positives, key) ->
    (g_state, metrics)``: one generator epoch maximising D's expected reward.

    Args:
      g_fns, d_fns: the generator and the discriminator (D is a constant here).
      tx: G's optimizer.
      estimator: ``"reinforce"`` or ``"gumbel"`` (see the module docstring).
      num_samples: draws ``K`` per training pair.
      temperature: G's softmax temperature.
      reward: a key of :data:`REWARDS`, applied to D's score ``f(u, i)``.
      baseline: REINFORCE baseline, one of :data:`BASELINES`.
      gumbel_tau: temperature of the Gumbel-softmax relaxation.
      importance_mix: IRGAN's importance-sampling mixture weight (REINFORCE only).

    Metrics: ``g_loss`` (the surrogate), ``reward`` (mean reward of the draws, importance
    weighted), ``entropy`` of ``p_theta``, and ``expected_reward`` when D scores all items.
    """
    _choice("make_g_epoch", "estimator", estimator, ESTIMATORS)
    _choice("make_g_epoch", "reward", reward, REWARDS)
    _choice("make_g_epoch", "baseline", baseline, BASELINES)
    if num_samples < 1 or (estimator == "reinforce" and baseline == "loo" and num_samples < 2):
        raise ValueError(
            f"make_g_epoch: num_samples={num_samples} is too small; need >= 1 "
            "(>= 2 for baseline='loo')."
        )
    for name, value in (("temperature", temperature), ("gumbel_tau", gumbel_tau)):
        if value <= 0:
            raise ValueError(f"make_g_epoch: {name} must be > 0, got {value!r}.")
    if not 0.0 <= importance_mix < 1.0 or (importance_mix and estimator != "reinforce"):
        raise ValueError(
            f"make_g_epoch: importance_mix must lie in [0, 1) and needs "
            f"estimator='reinforce', got {importance_mix!r} with {estimator!r}."
        )
    reward_fn = REWARDS[reward]
    needs_all = estimator == "gumbel" or baseline == "expected"

    def loss_fn(params, d_params, user, mask, positives, key):
        log_p = generator_log_probs(g_fns, params, user, temperature=temperature)
        parts = {"entropy": masked_mean(-jnp.sum(jnp.exp(log_p) * log_p, axis=-1), mask)}
        r_all = reward_fn(d_fns.score_all(d_params, user)) if needs_all else None
        if r_all is not None:
            expected = jnp.sum(jax.lax.stop_gradient(jnp.exp(log_p)) * r_all, axis=-1)
            parts["expected_reward"] = masked_mean(expected, mask)
        if estimator == "gumbel":
            values = gumbel_loss(log_p, r_all, num=num_samples, tau=gumbel_tau, key=key)
            parts["reward"] = masked_mean(-values, mask)
        else:
            items, w = draw_for_generator(
                log_p, positives[user], num=num_samples, importance_mix=importance_mix, key=key
            )
            r = reward_fn(d_fns.score_items(d_params, user, items))
            values = reinforce_loss(
                log_p,
                items,
                r,
                baseline=baseline,
                weights=w,
                expected_reward=expected if r_all is not None else None,
            )
            parts["reward"] = masked_mean(jnp.mean(w * r, axis=-1), mask)
        parts["g_loss"] = masked_mean(values, mask)
        return parts["g_loss"], parts

    def one_step(state, d_params, data, positives, rows, key):
        user, _, mask = _rows(data, rows)
        (_, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, d_params, user, mask, positives, key
        )
        return _apply(tx, state, grads), parts

    @functools.partial(jax.jit, donate_argnums=0)
    def g_epoch(
        state: TrainState, d_params, perm: Array, data: TrainArrays, positives: Array, key: Array
    ):
        return _scan_epoch(
            lambda s, rows, k: one_step(s, d_params, data, positives, rows, k),
            data,
            perm,
            state,
            key,
        )

    return g_epoch


# ----------------------------------------------------------------------------- host loop


@dataclasses.dataclass(frozen=True)
class GanResult:
    """Outcome of :func:`fit_gan`. ``*_params`` are the validation-selected models (the final
    ones without validation); ``best_*_epoch`` is a 1-based GAN epoch."""

    g_params: object
    d_params: object
    final_g_params: object
    final_d_params: object
    best_g_epoch: int
    best_d_epoch: int
    best_g_metric: float | None
    best_d_metric: float | None
    history: list[dict]


def fit_gan(
    *,
    g_state: TrainState,
    d_state: TrainState,
    g_epoch,
    d_epoch,
    data: TrainArrays,
    gan_epochs: int,
    batch_size: int,
    seed: int,
    d_steps: int = 1,
    g_steps: int = 1,
    validate_g: Callable | None = None,
    validate_d: Callable | None = None,
    early_metric: str = "ndcg@20",
    eval_every: int = 1,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> GanResult:
    """Alternates ``d_steps`` D epochs and ``g_steps`` G epochs, ``gan_epochs`` times.

    ``g_epoch``/``d_epoch`` come from :func:`make_g_epoch`/:func:`make_d_epoch` (one compile
    each). Sub-epoch ``j`` of GAN epoch ``e`` uses the shuffle ``(seed, e * (d_steps +
    g_steps) + j)`` and the key ``fold_in(fold_in(key(seed), e), j)``. Validation (never
    test) runs before the first GAN epoch (logged as epoch 0, not a candidate), every
    ``eval_every`` GAN epochs and after the last; G and D are selected separately on
    ``early_metric``.
    """
    from tqdm.auto import tqdm

    from robustjax.train.step import epoch_permutation

    for name, value in (
        ("gan_epochs", gan_epochs),
        ("d_steps", d_steps),
        ("g_steps", g_steps),
        ("eval_every", eval_every),
    ):
        if value < 1:
            raise ValueError(f"fit_gan: {name} must be >= 1, got {value!r}.")
    positives = user_positives(data)
    root = jax.random.key(seed)
    copy = functools.partial(jax.tree.map, jnp.copy)
    g_state, d_state = copy(g_state), copy(d_state)  # the epochs donate their state
    best = {"g": [copy(g_state.params), None, 0], "d": [copy(d_state.params), None, 0]}
    validators = {"g": validate_g, "d": validate_d}
    history = []

    def validate(record, epoch):
        for name, fn in validators.items():
            if fn is None:
                continue
            metrics = fn((g_state if name == "g" else d_state).params)
            if early_metric not in metrics:
                raise ValueError(
                    f"fit_gan: early_metric={early_metric!r} is not among the "
                    f"validation metrics {sorted(metrics)}."
                )
            record.update({f"{name}/valid/{k}": v for k, v in metrics.items()})
            if epoch > 0 and (best[name][1] is None or metrics[early_metric] > best[name][1]):
                state = g_state if name == "g" else d_state
                best[name] = [copy(state.params), metrics[early_metric], epoch]

    record = {"epoch": 0, "phase": "pretrained"}
    validate(record, 0)
    history.append(record)
    if on_epoch is not None:
        on_epoch(record)
    bar = tqdm(
        range(gan_epochs), desc="gan", unit="epoch", disable=not progress, dynamic_ncols=True
    )
    for e in bar:
        key = jax.random.fold_in(root, e)
        record, t0 = {"epoch": e + 1, "phase": "gan"}, time.perf_counter()
        for j in range(d_steps + g_steps):
            perm = epoch_permutation(
                data.num_interactions, batch_size, seed=seed, epoch=e * (d_steps + g_steps) + j
            )
            k = jax.random.fold_in(key, j)
            if j < d_steps:
                d_state, metrics = d_epoch(d_state, g_state.params, perm, data, positives, k)
                prefix = "d/"
            else:
                g_state, metrics = g_epoch(g_state, d_state.params, perm, data, positives, k)
                prefix = "g/"
            record.update({prefix + n: float(v) for n, v in jax.device_get(metrics).items()})
        record["seconds"] = time.perf_counter() - t0  # training only (metrics fetched)
        if (e + 1) % eval_every == 0 or e + 1 == gan_epochs:
            validate(record, e + 1)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        bar.set_postfix(
            {k: f"{v:.4f}" for k, v in record.items() if k.endswith(f"valid/{early_metric}")}
        )
    bar.close()
    for name, state in (("g", g_state), ("d", d_state)):
        if best[name][1] is None:
            best[name] = [state.params, None, gan_epochs]
    return GanResult(
        g_params=best["g"][0],
        d_params=best["d"][0],
        final_g_params=g_state.params,
        final_d_params=d_state.params,
        best_g_epoch=best["g"][2],
        best_d_epoch=best["d"][2],
        best_g_metric=best["g"][1],
        best_d_metric=best["d"][1],
        history=history,
    )
