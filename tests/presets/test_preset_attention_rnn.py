"""The `attention_rnn` preset pools a recurrent encoder with the AttentionLayer."""

import zoo
from keras_bigmodel.layers import AttentionLayer


def test_attention_rnn_pools_with_attention_layer():
    assert isinstance(zoo.build("attention_rnn").get_layer("attention"), AttentionLayer)
