"""ProgressiveLayeredExtraction against the PLE paper's formulas computed in NumPy, levels,
masks, errors, composition with the task heads, and the contract."""

import keras
import numpy as np
import pytest
from harness import layer_case, layer_contract, to_numpy
from keras import ops
from references import softmax as np_softmax

from keras_bigmodel.layers import MultiTaskHead, ProgressiveLayeredExtraction

CASES = [
    layer_case(
        "cgc_gate_metrics",
        lambda **kw: ProgressiveLayeredExtraction(
            ["ctr", "cvr"],
            num_task_experts=1,
            num_shared_experts=1,
            expert_units=(4,),
            gate_metrics=True,
            **kw,
        ),
        [(6,)],
        # 2 task experts + 1 shared expert + 2 task gates, kernel and bias each
        trainable_weights=(2 + 1 + 2) * 2,
        non_trainable_weights=2,  # gate_weight_sum, gate_weight_count
    ),
    layer_case(
        "two_levels_masked_gate_weights",
        lambda **kw: ProgressiveLayeredExtraction(
            ["a"], num_task_experts=1, num_shared_experts=1, num_levels=2, expert_units=(3,), **kw
        ),
        [(None, 4)],
        masking=True,
        call_kwargs={"return_gate_weights": True},
        quantizable=False,  # int8 is proven by the case above
        # level 0: 1 task expert, 1 shared, 1 task gate, 1 shared gate; level 1: no
        # shared gate
        trainable_weights=(1 + 1 + 1 + 1) * 2 + (1 + 1 + 1) * 2,
        non_trainable_weights=0,
    ),
]
test_contract = layer_contract(CASES)


def w(var):
    return np.asarray(ops.convert_to_numpy(var), dtype="float64")


def np_expert(layers, x):
    for dense in layers:
        x = np.maximum(x @ w(dense.kernel) + w(dense.bias), 0.0)
    return x


def np_gate(dense, x, temperature):
    return np_softmax((x @ w(dense.kernel) + w(dense.bias)) / temperature)


def np_ple(layer, x):
    """Tang et al. 2020, eq. 2-5, level by level, from the layer's weights."""
    t = layer.gate_temperature
    q = {task: x for task in layer.tasks}
    q_shared = x
    gates = {}
    for experts, level_gates in zip(layer.level_experts, layer.level_gates):
        own = {task: [np_expert(e, q[task]) for e in experts[task]] for task in layer.tasks}
        shared = [np_expert(e, q_shared) for e in experts["shared"]]
        new_q = {}
        for task in layer.tasks:
            g = np_gate(level_gates[task], q[task], t)
            gates[task] = g
            s = np.stack(own[task] + shared, axis=-2)
            new_q[task] = np.einsum("...e,...eu->...u", g, s)
        if "shared" in level_gates:
            g = np_gate(level_gates["shared"], q_shared, t)
            s = np.stack([h for task in layer.tasks for h in own[task]] + shared, axis=-2)
            q_shared = np.einsum("...e,...eu->...u", g, s)
        q = new_q
    return q, gates


def test_outputs_and_gates_equal_the_paper_formula():
    x = np.random.default_rng(0).normal(size=(5, 7)).astype("float32")
    layer = ProgressiveLayeredExtraction(
        ["a", "b", "c"],
        num_task_experts=2,
        num_shared_experts=3,
        num_levels=2,
        expert_units=(6, 4),
        gate_temperature=0.7,
    )
    outputs, gates = to_numpy(layer(x, return_gate_weights=True))
    ref_outputs, ref_gates = np_ple(layer, x.astype("float64"))
    for task in layer.tasks:
        assert outputs[task].shape == (5, 4)
        assert gates[task].shape == (5, 2 + 3)
        np.testing.assert_allclose(outputs[task], ref_outputs[task], atol=1e-5)
        np.testing.assert_allclose(gates[task], ref_gates[task], atol=1e-6)
    assert layer.gate_expert_names("b") == [
        "b_expert_0",
        "b_expert_1",
        "shared_expert_0",
        "shared_expert_1",
        "shared_expert_2",
    ]


def test_a_task_gate_never_sees_another_tasks_experts():
    """Zeroing task b's experts leaves task a's output unchanged in a single level (CGC)."""
    x = np.random.default_rng(1).normal(size=(4, 5)).astype("float32")
    layer = ProgressiveLayeredExtraction(["a", "b"], num_task_experts=2, num_shared_experts=1)
    before = to_numpy(layer(x))
    for expert in layer.level_experts[0]["b"]:
        for dense in expert:
            dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
    after = to_numpy(layer(x))
    np.testing.assert_allclose(after["a"], before["a"], atol=1e-6)
    assert not np.allclose(after["b"], before["b"])


def test_sequences_act_per_position_and_pass_the_mask_on():
    x = np.random.default_rng(2).normal(size=(2, 5, 3)).astype("float32")
    x[0, 3:] = 0.0
    inputs = keras.Input((None, 3))
    layer = ProgressiveLayeredExtraction(["a", "b"], expert_units=(4,))
    out = layer(keras.layers.Masking(0.0)(inputs))
    model = keras.Model(inputs, {t: keras.layers.GlobalAveragePooling1D()(out[t]) for t in out})
    ref, _ = np_ple(layer, x.astype("float64"))
    got = to_numpy(model(x))
    np.testing.assert_allclose(got["a"][0], ref["a"][0, :3].mean(0), atol=1e-5)
    np.testing.assert_allclose(got["b"][1], ref["b"][1].mean(0), atol=1e-5)


def test_experts_feed_multitask_heads(tmp_path):
    tasks = {"click": {"units": 1, "activation": "sigmoid"}, "buy": {"units": 1}}
    inputs = keras.Input((5,))
    experts = ProgressiveLayeredExtraction(tasks, num_levels=2, expert_units=(4,), name="ple")(
        inputs
    )
    outputs = {
        task: MultiTaskHead({task: spec}, name=f"tower_{task}")(experts[task])[task]
        for task, spec in tasks.items()
    }
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).normal(size=(8, 5)).astype("float32")
    mixtures = to_numpy(model.get_layer("ple")(x))
    head = model.get_layer("tower_buy").heads["buy"].output_dense
    np.testing.assert_allclose(
        to_numpy(model(x))["buy"], mixtures["buy"] @ w(head.kernel) + w(head.bias), atol=1e-5
    )
    path = str(tmp_path / "ple.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(restored(x))["click"], to_numpy(model(x))["click"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tasks": ["a", "shared"]}, "'shared' names the shared experts"),
        ({"tasks": ["a"], "num_task_experts": 0}, "num_task_experts=0"),
        ({"tasks": ["a"], "num_shared_experts": 1.5}, "num_shared_experts=1.5"),
        ({"tasks": ["a"], "num_levels": 0}, "num_levels=0"),
        ({"tasks": ["a"], "gate_temperature": -1}, "gate_temperature=-1"),
        ({"tasks": {}}, "tasks"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProgressiveLayeredExtraction(**kwargs)
