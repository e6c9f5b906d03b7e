"""Adversarial objectives as terms for :func:`robustjax.losses.combine`.

Every term is ``fn(params, batch, *, key) -> [B]`` and works for any model exposing
``embed``/``score`` (:class:`robustjax.models.ModelFns`): the perturbation is added to the
output of ``embed``, the loss is recomputed with ``score``, and the parameters receive the
gradient through the (perturbed) embeddings. Attacks return ``stop_gradient(delta)``: the
perturbation is a constant for the outer gradient (Danskin's theorem; the APR convention),
so the inner loop never differentiates through itself and touches only the gathered batch
embeddings and the score function, not the tables or the optimizer.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from robustjax.attacks import budget_excess, normalize, project, random_ball
from robustjax.models.base import ModelFns, slot_scores
from robustjax.types import Array, Emb

AttackFn = Callable[..., Emb]


def add_delta(emb: Emb, delta: Emb) -> Emb:
    """``emb + delta`` for the names in ``delta`` (others unchanged)."""
    return {k: (v + delta[k] if k in delta else v) for k, v in emb.items()}


def checked(attack: AttackFn, emb: Emb, delta: Emb, values: Array, on: bool = True):
    """``values``, with the attack's budget check beside it when ``on`` and the attack
    declares its ball (``attack.budget``, set by ``make_attack``): ``{"": values,
    "check/budget_excess": excess}`` for :func:`robustjax.losses.combine`, which logs the
    excess as a diagnostic (the training loop warns, or under ``train.strict`` stops, when
    an attack's output leaves its ball)."""
    budget = getattr(attack, "budget", None)
    if not on or budget is None:
        return values
    return {"": values, "check/budget_excess": budget_excess(emb, delta, budget)}


def adversarial_term(fns: ModelFns, loss_on_emb, attack: AttackFn, *, check_budget: bool = False):
    """Term: the loss at the adversarial point ``embed(params) + attack(...)``.

    Args:
      fns: model functions.
      loss_on_emb: ``loss_on_emb(params, emb) -> [B]`` (e.g. :func:`emb_loss`).
      attack: ``attack(loss_fn, emb, *, key) -> delta`` from :mod:`robustjax.attacks`; it
        maximises ``sum(loss_fn(emb + delta))`` and returns ``stop_gradient(delta)``.
      check_budget: also return the attack's budget check (:func:`checked`; a dict term).
    """

    def fn(params, batch, *, key):
        emb = fns.embed(params, batch)
        delta = attack(lambda e: loss_on_emb(params, e), emb, key=key)
        values = loss_on_emb(params, add_delta(emb, delta))
        return checked(attack, emb, delta, values, check_budget)

    return fn


def apr_published_term(
    fns: ModelFns,
    loss_on_emb,
    *,
    eps: float | Array,
    names: tuple[str, ...] = ("user", "pos", "neg"),
):
    """APR as published (He et al., SIGIR 2018): one perturbation per embedding-table row.

    The gradient of the clean loss summed over the batch is accumulated per table row (a
    row looked up several times in the batch sums its gradients), each row's perturbation is
    ``eps * G_r / ||G_r||``, and every lookup of row ``r`` receives the same ``delta_r``.
    In per-lookup mode (:func:`adversarial_term` with an L2/row FGSM) each gathered
    embedding gets its own ``delta`` from its own gradient instead; the two coincide when no
    row repeats in a batch. Pair with :func:`summed` to reproduce the sum-reduced loss of the
    reference code. Each example's gradient is weighted by ``batch["mask"]`` (when given),
    so the padding rows of a partial last batch do not move the real rows' perturbations.
    """
    missing = [n for n in names if n not in fns.lookups]
    if missing:
        raise ValueError(
            f"apr_published_term: embeddings {missing} are not table lookups of "
            f"this model (lookups: {sorted(fns.lookups)}); use the per-lookup "
            "mode (adversarial_term with an FGSM attack) instead."
        )

    def fn(params, batch, *, key):
        del key
        emb = fns.embed(params, batch)
        sub = {n: jax.lax.stop_gradient(emb[n]) for n in names}
        # padding rows (mask 0) must not enter the per-row gradient sums
        weight = batch.get("mask")

        def total(d):
            values = loss_on_emb(params, add_delta(emb, d))
            return jnp.sum(values if weight is None else values * weight)

        grads = jax.grad(total)(jax.tree.map(jnp.zeros_like, sub))
        del sub
        delta = {}
        for table in sorted({fns.lookups[n][0] for n in names}):
            members = [n for n in names if fns.lookups[n][0] == table]
            dim = grads[members[0]].shape[-1]
            ids = jnp.concatenate([batch[fns.lookups[n][1]].reshape(-1) for n in members])
            g = jnp.concatenate([grads[n].reshape(-1, dim) for n in members])
            g_rows = jax.ops.segment_sum(g, ids, fns.table_sizes[table])
            d_rows = (
                eps * g_rows / jnp.maximum(jnp.linalg.norm(g_rows, axis=-1, keepdims=True), 1e-12)
            )
            for n in members:
                delta[n] = jax.lax.stop_gradient(d_rows[batch[fns.lookups[n][1]]])
        return loss_on_emb(params, add_delta(emb, delta))

    return fn


def summed(term_fn):
    """Wraps a term so the combinator's masked mean equals the batch *sum* (the
    sum-reduced loss of the APR reference implementation)."""

    def fn(params, batch, *, key):
        values = term_fn(params, batch, key=key)
        n = jnp.sum(batch["mask"]) if "mask" in batch else values.shape[0]
        return values * n

    return fn


def pick_examples(mask: Array, fraction: float | Array, key: Array) -> Array:
    """``round(fraction * n)`` of the ``n`` real examples (``mask > 0``), uniformly at
    random; padding rows are never picked. Returns bool ``[B]``."""
    real = mask > 0
    u = jnp.where(real, jax.random.uniform(key, mask.shape), 2.0)  # padding ranks last
    rank = jnp.argsort(jnp.argsort(u))
    return rank < jnp.round(fraction * jnp.sum(real))


def injected_term(
    fns: ModelFns,
    loss_on_emb,
    attack: AttackFn,
    *,
    fraction: float,
    weight: float = 1.0,
    check_budget: bool = False,
):
    """Adversarial sample injection by replacement (Kurakin et al., ICLR 2017): a fraction
    ``r`` of each batch's real examples (:func:`pick_examples`) is replaced by its
    adversarial version, so the batch loss is

        (sum_clean L(x) + weight * sum_chosen L(x + delta)) / ((m - k) + weight * k)

    with ``m`` real examples of which ``k`` are chosen (``r = 1``, ``weight = 1``: the
    adversarial loss alone). Only the chosen examples drive the attack. Returns per-example
    values whose masked mean is that loss; the term replaces the clean term.
    """
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"injected_term: fraction must lie in [0, 1], got {fraction!r}.")

    def fn(params, batch, *, key):
        k_attack, k_pick = jax.random.split(key)
        emb = fns.embed(params, batch)
        mask = batch.get("mask", jnp.ones(next(iter(emb.values())).shape[0], jnp.float32))
        chosen = pick_examples(mask, fraction, k_pick)
        delta = attack(lambda e: loss_on_emb(params, e) * chosen, emb, key=k_attack)
        clean = loss_on_emb(params, emb)
        adv = loss_on_emb(params, add_delta(emb, delta))
        m = jnp.sum(mask > 0).astype(clean.dtype)
        k = jnp.sum(chosen).astype(clean.dtype)
        scale = m / jnp.maximum(m - k + weight * k, 1.0)
        values = scale * jnp.where(chosen, weight * adv, clean)
        return checked(attack, emb, delta, values, check_budget)

    return fn


