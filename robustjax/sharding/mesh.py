"""The device mesh and its partition rules: the only module that names mesh axes.

The mesh has two axes, ``("data", "model")``, both ``AxisType.Auto`` (XLA's sharding
propagation places the intermediates, so model code needs no ``out_sharding=``):

- **Embedding tables** (every ``nnx.Embed`` ``embedding`` leaf, ``[rows, D]``) are
  row-sharded, ``P("model", None)``, and so are the optimizer moments shaped like them.
  Rule for uneven tables: a table whose row count is not divisible by the ``model`` size
  stays **replicated** (JAX arrays cannot be split unevenly; padding rows would change
  ``score_all``'s width and every checkpoint). :func:`layout` lists what each leaf got.
  Every other parameter (MLP kernels, biases, positions) is replicated.
- **Batches and users** are split over ``data`` (:func:`shard_batch`; an axis whose size
  is not divisible by the ``data`` size stays replicated).
- **Scores** ``[B, I]`` of full-ranking evaluation and sweeps are split users over
  ``data`` and items over ``model`` (:func:`shard_scores`).

A mesh of one device is the default and changes nothing: every helper returns its input
unchanged for it (same arrays, same compiled programs). Results on a larger mesh equal the
one-device run up to float summation order.

Multi-host: :func:`initialize_distributed` (``jax.distributed.initialize``) before any
other JAX call; the mesh then spans every process's devices and the helpers build global
arrays from the host values, which every process must hold identically (they do: every
host prepares the same data with the same seeds).

Running (``train.mesh`` in the config, ``--mesh`` for sweeps)::

    ROBUSTJAX_CPU_DEVICES=4 robustjax train --experiment bpr-mf --tiny \
        --set train.mesh=data=2,model=2 --out runs/mesh
    robustjax sweep --checkpoint runs/mesh --attack pgd --eps 0:1:8 --mesh model=4 ...
    # two hosts (or processes), each with 2 devices; every process runs:
    ROBUSTJAX_CPU_DEVICES=2 robustjax train ... --set train.mesh=data=2,model=2 \
        --coordinator HOST0:12355 --num-processes 2 --process-id I --out runs/host_I
    # (or ROBUSTJAX_COORDINATOR / ROBUSTJAX_NUM_PROCESSES / ROBUSTJAX_PROCESS_ID)
"""

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

_DATA = "data"
_MODEL = "model"
AXES = (_DATA, _MODEL)
TABLE_LEAF = "embedding"  # the parameter name of nnx.Embed tables
CPU_DEVICES_ENV = "ROBUSTJAX_CPU_DEVICES"
_MESH_RE = re.compile(r"^\s*(data|model)\s*=\s*(\d+)\s*$")


# ------------------------------------------------------------------------------ the mesh


def parse_mesh(text: str, *, key: str = "mesh") -> dict[str, int]:
    """``"data=2,model=2"`` -> ``{"data": 2, "model": 2}`` (a missing axis is 1).

    Raises:
      ValueError: naming ``key``, the bad text and the expected form.
    """
    if not isinstance(text, str):
        raise TypeError(f"{key} must be a string like 'data=2,model=2', got {text!r}.")
    sizes = {_DATA: 1, _MODEL: 1}
    seen = set()
    for part in filter(str.strip, text.split(",")):
        m = _MESH_RE.match(part)
        if m is None or m.group(1) in seen or int(m.group(2)) < 1:
            raise ValueError(
                f"{key}={text!r}: expected comma-separated 'axis=size' with axes {AXES}, "
                "each at most once and sizes >= 1, e.g. 'data=2,model=2' or 'model=4'."
            )
        seen.add(m.group(1))
        sizes[m.group(1)] = int(m.group(2))
    return sizes


def make_mesh(data: int = 1, model: int = 1) -> Mesh:
    """A ``("data", "model")`` mesh of ``data * model`` devices (all processes' devices
    with :func:`initialize_distributed`; the first ``data * model`` on one host).

    Raises:
      ValueError: the mesh needs more devices than there are (with the fix).
    """
    for name, size in ((_DATA, data), (_MODEL, model)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"make_mesh: {name}={size!r} must be an integer >= 1.")
    n = data * model
    available = jax.device_count()
    procs = jax.process_count()
    if n > available or (procs > 1 and n != available):
        raise ValueError(
            f"make_mesh: data={data} x model={model} needs {n} devices, but JAX sees "
            f"{available} ({procs} process(es), backend {jax.default_backend()!r})"
            + ("; a multi-process mesh must use every device" if procs > 1 else "")
            + f". On CPU, set {CPU_DEVICES_ENV}={n} (or XLA_FLAGS=--xla_force_host_"
            f"platform_device_count={n}) before JAX starts."
        )
    devices = jax.devices()[:n]
    return jax.make_mesh(
        (data, model), AXES, axis_types=(AxisType.Auto, AxisType.Auto), devices=devices
    )


def mesh_from_string(text: str, *, key: str = "mesh") -> Mesh:
    """:func:`make_mesh` from ``"data=2,model=2"`` (see :func:`parse_mesh`); errors name
    ``key``."""
    sizes = parse_mesh(text, key=key)
    try:
        return make_mesh(**sizes)
    except ValueError as e:
        raise ValueError(f"{key}={text!r}: {e}") from None


def mesh_sizes(mesh: Mesh) -> dict[str, int]:
    """``{"data": d, "model": m}`` of a mesh built here."""
    return {a: int(mesh.shape[a]) for a in AXES}


def is_trivial(mesh: Mesh | None) -> bool:
    """True for no mesh or a one-device mesh: the helpers then change nothing."""
    return mesh is None or mesh.devices.size == 1


# --------------------------------------------------------------------------- rules


def _leaf_names(path) -> list[str]:
    """Each entry of a tree path as its key, attribute name or index."""
    return [jax.tree_util.keystr((k,), simple=True) for k in path]


def _is_table(path, leaf) -> bool:
    names = _leaf_names(path)
    # nnx.State paths end in [..., "embedding"] (or [..., "embedding", "value"])
    tail = names[-2:] if names and names[-1] == "value" else names[-1:]
    return np.ndim(leaf) == 2 and TABLE_LEAF in tail


def param_spec(path, leaf, mesh: Mesh) -> P:
    """The partition rule of one parameter (or optimizer-state) leaf; see the module doc."""
    model = int(mesh.shape[_MODEL])
    if _is_table(path, leaf) and np.shape(leaf)[0] % model == 0:
        return P(_MODEL)  # = P("model", None); jit returns this normalised form
    return P()


def param_shardings(tree: Any, mesh: Mesh) -> Any:
    """A tree of ``NamedSharding``: :func:`param_spec` of every leaf of ``tree`` (params,
    optimizer state or a whole ``TrainState``: the rule goes by the leaf's path)."""
    return jax.tree_util.tree_map_with_path(
        lambda p, x: NamedSharding(mesh, param_spec(p, x, mesh)), tree
    )


def layout(tree: Any, mesh: Mesh) -> dict[str, str]:
    """``{leaf path: partition spec}`` of :func:`param_shardings` (tables only), for logs
    and to check which tables the uneven-row rule left replicated."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(n for n in _leaf_names(p) if n != "value"): str(param_spec(p, x, mesh))
        for p, x in flat
        if _is_table(p, x)
    }


def _batch_spec(shape, axis: int, mesh: Mesh) -> P:
    if not shape:
        return P()
    axis = axis % len(shape)
    if shape[axis] % int(mesh.shape[_DATA]):
        return P()
    return P(*([None] * axis), _DATA)


# ---------------------------------------------------------------------------- placement


def _put(x, sharding: NamedSharding):
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x  # already placed: no copy, no transfer
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    # multi-host: every process holds the same host value and contributes its shards
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def _place(tree, shardings):
    return jax.tree.map(_put, tree, shardings)


def shard_params(tree: Any, mesh: Mesh | None) -> Any:
    """Places parameters (or optimizer state, or a whole ``TrainState``) by the partition
    rules: tables row-sharded over ``model``, the rest replicated. Unchanged for a
    one-device mesh."""
    if is_trivial(mesh):
        return tree
    return _place(tree, param_shardings(tree, mesh))


def shard_batch(tree: Any, mesh: Mesh | None, *, axis: int = 0) -> Any:
    """Splits axis ``axis`` of every leaf over ``data`` (``perm [S, B]`` of an epoch:
    ``axis=1``); a leaf whose axis is not divisible by the ``data`` size is replicated.
    Unchanged for a one-device mesh."""
    if is_trivial(mesh):
        return tree
    return jax.tree.map(
        lambda x: _put(x, NamedSharding(mesh, _batch_spec(np.shape(x), axis, mesh))), tree
    )


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Copies every leaf to every device of the mesh (lookup tables of the data, keys).
    Unchanged for a one-device mesh."""
    if is_trivial(mesh):
        return tree
    return jax.tree.map(lambda x: _put(x, NamedSharding(mesh, P())), tree)


