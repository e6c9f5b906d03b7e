"""Norm balls over embedding perturbations: projection, steepest-ascent directions, sampling.

A perturbation is a dict of arrays ``{name: [B, ...]}`` (e.g. ``[B, D]`` or ``[B, N, D]``)
and its size is measured in one of two norms and three scopes:

* ``norm="l2"``: Euclidean norm; ``norm="linf"``: largest absolute entry.
* ``scope="row"``: each embedding vector (the last axis) separately, so every row of every
  name has its own ball of radius ``eps``. A rank-1 leaf (``[B]``, e.g. a bias) has rows
  of length 1.
* ``scope="example"``: per example ``b``, all entries of all names at batch index ``b``
  jointly (every axis but the leading batch axis, across names): one ball per example.
* ``scope="batch"``: the whole perturbation (all names, all examples) jointly: one ball.

For ``linf`` the ball is a box: projecting onto it is an elementwise clip and the
steepest-ascent direction is ``sign(g)``, whatever the scope (the max over a larger set is
<= eps iff every entry is). The scope still matters for ``random_ball(dist="gaussian")``,
which rescales by the max over the scope.

All functions are pure, take ``eps`` as a Python float or a (traced) scalar array, and
work under ``jax.jit`` and ``jax.vmap``.
"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, Scalar

from robustjax.types import Emb

NORMS = ("l2", "linf")
SCOPES = ("row", "example", "batch")
DISTS = ("uniform", "sphere", "gaussian")


def check_norm_scope(norm: str, scope: str, *, where: str) -> None:
    """Raises ValueError for an unknown ``norm`` or ``scope``."""
    if norm not in NORMS:
        raise ValueError(f"{where}: norm={norm!r} is unknown; expected one of {NORMS}.")
    if scope not in SCOPES:
        raise ValueError(f"{where}: scope={scope!r} is unknown; expected one of {SCOPES}.")


def _leaves(tree: Emb, where: str) -> tuple[list, object]:
    leaves, treedef = jax.tree.flatten(tree)
    for x in leaves:
        if jnp.ndim(x) < 1:
            raise ValueError(
                f"{where}: every leaf needs a leading batch axis; got a scalar "
                f"in a tree of shapes {jax.tree.map(jnp.shape, tree)}."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"{where}: perturbations must be floating point; got dtype "
                f"{x.dtype} in a tree of dtypes {jax.tree.map(jnp.dtype, tree)}; "
                f"perturb embeddings, not ids."
            )
    return leaves, treedef


def _acc_dtype(leaves):
    """Dtype for joint reductions: the widest leaf float (float32 on a 16-bit tie).

    Chosen by hand rather than ``jnp.promote_types`` so that mixed precision trees work
    under ``jax.numpy_dtype_promotion("strict")``; results are cast back per leaf.
    """
    dtypes = {jnp.dtype(x.dtype) for x in leaves}
    if len(dtypes) == 1:
        return dtypes.pop()
    widest = max(d.itemsize for d in dtypes)
    wide = [d for d in dtypes if d.itemsize == widest]
    return wide[0] if len(wide) == 1 else jnp.dtype(jnp.float32)


def _reduce(leaves, scope: str, leaf_fn, combine, where: str) -> list[Array]:
    """Per-leaf reduction over the scope, returned with the rank of each leaf.

    ``leaf_fn(x, axis, keepdims)`` reduces one leaf (sum of squares or max abs) and
    ``combine`` joins leaves (add or maximum). The outputs broadcast against their leaves.
    """
    if scope == "row":
        return [leaf_fn(x, axis=-1 if x.ndim >= 2 else (), keepdims=True) for x in leaves]
    dtype = _acc_dtype(leaves)
    if scope == "example":
        batch = {x.shape[0] for x in leaves}
        if len(batch) != 1:
            raise ValueError(
                f"{where}: scope='example' needs one batch size for all "
                f"perturbed names; got shapes {[x.shape for x in leaves]}."
            )
        per = [
            leaf_fn(x, axis=tuple(range(1, x.ndim)), keepdims=False).astype(dtype) for x in leaves
        ]
    else:  # batch
        per = [leaf_fn(x, axis=None, keepdims=False).astype(dtype) for x in leaves]
    total = functools.reduce(combine, per)
    return [
        jnp.reshape(total, total.shape + (1,) * (x.ndim - total.ndim)).astype(x.dtype)
        for x in leaves
    ]


def _sumsq(x, axis, keepdims):
    if axis == -1 and x.ndim >= 2 and x.shape[-1] <= 8:
        # short rows: an unrolled sum fuses with its neighbours (a reduction over a
        # length-k axis would be its own, slow, kernel on CPU)
        total = sum(jnp.square(x[..., j]) for j in range(x.shape[-1]))
        return total[..., None] if keepdims else total
    return jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims)


def _maxabs(x, axis, keepdims):
    if axis == -1 and x.ndim >= 2 and x.shape[-1] <= 8:  # unrolled, as in _sumsq
        total = functools.reduce(jnp.maximum, [jnp.abs(x[..., j]) for j in range(x.shape[-1])])
        return total[..., None] if keepdims else total
    return jnp.max(jnp.abs(x), axis=axis, keepdims=keepdims)


def _scaled_l2(leaves, scope: str, where: str):
    """L2 norms without the overflow or underflow of squaring: per scope unit the max-abs
    entry ``m``, the leaves divided by it, and the norm ``s`` of those (``1 <= s <=
    sqrt(d)`` where ``m > 0``), so that ``||x|| = m * s``. Squaring a float32 gradient
    with entries of 1e-20 gives 0 and with entries of 1e20 gives inf; ``x / m`` does
    neither. Units with ``m = 0`` give zeros and ``s = 0``."""
    ms = _reduce(leaves, scope, _maxabs, jnp.maximum, where)
    scaled = [
        jnp.where(m > 0, x / jnp.where(m > 0, m, jnp.ones_like(m)), jnp.zeros_like(x))
        for x, m in zip(leaves, ms, strict=True)
    ]
    ss = [_safe_sqrt(t) for t in _reduce(scaled, scope, _sumsq, jnp.add, where)]
    return ms, scaled, ss


def _safe_sqrt(s: Array) -> Array:
    # Double-where keeps the gradient finite at 0 (sqrt'(0) is inf).
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, jnp.ones_like(s))), jnp.zeros_like(s))


def norms(tree: Emb, *, norm: str, scope: str) -> list[Array]:
    """Norms of ``tree`` over ``scope``, one array per leaf (in ``jax.tree.leaves`` order),
    each with the leaf's rank so it broadcasts against it (e.g. ``[B, 1]`` for a ``[B, D]``
    row norm, ``[B, 1, 1]`` for an example norm of a ``[B, N, D]`` leaf)."""
    check_norm_scope(norm, scope, where="norms")
    leaves, _ = _leaves(tree, "norms")
    if norm == "l2":
        ms, _, ss = _scaled_l2(leaves, scope, "norms")
        return [m * n for m, n in zip(ms, ss, strict=True)]
    return _reduce(leaves, scope, _maxabs, jnp.maximum, "norms")


def _cast(eps, x):
    return jnp.asarray(eps).astype(x.dtype)


def project(delta: Emb, eps: float | Scalar, *, norm: str = "l2", scope: str = "row") -> Emb:
    """Euclidean projection of ``delta`` onto the ``eps`` ball of ``norm`` over ``scope``.

    L2: ``delta * min(1, eps / ||delta||)`` per scope unit (rows, examples or the batch),
    with the norm taken scale-safely (no overflow or underflow for any finite ``delta``).
    Linf: ``clip(delta, -eps, eps)`` elementwise; the scope does not matter (see module doc).

    Args:
      delta: ``{name: [B, ...]}`` perturbation.
      eps: radius ``>= 0`` (Python float or traced scalar).
      norm: ``"l2"`` or ``"linf"``.
      scope: ``"row"``, ``"example"`` or ``"batch"``.

    Returns:
      A tree like ``delta`` inside the ball; ``eps = 0`` gives exact zeros.
    """
    check_norm_scope(norm, scope, where="project")
    leaves, treedef = _leaves(delta, "project")
    if norm == "linf":
        out = [jnp.clip(x, -_cast(eps, x), _cast(eps, x)) for x in leaves]
    else:
        ms, _, ss = _scaled_l2(leaves, scope, "project")
        out = []
        for x, m, n in zip(leaves, ms, ss, strict=True):
            # eps / ||x|| as (eps / m) / s: neither factor overflows for finite x
            ratio = (_cast(eps, x) / jnp.where(m > 0, m, jnp.ones_like(m))) / jnp.maximum(
                n, jnp.ones_like(n)
            )
            out.append(x * jnp.where(m > 0, jnp.minimum(jnp.ones_like(n), ratio), 1))
    return jax.tree.unflatten(treedef, out)


def _tiny(x):
    return jnp.asarray(jnp.finfo(x.dtype).tiny, x.dtype)


def normalize(g: Emb, *, norm: str = "l2", scope: str = "row") -> Emb:
    """Unit-norm steepest-ascent direction for the gradient ``g``.

    ``argmax_{||v|| <= 1} <g, v>`` per scope unit: ``g / ||g||`` for L2 (a zero gradient
    gives a zero direction, not NaN) and ``sign(g)`` for Linf (any scope). The L2
    direction is computed as ``(g / m) / ||g / m||`` with ``m`` the unit's max-abs entry,
    so it has norm 1 (to rounding) for every finite gradient, from 1e-30 to 1e30, where
    ``g / ||g||`` underflows or overflows in float32 and bfloat16.
    """
    check_norm_scope(norm, scope, where="normalize")
    leaves, treedef = _leaves(g, "normalize")
    if norm == "linf":
        out = [jnp.sign(x) for x in leaves]
    else:
        _, scaled, ss = _scaled_l2(leaves, scope, "normalize")
        out = [t / jnp.maximum(n, jnp.ones_like(n)) for t, n in zip(scaled, ss, strict=True)]
    return jax.tree.unflatten(treedef, out)


def _dims(leaves, scope: str) -> list[int]:
    """Number of coordinates in each leaf's scope unit (the ball's dimension)."""
    if scope == "row":
        return [x.shape[-1] if x.ndim >= 2 else 1 for x in leaves]
    if scope == "example":
        d = sum(math.prod(x.shape[1:]) for x in leaves)
    else:
        d = sum(math.prod(x.shape) for x in leaves)
    return [d] * len(leaves)


def _draw(key, leaves, kind: str) -> list[Array]:
    """One random draw for all leaves (a single RNG call keeps the compiled graph small)."""
    dtype = _acc_dtype(leaves)
    sizes = [math.prod(x.shape) for x in leaves]
    shape = (sum(sizes),)
    if kind == "normal":
        flat = jax.random.normal(key, shape, dtype)
    elif kind == "uniform":
        flat = jax.random.uniform(key, shape, dtype, -1.0, 1.0)
    else:
        flat = jax.random.rademacher(key, shape, dtype)
    parts = jnp.split(flat, list(itertools.accumulate(sizes))[:-1]) if len(sizes) > 1 else [flat]
    return [p.reshape(x.shape).astype(x.dtype) for p, x in zip(parts, leaves)]


def _unit_uniform(key, leaves, scope: str) -> list[Array]:
    """One U(0, 1) draw per scope unit, broadcastable against each leaf."""
    if scope == "row":
        rows = [jnp.zeros(x.shape[:-1] + (1,) if x.ndim >= 2 else x.shape, x.dtype) for x in leaves]
        return [(v + 1.0) / 2.0 for v in _draw(key, rows, "uniform")]
    dtype = _acc_dtype(leaves)
    shape = (leaves[0].shape[0],) if scope == "example" else ()
    u = jax.random.uniform(key, shape, dtype)
    return [jnp.reshape(u, shape + (1,) * (x.ndim - len(shape))).astype(x.dtype) for x in leaves]


def random_ball(
    key: PRNGKeyArray,
    like: Emb,
    eps: float | Scalar,
    *,
    norm: str = "l2",
    scope: str = "row",
    dist: str = "uniform",
) -> Emb:
    """Random perturbations shaped like ``like`` in (or on) the ``eps`` ball.

    ``dist`` (per scope unit: each row, each example, or the whole batch):

    * ``"uniform"``: uniform inside the ball. L2: a Gaussian direction scaled to radius
      ``eps * u**(1/d)``, ``u ~ U(0, 1)``, ``d`` the unit's number of coordinates.
      Linf: ``U(-eps, eps)`` per entry.
    * ``"sphere"``: on the sphere (norm exactly ``eps``). L2: uniform on the sphere
      (normalised Gaussian). Linf: random vertices ``eps * (+-1)`` (Rademacher).
    * ``"gaussian"``: ``z ~ N(0, I)`` rescaled so its norm is exactly ``eps``, i.e.
      ``eps * z / ||z||``. For L2 this equals ``"sphere"`` in distribution; for Linf it is
      ``eps * z / max|z|`` with the max over the scope unit, so the scope matters.

    Args:
      key: PRNG key (consumed).
      like: ``{name: [B, ...]}`` tree giving shapes and dtypes (values unused).
      eps: radius ``>= 0``, Python float or traced scalar.

    Returns:
      A tree like ``like``; every unit has norm ``<= eps`` (``== eps`` for sphere/gaussian).
    """
    check_norm_scope(norm, scope, where="random_ball")
    if dist not in DISTS:
        raise ValueError(f"random_ball: dist={dist!r} is unknown; expected one of {DISTS}.")
    leaves, treedef = _leaves(like, "random_ball")
    k_dir, k_rad = jax.random.split(key)
    if norm == "linf" and dist == "uniform":
        out = [v * _cast(eps, v) for v in _draw(k_dir, leaves, "uniform")]
    elif norm == "linf" and dist == "sphere":
        out = [v * _cast(eps, v) for v in _draw(k_dir, leaves, "rademacher")]
    else:
        z = _draw(k_dir, leaves, "normal")
        zt = jax.tree.unflatten(treedef, z)
        unit = (
            jax.tree.leaves(normalize(zt, norm="l2", scope=scope))
            if norm == "l2"
            else [
                x / jnp.maximum(m, _tiny(x)) for x, m in zip(z, norms(zt, norm="linf", scope=scope))
            ]
        )
        if dist == "uniform":  # l2 only here
            us = _unit_uniform(k_rad, leaves, scope)
            unit = [v * u ** (1.0 / d) for v, u, d in zip(unit, us, _dims(leaves, scope))]
        out = [v * _cast(eps, v) for v in unit]
    return jax.tree.unflatten(treedef, out)


__all__ = ["DISTS", "NORMS", "SCOPES", "normalize", "norms", "project", "random_ball"]
