"""AlgoConfig: MAPPO.md's defaults, and mistakes that name the field and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="needs torch: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.algo import ActionSpec, AlgoConfig
from swarm_contract.config import ConfigError, apply_overrides, from_dict, to_dict


def test_defaults_follow_the_hyperparameter_table():
    cfg = AlgoConfig()
    table = {
        "clip_coef": 0.2,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "value_coef": 0.5,
        "entropy_coef": 0.01,
        "max_grad_norm": 0.5,
        "actor_lr": 3e-4,
        "critic_lr": 3e-4,
        "epochs": 10,
    }
    assert {key: getattr(cfg, key) for key in table} == table
    assert cfg.hidden_sizes == [256, 256] and cfg.layer_norm


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("gamma=1.5", "algo.gamma=1.5"),
        ("gae_lambda=-0.1", "algo.gae_lambda=-0.1"),
        ("clip_coef=0", "algo.clip_coef=0.0"),
        ("entropy_coef=-0.01", "algo.entropy_coef=-0.01"),
        ("value_clip=-1", "algo.value_clip=-1.0"),
        ("huber_delta=0", "algo.huber_delta=0.0"),
        ("std_decay=2.0", "algo.std_decay=2.0"),
        ("epochs=0", "algo.epochs=0"),
        ("num_minibatches=0", "algo.num_minibatches=0"),
        ("hidden_sizes=[]", "algo.hidden_sizes=[]"),
        ("hidden_sizes=[64, 0]", "algo.hidden_sizes=[64, 0]"),
        ("agent_id=index", "algo.agent_id"),
        ("critic_input=global", "algo.critic_input"),
        ("value_norm=maybe", "algo.value_norm"),
        ("lr=1e-3", "algo.lr"),
    ],
)
def test_a_bad_value_is_refused_and_named(override, named):
    data = apply_overrides({}, [override])
    with pytest.raises(ConfigError) as err:
        from_dict(AlgoConfig, data, "algo")
    assert named in str(err.value)


def test_a_config_built_in_code_is_checked_too():
    with pytest.raises(ConfigError, match=r"algo.agent_id='index'.*\['onehot', 'none'\]"):
        AlgoConfig(agent_id="index")
    with pytest.raises(ConfigError, match=r"algo.std_decay=2.0.*init_std=1.0"):
        AlgoConfig(std_decay=2.0)


def test_switches_can_be_turned_off_from_yaml():
    data = apply_overrides({}, ["value_clip=null", "huber_delta=null", "target_kl=0.02"])
    cfg = from_dict(AlgoConfig, data, "algo")
    assert cfg.value_clip is None and cfg.huber_delta is None and cfg.target_kl == 0.02
    assert from_dict(AlgoConfig, to_dict(cfg), "algo") == cfg


def test_action_spec_validation():
    assert ActionSpec(kind="box", dim=2).width == 2
    assert ActionSpec(kind="discrete", n=5).width == 1
    with pytest.raises(ValueError, match="dim=0"):
        ActionSpec(kind="box")
    with pytest.raises(ValueError, match="n=1"):
        ActionSpec(kind="discrete", n=1)
    with pytest.raises(ValueError, match=r"low=1.0 must be below high=-1.0"):
        ActionSpec(kind="box", dim=1, low=1.0, high=-1.0)


def test_validating_a_config_does_not_import_torch():
    code = (
        "import sys; from mappo_training.algo import AlgoConfig, RolloutBuffer; AlgoConfig();"
        " assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