# ------------------------------------------------------------------ distribution-matching terms


def _log_probs(fns: ModelFns, params, emb: Emb) -> Array:
    """Log-softmax over the sampled items of each example: ``[B, 1 + N]`` (positive first)."""
    s = slot_scores(fns, params, emb)
    neg = s["neg"] if s["neg"].ndim == 2 else s["neg"][:, None]
    return jax.nn.log_softmax(jnp.concatenate([s["pos"][:, None], neg], axis=1), axis=-1)


def _kl(log_p: Array, log_q: Array) -> Array:
    """Per-example ``KL(p || q)`` from log-probabilities ``[B, C]``."""
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


TRADES_INIT_SCALE = 0.001  # std of TRADES' random start (Zhang et al.'s reference code)


def trades_term(fns: ModelFns, attack: AttackFn, *, check_budget: bool = False):
    """TRADES-style ranking regulariser (after Zhang et al., ICML 2019).

    ``KL(p_clean || p_adv)`` between the softmax distributions of the scores over each
    example's sampled items (positive and negatives), where the attack maximises that same
    divergence. The gradient flows through both the clean and the perturbed distribution,
    as in TRADES. Weight it with the combinator (TRADES' ``beta``).

    The inner maximisation starts at ``TRADES_INIT_SCALE * N(0, I)`` (``0.001``, as in
    Zhang et al.'s reference code), drawn from ``key``: at ``delta = 0`` the KL is at its
    minimum and its gradient is zero up to rounding, so a zero start would take its first step
    along rounding noise. The first step's projection brings the start into the ball
    (the reference code does not project the start either). ``attack`` must accept
    ``init=`` (``make_attack`` with ``kind="pgd"``, as ``AdvConfig(method="trades")``
    builds).
    """

    def fn(params, batch, *, key):
        k_init, k_attack = jax.random.split(key)
        emb = fns.embed(params, batch)
        log_p = _log_probs(fns, params, emb)
        fixed = jax.lax.stop_gradient(log_p)
        keys = dict(zip(emb, jax.random.split(k_init, len(emb))))
        init = {
            n: TRADES_INIT_SCALE * jax.random.normal(keys[n], x.shape, x.dtype)
            for n, x in emb.items()
        }
        delta = attack(
            lambda e: _kl(fixed, _log_probs(fns, params, e)), emb, key=k_attack, init=init
        )
        values = _kl(log_p, _log_probs(fns, params, add_delta(emb, delta)))
        return checked(attack, emb, delta, values, check_budget)

    return fn


