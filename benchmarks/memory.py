"""Peak memory of attention pooling at the large shape, two ways.

With XLA: the temporaries of the compiled step, from XLA's own memory analysis on
JAX (deterministic). Without XLA: how far the resident memory of a fresh TensorFlow
process peaks above its level between steps, over three graph-mode training steps
(Linux: the peak is reset through /proc/self/clear_refs), per variant; coarser, but
it shows what the literal documents' form materializes. Attention pooling never
needs a time x time matrix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, keras
    from keras_bigmodel.layers import AttentionLayer
    from benchmarks.attention import DocumentsAttentionLayer, SHAPES

    s = SHAPES["large"]
    B, T, F, U = s["batch"], s["time"], s["features"], s["units"]
    x = jnp.zeros((B, T, F), "float32")
    out = {"input_bytes": x.nbytes, "time_by_time_matrix_bytes": B * T * T * 4}
    for name, layer in (("ours", AttentionLayer(U)), ("documents", DocumentsAttentionLayer(U)),
                        ("projection", keras.layers.Dense(U))):
        layer(jnp.zeros((1, T, F)))  # builds it (the documents' layer has no build())
        ntv = [v.value for v in layer.non_trainable_variables]

        def forward(tv, x):
            return layer.stateless_call(tv, ntv, x)[0]

        def loss(tv, x):
            return jnp.sum(forward(tv, x) ** 2)

        tv = [v.value for v in layer.trainable_variables]
        for phase, fn in (("forward", forward), ("train_grad", jax.grad(loss))):
            analysis = jax.jit(fn).lower(tv, x).compile().memory_analysis()
            out[f"{name}_{phase}_temp_bytes"] = int(analysis.temp_size_in_bytes)
    print("MEMORY" + json.dumps(out))
""")


RSS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, keras
    from keras_bigmodel.layers import AttentionLayer
    from benchmarks.attention import DocumentsAttentionLayer, SHAPES

    s = SHAPES["large"]
    kind = sys.argv[1]
    inputs = keras.Input((s["time"], s["features"]))
    layer = {"ours": lambda: AttentionLayer(s["units"]),
             "documents": lambda: DocumentsAttentionLayer(s["units"]),
             "projection": lambda: keras.layers.Dense(s["units"])}[kind]()
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    x = np.ones((s["batch"], s["time"], s["features"]), "float32")
    y = np.zeros((s["batch"],) + tuple(model.output.shape[1:]), "float32")
    model.train_on_batch(x, y)  # traced, and the allocator has seen one step

    def status_kib(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    before = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident size
    for _ in range(3):
        model.train_on_batch(x, y)
    print("RSS" + json.dumps((status_kib("VmHWM") - before) * 1024))
""")


def _python(script, backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env
    )
    return done


def run(quick: bool = False) -> dict:
    done = _python(SCRIPT, "jax")
    if done.returncode != 0 or "MEMORY" not in done.stdout:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    result = json.loads(done.stdout.split("MEMORY", 1)[1])
    for kind in ("ours", "documents", "projection"):
        done = _python(RSS_SCRIPT, "tensorflow", kind)
        if "RSS" in done.stdout:
            result[f"{kind}_tf_graph_train_peak_rss_growth_bytes"] = json.loads(
                done.stdout.split("RSS", 1)[1]
            )
    return result
