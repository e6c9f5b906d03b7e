import os

# Sharding is exercised on CPU with several virtual devices; must be set before jax starts.
os.environ.setdefault("XLA_FLAGS", "")
import jax
import pytest

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_rank_promotion", "raise")

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture
def shared_data():
    if not os.path.isdir(SHARED):
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture
def strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield
