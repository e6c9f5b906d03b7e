"""Session-wide JAX settings for the tests; pytest imports this before any test module.

XLA compilation dominates the suite's time on CPU (the programs are small and run fast).
Two settings cut it:

- ``jax_disable_most_optimizations``: XLA compiles without its expensive passes, about a
  third faster, and the tiny programs run no slower. Every test passes either way (results
  differ from the optimised build by float rounding only); a test whose numerics need the
  optimised build, or whose running time dominates, opts out with
  ``@pytest.mark.xla_optimized``. ``JAX_DISABLE_MOST_OPTIMIZATIONS=0`` turns them all on.
- a persistent compilation cache (``.jax_cache/`` at the repository root, git-ignored;
  ``ROBUSTJAX_TEST_JAX_CACHE=DIR`` moves it, an empty value turns it off). A warm cache
  only skips the XLA compile of an unchanged program: tracing, lowering and every check
  still run, and a changed program (or changed compiler options) gets a new cache key.
  Entries are never evicted (a full run adds about 25 MB): delete the folder to reclaim it.
"""

import os

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.environ.get("ROBUSTJAX_TEST_JAX_CACHE", os.path.join(ROOT, ".jax_cache"))

# Four virtual CPU devices, so that the sharded code (robustjax.sharding; tests/sharding runs
# training, evaluation and sweeps on meshes of 4 devices) is tested on CPU. Tests that do not
# build a mesh use the first device only.
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_rank_promotion", "raise")
if CACHE_DIR:
    jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    # Cache every executable, however quick to compile or small: most of ours are both.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
FAST_COMPILE = os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS", "1").lower() not in ("0", "false")
jax.config.update("jax_disable_most_optimizations", FAST_COMPILE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Compiles the tests marked ``xla_optimized`` (setup, call and teardown) with XLA's
    optimisations on. In-memory executables are dropped on the way in and out, so that no
    jitted function reuses a program compiled under the other setting."""
    if item.get_closest_marker("xla_optimized") is None:
        return (yield)
    jax.clear_caches()
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        return (yield)
    finally:
        jax.config.update("jax_disable_most_optimizations", FAST_COMPILE)
        jax.clear_caches()


SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))


@pytest.fixture
def shared_data():
    if not os.path.isdir(SHARED):
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture
def strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield
