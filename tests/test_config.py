"""Configuration: presets, overrides, and refusals that name the problem."""

from __future__ import annotations

import pytest

from diffdis.config import Config, ConfigError, preset
from diffdis.data.builtin import data_overrides
from diffdis.experiments.compare_blocks import StudyRun, run_config


def test_overrides_parse_to_field_types():
    config = preset(
        "tiny",
        [
            "model.gamma=2.5",
            "model.block_out_channels=16,32",
            "model.attention_levels=false,true",
            "train.gradient_checkpointing=true",
            "train.batch_size=32",
        ],
    )
    assert config.model.gamma == 2.5
    assert config.model.block_out_channels == (16, 32)
    assert config.model.attention_levels == (False, True)
    assert config.train.gradient_checkpointing is True and config.train.batch_size == 32


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.gama=2"], "valid model keys"),
        (["train.batch_size=big"], "not a valid int"),
        (["gamma=2"], "model.KEY=VALUE"),
        (["model.attention_levels=true"], "one flag per resolution level"),
        (["train.mixed_precision=fp8"], "use no, fp16 or bf16"),
        (["model.text_prediction=v"], "'sample' or 'epsilon'"),
        (["train.batch_size=1"], "negatives"),
        (["model.resolution=18"], "divisible by 4"),
    ],
)
def test_bad_overrides_are_refused_with_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message):
        preset("tiny", overrides)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match="available: base, sd, tiny"):
        preset("huge")


def test_json_round_trip_and_version_check(tmp_path):
    config = preset("tiny", ["model.gamma=3"])
    config.to_json(tmp_path / "c.json")
    assert Config.from_json(tmp_path / "c.json") == config
    data = config.to_dict()
    data["version"] = 99
    with pytest.raises(ConfigError, match="version 99"):
        Config.from_dict(data)
    data = config.to_dict()
    data["model"]["layers"] = 3
    with pytest.raises(ConfigError, match="unknown model keys"):
        Config.from_dict(data)


def test_data_decides_rgb_by_its_sources_not_by_a_substring():
    assert data_overrides("folder:/x/shapes_y") == ["train.data=folder:/x/shapes_y"]  # a folder name, not the set
    assert "model.image_channels=3" in data_overrides("fashion-mnist+shapes")
    # the comparison's shapes runs are RGB
    config = run_config(StudyRun("shapes", "dis", 1), 10, [])
    assert config.model.image_channels == 3 and [s.kind for s in config.train.sources] == ["shapes"]
    assert preset("tiny", [*data_overrides("shapes"), "model.image_channels=3"]).train.sources[0].kind == "shapes"