def vat_term(
    fns: ModelFns,
    *,
    eps: float | Array,
    names: tuple[str, ...] = ("user", "pos", "neg"),
    xi: float = 1e-3,
    power_iterations: int = 1,
    norm: str = "l2",
    scope: str = "row",
):
    """Virtual adversarial training (Miyato et al., 2018): label-free smoothness.

    The direction ``d`` of largest ``KL(p || p(emb + xi d))`` is found by power iteration
    from a random direction; the term is ``KL(stop_grad(p) || p(emb + eps d))``. No labels
    enter: the positive/negative roles only fix the candidate set.
    """
    if power_iterations < 1:
        raise ValueError(f"vat_term: power_iterations must be >= 1, got {power_iterations}.")

    def fn(params, batch, *, key):
        emb = fns.embed(params, batch)
        log_p = jax.lax.stop_gradient(_log_probs(fns, params, emb))
        sub = {n: jax.lax.stop_gradient(emb[n]) for n in names}
        d = random_ball(key, sub, 1.0, norm=norm, scope=scope, dist="sphere")

        def kl_at(d):
            return jnp.sum(_kl(log_p, _log_probs(fns, params, add_delta(emb, d))))

        for _ in range(power_iterations):
            g = jax.grad(kl_at)(jax.tree.map(lambda x: xi * x, d))
            d = normalize(g, norm=norm, scope=scope)
        r = jax.lax.stop_gradient(jax.tree.map(lambda x: eps * x, d))
        return _kl(log_p, _log_probs(fns, params, add_delta(emb, r)))

    return fn


__all__ = [
    "add_delta",
    "adversarial_term",
    "apr_pair_term",
    "apr_published_term",
    "injected_term",
    "pick_examples",
    "project",
    "summed",
    "trades_term",
    "vat_term",
]


def apr_pair_term(
    fns: ModelFns,
    loss_on_emb,
    *,
    eps: float | Array,
    clean_name: str = "bpr",
    adv_name: str = "apr",
    names: tuple[str, ...] = ("user", "pos", "neg"),
):
    """Clean and APR (per-lookup FGSM) losses from one clean backward pass.

    Returns ``{clean_name: L(emb), adv_name: L(emb + delta)}`` per example, with
    ``delta = eps * g / ||g||`` per row and ``g`` the per-example gradient of the clean loss.
    Values and gradients equal those of ``clean_term`` + ``adversarial_term`` with an
    L2/row FGSM attack, but the gradient ``g`` is computed once and reused as the clean
    term's backward pass (examples are independent, so the clean cotangent of example b is
    ``ct_b * g_b``): 2 forward and 2 backward passes instead of 3 and 3. Needs a loss where
    each example depends only on its own embeddings (true for bpr/bce/sampled softmax).
    """
    missing = [n for n in names if n not in fns.embedding_names]
    if missing:
        raise ValueError(
            f"apr_pair_term: the model does not expose {missing}; valid names: "
            f"{fns.embedding_names}."
        )

    @jax.custom_vjp
    def pair(params, emb):
        return _pair_fwd(params, emb)[0]

    def _pair_fwd(params, emb):
        clean, vjp_clean = jax.vjp(loss_on_emb, params, emb)
        g = vjp_clean(jnp.ones_like(clean))[1]
        sub = {n: g[n] for n in names}
        delta = jax.lax.stop_gradient(
            jax.tree.map(lambda x: eps * x, normalize(sub, norm="l2", scope="row"))
        )
        adv, vjp_adv = jax.vjp(loss_on_emb, params, add_delta(emb, delta))
        return (clean, adv), (vjp_clean, g, vjp_adv)

    def _pair_bwd(res, cts):
        vjp_clean, g, vjp_adv = res
        ct_clean, ct_adv = cts
        # the clean part: parameters used by the score function need their own pullback;
        # the embeddings reuse g, scaled per example (XLA drops the unused emb pullback)
        p_clean = vjp_clean(ct_clean)[0]
        e_clean = jax.tree.map(
            lambda x: x * ct_clean.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype), g
        )
        p_adv, e_adv = vjp_adv(ct_adv)
        return (jax.tree.map(jnp.add, p_clean, p_adv), jax.tree.map(jnp.add, e_clean, e_adv))

    pair.defvjp(_pair_fwd, _pair_bwd)

    def fn(params, batch, *, key):
        del key
        clean, adv = pair(params, fns.embed(params, batch))
        return {clean_name: clean, adv_name: adv}

    return fn
