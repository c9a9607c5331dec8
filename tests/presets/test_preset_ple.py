"""The `ple` preset: two extraction levels of task and shared experts, as plain Keras would
write them."""

import numpy as np
from keras import ops

import zoo
from keras_bigmodel.layers import ProgressiveLayeredExtraction
from zoo.presets.ple import plain_ple


def test_ple_is_two_levels_of_task_and_shared_experts():
    model = zoo.build("ple")
    experts = model.get_layer("experts")
    assert isinstance(experts, ProgressiveLayeredExtraction)
    assert (experts.num_levels, experts.num_task_experts, experts.num_shared_experts) == (2, 2, 2)
    assert model.count_params() == plain_ple().count_params()
    out = model(np.zeros((3, 100), "float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(out["task1"]).sum(-1), 1.0, atol=1e-6)
    assert "Progressive Layered Extraction" in zoo.describe("ple")["description"]
