"""L2 embedding attacks on dot-product models, solved in the span of each example.

For a model whose score is ``<u, i>`` (+ an item bias) and a loss that sees the embeddings
only through scores, the gradient of the loss with respect to a user embedding is a
combination of the item embeddings it is scored against, and the gradient with respect to
an item embedding is a multiple of the user embedding. Starting from zero, every iterate
of L2 FGSM/PGD therefore stays in the span of the example's own embeddings
``E_b = [u_b, p_b, n_b1 .. n_bN]`` (``k = N + 2`` vectors of dimension ``D``):
``delta_name = c_name @ E_b`` with coefficient vectors ``c`` of length ``k``.

Everything the attack needs is in the Gram matrix ``G_b = E_b E_b^T``. Its Cholesky
factor ``L`` (``L L^T = G``) gives each vector's coordinates in an orthonormal basis of the
span: scores are dot products of coordinates and norms are Euclidean, so the generic
attack code of :mod:`robustjax.attacks` runs unchanged on ``[B, k]`` coordinate vectors
instead of ``[B, D]`` embeddings (``k = 3`` against ``D = 64`` for BPR). The clean and
adversarial losses come from ``G`` and the coefficients, and their gradient with respect to
the embeddings is ``A @ E_b`` for a small ``[B, k, k]`` matrix ``A``: one pass over the
embeddings forward and one backward, so an APR or PGD-K step costs about as much as a
clean step. The perturbations, losses and gradients equal those of the generic path up to
rounding (``tests/losses/test_gram.py``).

Applies when the model declares ``ModelFns.bilinear`` (MF, LightGCN), the norm is L2,
the attack starts from zero and only ``user``/``pos``/``neg`` are perturbed;
:func:`robustjax.objectives.build_phases` falls back to the generic attacks otherwise.
"""

import functools

import jax
import jax.numpy as jnp

from robustjax.attacks import AttackConfig, make_attack
from robustjax.losses.adversarial import add_delta
from robustjax.losses.terms import SCORE_LOSSES, emb_loss
from robustjax.models.base import ModelFns
from robustjax.types import Array, Emb

SLOTS = ("user", "pos", "neg")
MAX_BASIS = 8  # k = 2 + negatives; above it the unrolled k x k algebra is not worth it


def _layout(emb: Emb) -> tuple[list[Array], dict[str, list[int]]]:
    """The example's basis as a list of ``[B, D]`` vectors (user, pos, then each
    negative) and, per slot, the indices of its vectors."""
    vecs, index = [], {}
    for s in (s for s in SLOTS if s in emb):
        x = emb[s]
        parts = [x[:, m] for m in range(x.shape[1])] if x.ndim == 3 else [x]
        index[s] = list(range(len(vecs), len(vecs) + len(parts)))
        vecs += parts
    return vecs, index


def gram(emb: Emb) -> Array:
    """``G [B, k, k]``: inner products of each example's ``user``, ``pos``, ``neg``
    vectors."""
    vecs, _ = _layout(emb)
    k = len(vecs)
    dots = {}
    for a in range(k):
        for b in range(a, k):  # separate reductions: XLA fuses each with its product
            dots[a, b] = dots[b, a] = jnp.sum(vecs[a] * vecs[b], axis=-1)
    return jnp.stack([jnp.stack([dots[a, b] for b in range(k)], -1) for a in range(k)], -2)


def _slot_rows(emb: Emb, rows: Array, index: dict[str, list[int]]) -> Emb:
    """Per-slot views of ``[B, k, ...]`` rows: ``[B, ...]`` or ``[B, N, ...]``."""
    return {
        s: (rows[:, idx[0]] if emb[s].ndim == 2 else rows[:, idx[0] : idx[-1] + 1])
        for s, idx in index.items()
    }


def _form(u: Array, g: Array, i: Array) -> Array:
    """``u^T G i`` per example: ``u, i [B, k]`` or ``[B, N|1, k]``, ``g [B, k, k]``.

    Unrolled over the ``k**2`` entries: elementwise work XLA fuses into one loop, where a
    reduction over a length-``k`` axis would be a separate (and on CPU slow) kernel.
    """
    gm = g if max(u.ndim, i.ndim) == 2 else g[:, None]
    k = g.shape[-1]
    return sum(u[..., a] * gm[..., a, b] * i[..., b] for a in range(k) for b in range(k))


