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

import functools

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

from robustjax.data.negatives import TrainArrays
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
)
from robustjax.train.state import TrainState
from robustjax.train.step import apply_gradients, epoch_means

# ----------------------------------------------------------------------------- epochs


def _rows(data: TrainArrays, rows: Array):
    n = data.num_interactions
    mask = (rows < n).astype(jnp.float32)
    rows = jnp.where(rows < n, rows, 0)
    weight = getattr(data, "weight", None)  # per-interaction weights, as in make_batch
    if weight is not None:
        mask = mask * weight[rows]
    return data.user[rows], data.item[rows], mask


def _scan_epoch(one_step, data: TrainArrays, perm: Array, carry, key: Array):
    """Runs ``one_step(carry, rows, key) -> (carry, metrics)`` over ``perm``'s rows and
    returns the valid-row-weighted epoch means of the metrics."""
    step_keys = jax.random.split(key, perm.shape[0])
    carry, metrics = jax.lax.scan(lambda c, xs: one_step(c, *xs), carry, (perm, step_keys))
    return carry, epoch_means(metrics, perm, data.num_interactions)


def _jit_epoch(one_step):
    """The jitted ``epoch(state, other_params, perm, data, positives, key)`` that scans
    ``one_step(state, other_params, data, positives, rows, key)`` over ``perm``
    (:func:`_scan_epoch`); ``other_params`` are the other network's, held fixed."""

    @functools.partial(jax.jit, donate_argnums=0)
    def epoch(
        state: TrainState,
        other_params,
        perm: Array,
        data: TrainArrays,
        positives: Array,
        key: Array,
    ):
        return _scan_epoch(
            lambda s, rows, k: one_step(s, other_params, data, positives, rows, k),
            data,
            perm,
            state,
            key,
        )

    return epoch


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
      d_fns: the discriminator.
      g_fns: the generator.
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
    _check_d_args(loss, num_negatives, temperature)
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
        metrics = _d_metrics(d_fns, state.params, user, pos, neg, mask, total, parts)
        return apply_gradients(state, grads, tx), metrics

    return _jit_epoch(one_step)


def _check_d_args(loss: str, num_negatives: int, temperature: float) -> None:
    _choice("make_d_epoch", "loss", loss, D_LOSSES)
    if num_negatives < 1:
        raise ValueError(f"make_d_epoch: num_negatives must be >= 1, got {num_negatives}.")
    if temperature <= 0:
        raise ValueError(f"make_d_epoch: temperature must be > 0, got {temperature!r}.")


def _d_metrics(d_fns: ModelFns, params, user, pos, neg, mask, total, parts):
    """The D step's metrics: the loss terms and the mean ``sigmoid(f)`` of the positives
    (``d_real``) and of the drawn items (``d_fake``), from the pre-update ``params``."""
    scores = d_fns.score_items(params, user, jnp.concatenate([pos[:, None], neg], 1))
    prob = jax.nn.sigmoid(scores)
    return {
        "loss": total,
        **parts,
        "d_real": masked_mean(prob[:, 0], mask),
        "d_fake": masked_mean(jnp.mean(prob[:, 1:], axis=-1), mask),
    }


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
      g_fns: the generator.
      d_fns: the discriminator (a constant here).
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
    _check_g_args(
        estimator=estimator,
        reward=reward,
        baseline=baseline,
        num_samples=num_samples,
        temperature=temperature,
        gumbel_tau=gumbel_tau,
        importance_mix=importance_mix,
    )
    loss_fn = _g_loss_fn(
        g_fns,
        d_fns,
        estimator=estimator,
        num_samples=num_samples,
        temperature=temperature,
        reward=reward,
        baseline=baseline,
        gumbel_tau=gumbel_tau,
        importance_mix=importance_mix,
    )

    def one_step(state, d_params, data, positives, rows, key):
        user, _, mask = _rows(data, rows)
        (_, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, d_params, user, mask, positives, key
        )
        return apply_gradients(state, grads, tx), parts

    return _jit_epoch(one_step)


def _check_g_args(
    *,
    estimator: str,
    reward: str,
    baseline: str,
    num_samples: int,
    temperature: float,
    gumbel_tau: float,
    importance_mix: float,
) -> None:
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


def _g_loss_fn(
    g_fns: ModelFns,
    d_fns: ModelFns,
    *,
    estimator: str,
    num_samples: int,
    temperature: float,
    reward: str,
    baseline: str,
    gumbel_tau: float,
    importance_mix: float,
):
    """G's ``loss_fn(params, d_params, user, mask, positives, key) -> (g_loss, parts)``
    for :func:`make_g_epoch` (arguments as there)."""
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

    return loss_fn
