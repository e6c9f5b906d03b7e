import dataclasses

import pytest

from robustjax.attacks import AttackConfig


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"eps": -0.1}, "AttackConfig.eps .*eps=-0.1"),
        ({"eps": float("nan")}, "AttackConfig.eps"),
        ({"num_steps": 0}, "AttackConfig.num_steps .*num_steps=0"),
        ({"norm": "l1"}, "AttackConfig.norm .*norm='l1'"),
        ({"scope": "rows"}, "AttackConfig.scope .*scope='rows'"),
        ({"kind": "cw"}, "AttackConfig.kind .*kind='cw'"),
        ({"step_size": 0.0}, "AttackConfig.step_size"),
        ({"targets": ()}, "AttackConfig.targets"),
        ({"targets": ("user", "user")}, "AttackConfig.targets"),
    ],
)
def test_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttackConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_steps": 2.0}, "num_steps"),
        ({"targets": "user"}, "targets"),
        ({"random_start": 1}, "random_start"),
        ({"eps": "0.5"}, "eps"),
    ],
)
def test_bad_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        AttackConfig(**kwargs)


def test_defaults_and_frozen():
    cfg = AttackConfig()
    assert (
        cfg.kind,
        cfg.eps,
        cfg.step_size,
        cfg.num_steps,
        cfg.norm,
        cfg.scope,
        cfg.random_start,
        cfg.targets,
    ) == ("pgd", 0.5, None, 10, "l2", "row", False, ("user", "pos", "neg"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.eps = 1.0
    assert AttackConfig(targets=["user"]).targets == ("user",)
