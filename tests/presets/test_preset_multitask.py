"""The `multitask` preset is the documents' multi-task model, outputs named by task."""

import numpy as np
from summary import summary_text

import zoo
from keras_bigmodel.layers import MultiTaskHead


def test_multitask_is_the_documents_model_with_named_outputs():
    model = zoo.build("multitask")
    assert model.count_params() == 10_255
    assert isinstance(model.get_layer("heads"), MultiTaskHead)
    out = model.predict(np.zeros((2, 64), "float32"), verbose=0)
    assert sorted(out) == ["task1", "task2"]
    assert out["task1"].shape == (2, 10) and out["task2"].shape == (2, 5)
    assert "10,255" in summary_text(model)
