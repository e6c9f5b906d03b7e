"""Session-wide JAX settings for the tests; pytest imports this before any test module.

Compilation dominates the suite's time on CPU, so compiled executables are kept in a
persistent cache (``.jax_cache/`` at the repository root, git-ignored; override the folder
with ``ROBUSTJAX_TEST_JAX_CACHE``, or set it to an empty string to turn the cache off).
A warm cache only skips the XLA compile of an unchanged function: tracing, lowering and
every check still run, and a changed function gets a new cache key.
"""

import os

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.environ.get("ROBUSTJAX_TEST_JAX_CACHE", os.path.join(ROOT, ".jax_cache"))

# Four virtual CPU devices, so that code which shards (STYLE.md section 11) can be tested on
# CPU. No test exercises sharding yet; one device would be used by every current test.
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_rank_promotion", "raise")
if CACHE_DIR:
    jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    # Cache every executable, however quick to compile or small: most of ours are both.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

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
