import pytest

from dqn_tf.config import ConfigError, TrainConfig, parse_config


def test_defaults_are_rl_zoo_cartpole():
    config = TrainConfig()
    assert (config.env_id, config.learning_rate, config.batch_size, config.train_freq) == (
        "CartPole-v1", 2.3e-3, 64, 256)
    assert (config.gradient_steps, config.target_update_interval, config.net_arch) == (128, 10, "auto")


def test_round_trip_through_plain_data():
    config = TrainConfig.from_dict({"net_arch": [64, 64], "dueling": True, "devices": ["/cpu:0"]})
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["net_arch"] == [64, 64]


def test_yaml_style_strings_are_converted():
    assert TrainConfig.from_dict({"learning_rate": "1e-3"}).learning_rate == 1e-3


@pytest.mark.parametrize(
    "values, fragments",
    [
        ({"learning_rat": 1e-3}, ["learning_rat", "unknown field", "did you mean 'learning_rate'", "Allowed fields"]),
        ({"learning_rate": -1}, ["learning_rate = -1", "greater than 0"]),
        ({"gamma": 1.5}, ["gamma = 1.5", "less than or equal to 1"]),
        ({"batch_size": "big"}, ["batch_size = 'big'", "valid integer"]),
        ({"batch_size": 0}, ["batch_size = 0", "greater than or equal to 1"]),
        ({"net_arch": [64, 0]}, ["net_arch = [64, 0]", "positive integer"]),
        ({"env_id": "CartPole-v9"}, ["env_id = 'CartPole-v9'", "not a registered", "CartPole-v1"]),
        ({"devices": "tpu:1"}, ["devices = 'tpu:1'", "'cpu:N'"]),
        ({"devices": ["/cpu:0", "nope"]}, ["devices", "allowed"]),
        ({"double_dqn": "maybe"}, ["double_dqn = 'maybe'", "valid boolean"]),
        ({"tau": 0}, ["tau = 0", "greater than 0"]),
        ({"exploration_initial_eps": 0.1, "exploration_final_eps": 0.5},
         ["exploration_final_eps = 0.5", "exploration_initial_eps = 0.1"]),
    ],
)
def test_bad_values_name_field_value_and_allowed(values, fragments):
    with pytest.raises(ConfigError) as error:
        parse_config(values)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        parse_config({"gamma": 2, "seed": -1})
    assert "gamma = 2" in str(error.value) and "seed = -1" in str(error.value)
