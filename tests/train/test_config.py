"""TrainConfig: hashable by value, conv_impl, the field groups, and the CLI flags generated from its fields."""
import argparse
import dataclasses

import pytest

from jaxcnn.train.config import TrainConfig


def test_config_is_hashable_by_value_including_model_kwargs():
    a = TrainConfig(model="resnet20", model_kwargs={"num_filters": 8}, dataset="cifar10")
    b = TrainConfig(model="resnet20", model_kwargs={"num_filters": 8}, dataset="cifar10")
    c = a.replace(model_kwargs={"num_filters": 16})
    assert a == b and hash(a) == hash(b) and a != c
    assert len({a, b, c}) == 2


def test_conv_impl_is_validated_and_kept_out_of_model_kwargs():
    assert TrainConfig().conv_impl == "auto"
    assert TrainConfig(conv_impl="im2col").to_dict()["conv_impl"] == "im2col"
    with pytest.raises(ValueError, match="unknown conv_impl 'fast'; choose one of: xla, im2col"):
        TrainConfig(conv_impl="fast")
    with pytest.raises(ValueError, match="model_kwargs must not set conv_impl"):
        TrainConfig(model_kwargs={"conv_impl": "xla"})


def test_field_groups_are_properties_naming_real_fields():
    config, names = TrainConfig(), {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(config.resume_changeable) <= names
    assert set(config.model_and_optimizer_fields) <= names
    assert "conv_impl" in config.model_and_optimizer_fields and "seed" not in config.resume_changeable
    # Runs that differ only outside the model/optimizer fields share one key.
    a = TrainConfig(dataset="digits", batch_size=64, data_dir="x", devices=2)
    b = TrainConfig(dataset="mnist", seed=3)
    assert a.model_and_optimizer() == b.model_and_optimizer() == TrainConfig()
    assert TrainConfig(lr=0.1).model_and_optimizer() != TrainConfig().model_and_optimizer()


def test_every_field_with_help_is_a_flag_and_parses_into_the_config():
    from jaxcnn.cli import add_config_flags

    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    add_config_flags(parser)
    flags = {action.dest: action.option_strings for action in parser._actions if action.dest != "help"}
    with_help = {f.name for f in dataclasses.fields(TrainConfig) if "help" in f.metadata}
    assert set(flags) == with_help == {f.name for f in dataclasses.fields(TrainConfig)} - {"model_kwargs"}
    assert flags["checkpoint_every_steps"] == ["--checkpoint-every"]
    assert flags["conv_impl"] == ["--conv-impl"] and "--no-augment" in flags["augment"]
    args = parser.parse_args(["--conv-impl", "xla", "--decay-epochs", "3,4.5", "--no-augment",
                              "--lr", "0.5", "--schedule", "step", "--epochs", "6"])
    config = TrainConfig(**vars(args))
    assert (config.conv_impl, config.decay_epochs, config.augment, config.lr) == ("xla", (3, 4.5),
                                                                                  False, 0.5)
    assert vars(parser.parse_args([])) == {}  # only given flags override a config


def test_a_new_field_with_help_gets_a_flag(monkeypatch):
    from jaxcnn import cli
    from jaxcnn.train import config as config_module

    @dataclasses.dataclass(frozen=True)
    class Extended(TrainConfig):
        label_smoothing: float = config_module._option(0.0, parse=float, metavar="X",
                                                       help="label smoothing")

    monkeypatch.setattr(cli, "TrainConfig", Extended)
    monkeypatch.setattr(cli, "_DEFAULTS", Extended())
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    cli.add_config_flags(parser)
    assert vars(parser.parse_args(["--label-smoothing", "0.1"])) == {"label_smoothing": 0.1}
    assert "label smoothing; default: 0.0" in parser.format_help()
