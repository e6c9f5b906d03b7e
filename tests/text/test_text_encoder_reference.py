"""robustjax.text's all-MiniLM-L6-v2 against sentence-transformers' vectors for the same
sentences (tests/text/data/minilm_reference.json, written by
benchmarks/text_reference_vectors.py)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

text = pytest.importorskip("robustjax.text")
pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "minilm_reference.json")


@pytest.fixture(scope="module")
def minilm():
    try:
        return text.load_checkpoint("all-minilm-l6-v2")
    except ImportError as e:
        pytest.skip(f"packaged model not installed: {e}")


def test_minilm_matches_sentence_transformers(minilm):
    with open(REFERENCE) as f:
        ref = json.load(f)
    assert ref["model_sha256"] == minilm.sha256
    assert minilm.config.hidden == 384 and minilm.config.num_layers == 6
    max_len = ref["max_seq_length"]
    tokens = text.tokenize(minilm, ref["sentences"], max_len=max_len)
    # the same token counts as the Hugging Face tokenizer (the long sentence is truncated)
    np.testing.assert_array_equal(tokens.mask.sum(axis=1), ref["num_tokens"])
    assert max(ref["num_tokens"]) == max_len

    got = np.asarray(
        text.encoder_from_checkpoint(minilm)(jnp.asarray(tokens.ids), jnp.asarray(tokens.mask))
    )
    want = np.asarray(ref["vectors"], np.float32)
    assert got.shape == want.shape == (len(ref["sentences"]), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(got * want, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.9999, dict(zip(ref["sentences"], cosine.tolist(), strict=True))
    np.testing.assert_allclose(got, want, atol=2e-5)
