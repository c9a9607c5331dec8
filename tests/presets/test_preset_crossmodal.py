"""The `crossmodal` preset fuses an image branch and a sequence branch."""

import zoo
from keras_bigmodel.layers import AttentionLayer, Fusion


def test_crossmodal_uses_the_layers():
    model = zoo.build("crossmodal")
    assert isinstance(model.get_layer("fusion"), Fusion)
    assert isinstance(model.get_layer("sequence_attention"), AttentionLayer)
    assert sorted(t.name for t in model.inputs) == ["image", "sequence"]
