import dataclasses

import pytest

from robustjax.config import ExperimentConfig, apply_overrides, valid_keys
from robustjax.experiments import adversarial_variant, get_config, names
from robustjax.objectives import AdvConfig


def test_overrides_parse_by_type():
    cfg = get_config("bpr-mf")
    cfg = apply_overrides(
        cfg,
        [
            "train.epochs=5",
            "model.dim=16",
            "train.learning_rate=0.01",
            "eval.ks=5,10",
            "train.early_metric=ndcg@10",
            "data.path=/tmp/x",
            "data.rating_threshold=4",
            "model.use_bias=true",
        ],
    )
    assert cfg.train.epochs == 5 and cfg.model.dim == 16 and cfg.train.learning_rate == 0.01
    assert cfg.eval.ks == (5, 10) and cfg.data.path == "/tmp/x"
    assert cfg.data.rating_threshold == 4.0 and cfg.model.use_bias is True
    assert apply_overrides(cfg, ["data.rating_threshold=none"]).data.rating_threshold is None


def test_unknown_key_lists_valid_ones():
    cfg = get_config("bpr-mf")
    with pytest.raises(ValueError, match="unknown key 'train.epoch'.*train.epochs"):
        apply_overrides(cfg, ["train.epoch=3"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(cfg, ["train.epochs"])
    with pytest.raises(ValueError, match="expected int"):
        apply_overrides(cfg, ["train.epochs=many"])
    assert "train.epochs" in valid_keys(cfg)


def test_config_validation_names_the_value():
    cfg = get_config("bpr-mf")
    with pytest.raises(ValueError, match="TrainConfig.epochs must be an integer >= 1, got 0"):
        apply_overrides(cfg, ["train.epochs=0"])
    with pytest.raises(ValueError, match="early_metric='ndcg@20' is not computed"):
        apply_overrides(cfg, ["eval.ks=5,10"])
    with pytest.raises(ValueError, match="optimizer='rmsprop' is unknown"):
        apply_overrides(cfg, ["train.optimizer=rmsprop"])


def test_every_experiment_has_a_tiny_config():
    for name in names():
        cfg = get_config(name, tiny=True)
        if isinstance(cfg, ExperimentConfig):
            assert cfg.train.epochs <= 5, name
            continue
        assert cfg.tiny, name  # self-contained experiment configs: every *epochs field small
        epochs = {f: getattr(cfg, f) for f in vars(cfg) if f.endswith("epochs")}
        epochs.update({f: getattr(cfg, f) for f in vars(cfg) if f.startswith("epochs_")})
        assert all(v <= 5 for v in epochs.values() if v is not None), (name, epochs)
    with pytest.raises(ValueError, match="unknown experiment"):
        get_config("no-such-experiment")


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["adv.method=free", "train.num_negatives=4"], "train.num_negatives=4"),
        (["adv.method=free", "adv.weight=2"], "adv.weight=2.0"),
        (["adv.method=free", "adv.fraction=0.5"], "adv.fraction=0.5"),
        (["adv.method=vat", "adv.fraction=0.5"], "'vat' does not use adv.fraction=0.5"),
    ],
)
def test_options_a_method_would_ignore_are_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(get_config("bpr-mf"), overrides)
    apply_overrides(get_config("bpr-mf"), overrides[:1])  # the method alone is fine


def test_saved_config_without_sparse_updates_resumes_dense():
    """A config.json written before train.sparse_updates existed trained densely: it loads
    as "off", not as the new default "auto" (which could switch a large run to lazy Adam)."""
    import dataclasses

    from robustjax.config import TrainConfig, from_dict

    saved = dataclasses.asdict(TrainConfig())
    del saved["sparse_updates"]
    assert from_dict(TrainConfig, saved).sparse_updates == "off"
    assert from_dict(TrainConfig, dataclasses.asdict(TrainConfig())).sparse_updates == "auto"


def test_adversarial_variant_trains_the_base_as_its_warm_start():
    base = get_config("bpr-mf", tiny=True)
    cfg = adversarial_variant(base, AdvConfig(method="apr", eps=0.5), name="apr-x", epochs=3)
    assert cfg.name == "apr-x" and cfg.adv.method == "apr" and cfg.adv.eps == 0.5
    assert cfg.train.epochs == base.train.epochs + 3
    assert cfg.adv.warm_epochs == base.train.epochs
    assert dataclasses.replace(cfg.train, epochs=base.train.epochs) == base.train
