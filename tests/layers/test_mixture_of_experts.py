"""MixtureOfExperts against the MMoE paper's formulas computed in NumPy, masks, gate
statistics, errors, composition with the task heads, and the contract."""

import keras
import numpy as np
import pytest
from harness import layer_case, layer_contract, to_numpy
from keras import ops
from references import softmax as np_softmax

from keras_bigmodel.layers import MixtureOfExperts, MultiTaskHead

CASES = [
    layer_case(
        "two_tasks_gate_metrics",
        lambda **kw: MixtureOfExperts(
            ["ctr", "rating"], num_experts=2, expert_units=(4,), gate_metrics=True, **kw
        ),
        [(6,)],
        trainable_weights=2 * 2 + 2 * 2,  # 2 one-layer experts, 2 gates (kernel + bias each)
        non_trainable_weights=2,  # gate_weight_sum, gate_weight_count
    ),
    layer_case(
        "masked_sequences_gate_weights",
        lambda **kw: MixtureOfExperts(
            ["a", "b"], num_experts=2, expert_units=(3,), gate_temperature=0.5, **kw
        ),
        [(None, 4)],
        masking=True,
        call_kwargs={"return_gate_weights": True},
        quantizable=False,  # int8 is proven by the case above
        trainable_weights=2 * 2 + 2 * 2,  # 2 experts, 2 gates
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


def np_mmoe(layer, x):
    """Ma et al. 2018, eq. 5-6: f^k(x) = sum_i softmax(W_gk x / T)_i f_i(x)."""
    experts = np.stack([np_expert(e, x) for e in layer.experts], axis=-2)  # (..., n, units)
    outputs, gates = {}, {}
    for task in layer.tasks:
        gate = layer.gates[task]
        g = np_softmax((x @ w(gate.kernel) + w(gate.bias)) / layer.gate_temperature)
        gates[task] = g
        outputs[task] = np.einsum("...e,...eu->...u", g, experts)
    return outputs, gates


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_outputs_and_gates_equal_the_paper_formula(temperature):
    x = np.random.default_rng(0).normal(size=(5, 7)).astype("float32")
    layer = MixtureOfExperts(
        ["a", "b", "c"], num_experts=4, expert_units=(6, 3), gate_temperature=temperature
    )
    outputs, gates = to_numpy(layer(x, return_gate_weights=True))
    ref_outputs, ref_gates = np_mmoe(layer, x.astype("float64"))
    assert sorted(outputs) == ["a", "b", "c"]
    for task in layer.tasks:
        np.testing.assert_allclose(outputs[task], ref_outputs[task], atol=1e-5)
        np.testing.assert_allclose(gates[task], ref_gates[task], atol=1e-6)
        np.testing.assert_allclose(gates[task].sum(-1), 1.0, atol=1e-6)


def test_temperature_flattens_or_sharpens_the_gates():
    x = np.random.default_rng(1).normal(size=(8, 5)).astype("float32")
    peak = {}
    for temperature in (0.05, 100.0):
        layer = MixtureOfExperts(
            ["a"],
            num_experts=4,
            gate_temperature=temperature,
            kernel_initializer=keras.initializers.GlorotUniform(seed=3),
        )
        _, gates = to_numpy(layer(x, return_gate_weights=True))
        peak[temperature] = gates["a"].max(-1).mean()
    assert peak[0.05] > 0.9  # nearly one expert per example
    np.testing.assert_allclose(peak[100.0], 0.25, atol=0.01)  # nearly uniform


def test_sequences_act_per_position_and_pass_the_mask_on():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    x[1, 4:] = 0.0  # padding, masked by Masking
    inputs = keras.Input((None, 4))
    layer = MixtureOfExperts(["a", "b"], num_experts=2, expert_units=(3,))
    outputs = layer(keras.layers.Masking(0.0)(inputs))
    pooled = {t: keras.layers.GlobalAveragePooling1D()(outputs[t]) for t in outputs}
    model = keras.Model(inputs, pooled)
    flat = to_numpy(layer(x))
    ref, _ = np_mmoe(layer, x.astype("float64"))
    np.testing.assert_allclose(flat["a"], ref["a"], atol=1e-5)
    got = to_numpy(model(x))
    # The mask reached the pooling: row 1 averages its 4 unmasked steps only.
    np.testing.assert_allclose(got["b"][1], ref["b"][1, :4].mean(0), atol=1e-5)
    np.testing.assert_allclose(got["b"][0], ref["b"][0].mean(0), atol=1e-5)


def test_gate_statistics_average_unmasked_training_positions():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    layer = MixtureOfExperts(["a", "b"], num_experts=3, gate_metrics=True)
    layer(x, mask=mask)  # inference: no statistics
    assert layer.gate_usage()["a"]["expert_0"] == 0.0
    layer(x, mask=mask, training=True)
    layer(x[:1], mask=mask[:1], training=True)
    _, gates = np_mmoe(layer, x.astype("float64"))
    for task in ("a", "b"):
        rows = np.concatenate([gates[task][mask], gates[task][:1][mask[:1]]])
        usage = layer.gate_usage()[task]
        np.testing.assert_allclose(
            [usage[f"expert_{i}"] for i in range(3)], rows.mean(0), atol=1e-5
        )
    layer.reset_gate_usage()
    assert layer.gate_usage()["b"]["expert_2"] == 0.0


def test_experts_feed_multitask_heads_and_the_model_reloads(tmp_path):
    tasks = {"digit": {"units": 3, "activation": "softmax"}, "parity": {"units": 2}}
    inputs = keras.Input((6,))
    experts = MixtureOfExperts(tasks, num_experts=3, expert_units=(5,), name="mmoe")(inputs)
    outputs = {
        task: MultiTaskHead({task: spec}, name=f"tower_{task}")(experts[task])[task]
        for task, spec in tasks.items()
    }
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(4).normal(size=(16, 6)).astype("float32")
    # Each head reads its own task's mixture.
    mixture = to_numpy(model.get_layer("mmoe")(x))
    head = model.get_layer("tower_parity").heads["parity"].output_dense
    np.testing.assert_allclose(
        to_numpy(model(x))["parity"],
        mixture["parity"] @ w(head.kernel) + w(head.bias),
        atol=1e-5,
    )
    path = str(tmp_path / "mmoe.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(restored(x))["digit"], to_numpy(model(x))["digit"], atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tasks": []}, "tasks"),
        ({"tasks": "ctr"}, "tasks"),
        ({"tasks": ["a", "a"]}, "must not repeat"),
        ({"tasks": ["a", "b c"]}, "b c"),
        ({"tasks": ["a"], "num_experts": 0}, "num_experts=0"),
        ({"tasks": ["a"], "expert_units": ()}, "expert_units=()"),
        ({"tasks": ["a"], "expert_units": (4, -1)}, "expert_units"),
        ({"tasks": ["a"], "gate_temperature": 0.0}, "gate_temperature=0.0"),
        ({"tasks": ["a"], "gate_temperature": float("inf")}, "gate_temperature=inf"),
        ({"tasks": ["a"], "dropout": 1.0}, "dropout=1.0"),
        ({"tasks": ["a"], "gate_metrics": "yes"}, "gate_metrics='yes'"),
        ({"tasks": ["a"], "expert_activation": "nope"}, "expert_activation='nope'"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MixtureOfExperts(**kwargs)


def test_rank_one_input_and_gate_usage_without_statistics_are_refused():
    layer = MixtureOfExperts(["a"])
    with pytest.raises(ValueError, match="rank 2 or more"):
        layer.build((5,))
    with pytest.raises(ValueError, match="gate_metrics=True"):
        layer.gate_usage()


def test_dropout_is_active_in_training_only():
    x = np.random.default_rng(6).normal(size=(8, 5)).astype("float32")
    layer = MixtureOfExperts(["a"], num_experts=2, dropout=0.5, seed=1)
    inference = to_numpy(layer(x))["a"]
    np.testing.assert_allclose(to_numpy(layer(x))["a"], inference)
    assert not np.allclose(to_numpy(layer(x, training=True))["a"], inference)
