"""A new attack is one registry entry: config, CLI choices and sweeps pick it up."""

import jax
import jax.numpy as jnp
import pytest

from robustjax.attacks import (
    EMBEDDING_ATTACKS,
    HISTORY_ATTACKS,
    AttackConfig,
    EmbeddingAttack,
    HistoryAttack,
    apply_sequence_attack,
    make_attack,
)
from robustjax.cli.main import main
from robustjax.eval.seq_sweep import SeqSweepConfig
from robustjax.eval.sweep import SweepConfig
from robustjax.eval.sweep_engine import sweep_kinds


def _half_eps_shift(loss_fn, emb, *, eps, targets, **_):
    del loss_fn
    return {k: (jnp.full_like(v, 0.5 * eps) if k in targets else v * 0) for k, v in emb.items()}


def _drop_last(seq, budget, **_):
    return jnp.where(jnp.arange(seq.shape[1]) >= seq.shape[1] - budget, 0, seq)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(EMBEDDING_ATTACKS, "half_shift", EmbeddingAttack(_half_eps_shift))
    monkeypatch.setitem(HISTORY_ATTACKS, "drop_last", HistoryAttack(_drop_last))


def _sweep_help(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    return capsys.readouterr().out


def test_registered_attacks_reach_config_cli_and_sweeps(registered, capsys):
    emb = {"user": jnp.ones((2, 3))}
    attack = make_attack(AttackConfig(kind="half_shift", targets=("user",)), ("user",))
    delta = attack(None, emb, key=jax.random.key(0), eps=0.4)
    assert jnp.allclose(delta["user"], 0.2)
    seq = jnp.array([[0, 3, 4, 5]], jnp.int32)
    out = apply_sequence_attack("drop_last", seq, 1, num_items=9, key=jax.random.key(0))
    assert out.tolist() == [[0, 3, 4, 0]]
    assert "half_shift" in sweep_kinds("items") and "drop_last" not in sweep_kinds("items")
    assert {"half_shift", "drop_last"} <= set(sweep_kinds("sequence"))
    SweepConfig(kind="half_shift")
    assert SeqSweepConfig(kind="drop_last", levels=(0, 1)).discrete
    assert not SeqSweepConfig(kind="half_shift").discrete
    text = _sweep_help(capsys)
    assert "half_shift" in text and "drop_last" in text


def test_unregistered_names_are_rejected_everywhere(capsys):
    assert "half_shift" not in _sweep_help(capsys)
    with pytest.raises(ValueError, match="AttackConfig.kind .*half_shift"):
        AttackConfig(kind="half_shift")
    with pytest.raises(ValueError, match="SweepConfig.kind must be one of"):
        SweepConfig(kind="drop_last")  # a history attack: sequential runs only
    with pytest.raises(ValueError, match="SeqSweepConfig.kind must be one of"):
        SeqSweepConfig(kind="none")  # registered, but not offered by sweeps
    with pytest.raises(ValueError, match="kind='drop_last' is unknown"):
        apply_sequence_attack("drop_last", jnp.ones((1, 3), jnp.int32), 1, num_items=3, key=None)