def coordinates(g: Array, *, tol: float = 1e-5) -> Array:
    """``L [B, k, k]`` lower triangular with ``L L^T = G``: row ``j`` holds the coordinates
    of basis vector ``j`` in an orthonormal basis of the example's span (Cholesky).

    A vector that lies in the span of the ones before it (pivot ``<= tol * G_jj``, e.g. a
    negative equal to the positive) gets no new axis: its pivot and column are zero, so
    rank-deficient examples stay exact instead of dividing by rounding noise.
    """
    k = g.shape[-1]
    zero = jnp.zeros_like(g[:, 0, 0])
    low = [[zero] * k for _ in range(k)]  # low[i][j] = L_ij
    for j in range(k):
        acc = g[:, j, j] - sum((low[j][m] ** 2 for m in range(j)), zero)
        keep = acc > tol * g[:, j, j]
        pivot = jnp.where(keep, jnp.sqrt(jnp.where(keep, acc, 1.0)), 0.0)
        # acc / pivot (= pivot) has the rounding of the entries below, so a vector equal
        # to vector j gets bitwise the same coordinates
        low[j][j] = jnp.where(keep, acc / jnp.where(keep, pivot, 1.0), 0.0)
        for i in range(j + 1, k):
            acc = g[:, i, j] - sum((low[i][m] * low[j][m] for m in range(j)), zero)
            low[i][j] = jnp.where(keep, acc / jnp.where(keep, pivot, 1.0), 0.0)
    return jnp.stack([jnp.stack(row, -1) for row in low], -2)


def _solve_right(y: Array, low: Array) -> Array:
    """``c`` with ``c L = y`` (back substitution; zero pivots give zero coefficients).
    ``y [B, k]`` or ``[B, N, k]``."""
    k = low.shape[-1]
    lm = low if y.ndim == 2 else low[:, None]
    c: list[Array] = [None] * k
    for j in reversed(range(k)):
        acc = y[..., j] - sum(
            (c[i] * lm[..., i, j] for i in range(j + 1, k)), jnp.zeros_like(y[..., j])
        )
        piv = lm[..., j, j]
        c[j] = jnp.where(piv > 0, acc / jnp.where(piv > 0, piv, 1.0), 0.0)
    return jnp.stack(c, -1)


def span_attack(attack, loss_on_emb, params, emb: Emb, *, key, **kw) -> Emb:
    """Runs an L2, zero-start ``attack`` (from :func:`robustjax.attacks.make_attack`) in
    the orthonormal coordinates of each example's span and returns the coefficients ``c``
    of ``delta = c @ E`` per slot (``[B, k]`` or ``[B, N, k]``; zeros for untargeted
    slots), stop-gradient-ed. ``loss_on_emb`` must see embeddings only through the model's
    dot-product score (e.g. :func:`robustjax.losses.emb_loss` of a bilinear model)."""
    emb = jax.lax.stop_gradient(emb)
    _, index = _layout(emb)
    low = coordinates(gram(emb))
    y = {**emb, **_slot_rows(emb, low, index)}
    delta_y = attack(lambda e: loss_on_emb(params, e), y, key=key, **kw)
    return jax.lax.stop_gradient({s: _solve_right(delta_y[s], low) for s in index})


def span_delta(emb: Emb, coeffs: Emb) -> Emb:
    """Materialises ``delta_slot = c_slot @ E`` (``[B, D]`` or ``[B, N, D]``)."""
    vecs, _ = _layout(emb)
    return {
        s: sum(c[..., m, None] * (v if c.ndim == 2 else v[:, None]) for m, v in enumerate(vecs))
        for s, c in coeffs.items()
    }


def _scores(emb: Emb, g: Array, x: Emb) -> tuple[Array, Array]:
    """``pos``/``neg`` scores ``x_u^T G x_i`` (+ biases) for coefficient rows ``x``."""
    out = []
    for s in ("pos", "neg"):
        u = x["user"] if x[s].ndim == x["user"].ndim else x["user"][..., None, :]
        score = _form(u, g, x[s])
        bias = emb.get(f"{s}_bias")
        out.append(score if bias is None else score + bias)
    return out[0], out[1]


def span_losses(score_loss, emb: Emb, coeffs: Emb) -> tuple[Array, Array]:
    """Per-example clean and adversarial losses ``(L(emb), L(emb + c @ E))`` of a score
    loss, from one pass over the embeddings forward and one backward.

    The perturbation is a constant for differentiation (Danskin, as in
    :func:`robustjax.losses.adversarial_term`): the gradient with respect to ``e_u`` is a
    combination of ``e_i`` and ``e_i + d_i`` over the example's items (and vice versa), so
    the backward pass is ``A @ E`` for a small coefficient matrix ``A [B, k, k]``.
    """
    if not all(s in emb for s in SLOTS):
        raise ValueError(f"span_losses: needs the slots {SLOTS}, got {sorted(emb)}.")
    return _span_losses(score_loss, emb, jax.lax.stop_gradient(coeffs))


def _span_forward(score_loss, emb, coeffs):
    vecs, index = _layout(emb)
    k = len(vecs)
    g = gram(emb)
    eye = _slot_rows(emb, jnp.broadcast_to(jnp.eye(k, dtype=g.dtype), g.shape), index)
    x_adv = {s: eye[s] + coeffs[s] for s in index}

    def losses(s_clean, s_adv):
        return score_loss(*s_clean), score_loss(*s_adv)

    s_clean, s_adv = _scores(emb, g, eye), _scores(emb, g, x_adv)
    out, pull = jax.vjp(losses, s_clean, s_adv)
    return out, (pull, eye, x_adv)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _span_losses(score_loss, emb, coeffs):
    return _span_forward(score_loss, emb, coeffs)[0]


def _span_fwd(score_loss, emb, coeffs):
    out, res = _span_forward(score_loss, emb, coeffs)
    return out, (res, emb, coeffs)


def _span_bwd(score_loss, res, cts):
    (pull, eye, x_adv), emb, coeffs = res
    (dc_pos, dc_neg), (da_pos, da_neg) = pull(cts)
    multi = emb["neg"].ndim == 3
    # user row: sum_j ds_j x_j over item slots j; item rows: ds_j x_u
    a_user = dc_pos[:, None] * eye["pos"] + da_pos[:, None] * x_adv["pos"]
    if multi:
        a_user = a_user + jnp.sum(
            dc_neg[..., None] * eye["neg"] + da_neg[..., None] * x_adv["neg"], axis=1
        )
        a_neg = (
            dc_neg[..., None] * eye["user"][:, None] + da_neg[..., None] * x_adv["user"][:, None]
        )
    else:
        a_user = a_user + dc_neg[:, None] * eye["neg"] + da_neg[:, None] * x_adv["neg"]
        a_neg = dc_neg[:, None] * eye["user"] + da_neg[:, None] * x_adv["user"]
    a_pos = dc_pos[:, None] * eye["user"] + da_pos[:, None] * x_adv["user"]
    grads = span_delta(emb, {"user": a_user, "pos": a_pos, "neg": a_neg})
    d_emb = {n: jnp.zeros_like(v) for n, v in emb.items()}
    d_emb |= grads
    if "pos_bias" in emb:
        d_emb["pos_bias"] = dc_pos + da_pos
    if "neg_bias" in emb:
        d_emb["neg_bias"] = dc_neg + da_neg
    return d_emb, jax.tree.map(jnp.zeros_like, coeffs)


_span_losses.defvjp(_span_fwd, _span_bwd)


def check_span_attack(cfg: AttackConfig, loss: str) -> None:
    """Raises unless the span path is exact for ``cfg`` and ``loss``: an L2 FGSM or PGD
    from zero on a score loss. An L-inf ball is not preserved by the change of basis, and
    a random start in the span is not the generic random start, so those would be wrong."""
    problems = []
    if cfg.norm != "l2":
        problems.append(f"norm={cfg.norm!r} (needs 'l2')")
    if cfg.kind not in ("fgsm", "pgd"):
        problems.append(f"kind={cfg.kind!r} (needs 'fgsm' or 'pgd')")
    if cfg.random_start:
        problems.append("random_start=True (needs a zero start)")
    if loss not in SCORE_LOSSES:
        problems.append(f"loss={loss!r} (needs one of {tuple(SCORE_LOSSES)})")
    if problems:
        raise ValueError(
            "span_adversarial_term: the span path is exact only for L2, zero-start FGSM/PGD "
            f"on score losses; got {', '.join(problems)}. Use adversarial_term instead."
        )


def span_adversarial_term(
    fns: ModelFns,
    loss: str,
    attack_cfg: AttackConfig,
    *,
    clean_name: str | None = None,
    adv_name: str = "adv",
):
    """Term: the loss at the point found by the L2, zero-start attack ``attack_cfg``, all
    from the batch's Gram matrix (see the module doc). Other attacks are refused (:func:`check_span_attack`).

    With ``clean_name``, returns ``{clean_name: clean loss, adv_name: adversarial loss}``
    (the clean scores are entries of ``G``); else the adversarial loss alone. Values and
    gradients equal ``clean_term`` and ``adversarial_term`` with the same attack, up to
    rounding. Needs ``fns.bilinear``. With more than ``MAX_BASIS - 2`` negatives per
    example it computes the generic way (same values).
    """
    if not fns.bilinear:
        raise ValueError(
            "span_adversarial_term: the model's score is not declared a dot "
            "product (ModelFns.bilinear is False); use adversarial_term "
            "instead."
        )
    check_span_attack(attack_cfg, loss)
    attack = make_attack(attack_cfg, fns.embedding_names)
    loss_on_emb = emb_loss(fns, loss)
    score_loss = SCORE_LOSSES[loss]

    def fn(params, batch, *, key):
        emb = fns.embed(params, batch)
        if sum(len(v) for v in _layout(emb)[1].values()) > MAX_BASIS:  # many negatives
            delta = attack(lambda e: loss_on_emb(params, e), emb, key=key)
            clean = loss_on_emb(params, emb)
            adv = loss_on_emb(params, add_delta(emb, delta))
        else:
            c = span_attack(attack, loss_on_emb, params, emb, key=key)
            clean, adv = span_losses(score_loss, emb, c)
        return adv if clean_name is None else {clean_name: clean, adv_name: adv}

    return fn


__all__ = [
    "coordinates",
    "gram",
    "span_adversarial_term",
    "span_attack",
    "span_delta",
    "span_losses",
]
