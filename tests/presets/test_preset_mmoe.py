"""The `mmoe` preset: the MMoE paper's synthetic-benchmark architecture, as plain Keras
would write it; the `multitask` and `crossmodal` presets' expert options."""

import numpy as np
import pytest

import zoo
from keras_bigmodel.layers import MixtureOfExperts, ProgressiveLayeredExtraction, TaskHead
from zoo.presets.mmoe import plain_mmoe


def test_mmoe_is_the_papers_synthetic_architecture():
    model = zoo.build("mmoe")
    experts = model.get_layer("experts")
    assert isinstance(experts, MixtureOfExperts)
    assert (experts.num_experts, experts.expert_units) == (8, (16,))
    assert isinstance(model.get_layer("tower_task1"), TaskHead)
    assert model.count_params() == plain_mmoe().count_params()
    out = model(np.zeros((2, 100), "float32"))
    assert sorted(out) == ["task1", "task2"] and tuple(out["task2"].shape) == (2, 2)
    assert "Mixture-of-Experts" in zoo.describe("mmoe")["description"]


def test_multitask_and_crossmodal_take_experts():
    multitask = zoo.get_preset("multitask").tiny
    model = zoo.build("multitask", experts="mmoe", expert_options={"num_experts": 3}, **multitask)
    experts = model.get_layer("experts")
    assert isinstance(experts, MixtureOfExperts) and experts.expert_units == (8,)  # trunk_units
    assert isinstance(model.get_layer("tower_task2"), TaskHead)
    assert model.output_names == ["task1", "task2"]
    tiny = zoo.get_preset("crossmodal").test_configs()["attention_tasks_dropout"]
    crossmodal = zoo.build("crossmodal", compile=False, experts="ple", **tiny)
    experts = crossmodal.get_layer("experts")
    assert isinstance(experts, ProgressiveLayeredExtraction) and experts.expert_units == (6,)
    assert sorted(crossmodal.output) == ["domain", "label"]
    batch = {"image": np.zeros((2, 8, 8, 1), "float32"), "sequence": np.zeros((2, 5, 4), "float32")}
    assert tuple(crossmodal(batch)["label"].shape) == (2, 4)


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("multitask", {"experts": "moe"}, "experts='moe'"),
        ("multitask", {"expert_options": {"num_experts": 2}}, "needs `experts="),
        ("multitask", {"experts": "mmoe", "expert_options": {"levels": 2}}, r"\['levels'\]"),
        ("multitask", {"experts": "mmoe", "expert_options": {"tasks": ["a"]}}, "'tasks'"),
        ("crossmodal", {"experts": "mmoe"}, "needs `tasks`"),
        ("mmoe", {"num_experts": 0}, "num_experts=0"),
    ],
)
def test_expert_options_are_checked(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        zoo.build(name, compile=False, **overrides)
