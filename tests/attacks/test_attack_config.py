import pytest

from robustjax.attacks import AttackConfig


@pytest.mark.parametrize("kwargs,match", [
    (dict(eps=-0.1), "AttackConfig.eps .*eps=-0.1"),
    (dict(eps=float("nan")), "AttackConfig.eps"),
    (dict(num_steps=0), "AttackConfig.num_steps .*num_steps=0"),
    (dict(norm="l1"), "AttackConfig.norm .*norm='l1'"),
    (dict(scope="rows"), "AttackConfig.scope .*scope='rows'"),
    (dict(kind="cw"), "AttackConfig.kind .*kind='cw'"),
    (dict(step_size=0.0), "AttackConfig.step_size"),
    (dict(targets=()), "AttackConfig.targets"),
    (dict(targets=("user", "user")), "AttackConfig.targets"),
])
def test_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttackConfig(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_steps=2.0), "num_steps"), (dict(targets="user"), "targets"),
    (dict(random_start=1), "random_start"), (dict(eps="0.5"), "eps"),
])
def test_bad_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        AttackConfig(**kwargs)


def test_defaults_and_frozen():
    cfg = AttackConfig()
    assert (cfg.kind, cfg.eps, cfg.step_size, cfg.num_steps, cfg.norm, cfg.scope,
            cfg.random_start, cfg.targets) == ("pgd", 0.5, None, 10, "l2", "row", False,
                                               ("user", "pos", "neg"))
    with pytest.raises(Exception):
        cfg.eps = 1.0  # noqa: B003
    assert AttackConfig(targets=["user"]).targets == ("user",)