def constrain_scores(scores: jax.Array, mesh: Mesh) -> jax.Array:
    """Inside a jitted function: ``[B, I]`` scores split users over ``data`` and items
    over ``model`` (an axis that does not divide evenly is left to XLA)."""
    b, i = scores.shape[-2:]
    lead = [None] * (scores.ndim - 2)
    spec = P(
        *lead,
        _DATA if b % int(mesh.shape[_DATA]) == 0 else None,
        _MODEL if i % int(mesh.shape[_MODEL]) == 0 else None,
    )
    return jax.lax.with_sharding_constraint(scores, NamedSharding(mesh, spec))


def shard_scores(score_fn: Callable, mesh: Mesh | None) -> Callable:
    """``score_fn(params, users) -> [B, I]`` whose scores are split over the mesh
    (:func:`constrain_scores`): what full-ranking evaluation and sweeps pass as their
    scoring function. Build it once per mesh: it is a static argument of the jitted
    evaluation steps, so a new wrapper compiles anew. Unchanged for a one-device mesh."""
    if is_trivial(mesh):
        return score_fn

    def scores(params, users):
        return constrain_scores(score_fn(params, users), mesh)

    scores.__name__ = getattr(score_fn, "__name__", "score_all")
    return scores


def gather(tree: Any) -> Any:
    """Host NumPy copies of (possibly multi-host) global arrays: every process gets the
    whole value (``process_allgather`` when some shards live on other processes; every
    process must then call it, as for any collective). One process: ``jax.device_get``."""
    leaves = jax.tree.leaves(tree)
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in leaves):
        return jax.device_get(tree)

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


# ------------------------------------------------------------------- processes, devices


def force_cpu_devices(count: int | str | None = None) -> int | None:
    """Makes the CPU backend expose ``count`` devices (default: ``$ROBUSTJAX_CPU_DEVICES``;
    unset or empty: no change). Must run before JAX creates its backends (the CLI calls
    it first thing). Returns the count set, or None."""
    raw = os.environ.get(CPU_DEVICES_ENV, "") if count is None else count
    if raw in ("", None):
        return None
    try:
        n = int(raw)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ValueError(f"{CPU_DEVICES_ENV}={raw!r}: expected an integer >= 1 (e.g. 4).")
    jax.config.update("jax_num_cpu_devices", n)
    return n


def initialize_distributed(
    coordinator: str,
    num_processes: int,
    process_id: int,
    *,
    local_devices: int | None = None,
    cpu_collectives: str = "gloo",
) -> None:
    """Joins a multi-process JAX run (``jax.distributed.initialize``); call it before any
    other JAX call, in every process, with the same ``coordinator`` (``host:port`` of
    process 0) and ``num_processes``.

    Args:
      coordinator: ``"host:port"``, reachable from every process.
      num_processes: the number of processes (hosts).
      process_id: this process, in ``[0, num_processes)``.
      local_devices: CPU only: devices per process (``jax_num_cpu_devices``).
      cpu_collectives: the CPU cross-process collectives (``"gloo"``; ``"mpi"``).
    """
    if not isinstance(coordinator, str) or ":" not in coordinator:
        raise ValueError(
            f"initialize_distributed: coordinator={coordinator!r} must be 'host:port' "
            "(process 0's address, e.g. 'localhost:12355')."
        )
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(
            f"initialize_distributed: num_processes={num_processes!r} must be an integer >= 1."
        )
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise ValueError(
            f"initialize_distributed: process_id={process_id!r} must lie in "
            f"[0, {num_processes}) (num_processes={num_processes})."
        )
    if local_devices is not None:
        force_cpu_devices(local_devices)
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )


DISTRIBUTED_ENV = {
    "coordinator": "ROBUSTJAX_COORDINATOR",
    "num_processes": "ROBUSTJAX_NUM_PROCESSES",
    "process_id": "ROBUSTJAX_PROCESS_ID",
}


def initialize_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """:func:`initialize_distributed` from ``ROBUSTJAX_COORDINATOR``,
    ``ROBUSTJAX_NUM_PROCESSES`` and ``ROBUSTJAX_PROCESS_ID`` (all three, or none: then
    nothing happens and it returns False)."""
    env = os.environ if environ is None else environ
    values = {k: env.get(v, "") for k, v in DISTRIBUTED_ENV.items()}
    if not any(values.values()):
        return False
    missing = [DISTRIBUTED_ENV[k] for k, v in values.items() if not v]
    if missing:
        raise ValueError(
            f"multi-process run: {', '.join(missing)} not set; set all of "
            f"{', '.join(DISTRIBUTED_ENV.values())} (or none)."
        )
    ints = {}
    for k in ("num_processes", "process_id"):
        try:
            ints[k] = int(values[k])
        except ValueError:
            raise ValueError(f"{DISTRIBUTED_ENV[k]}={values[k]!r}: expected an integer.") from None
    initialize_distributed(values["coordinator"], **ints)
    return True
