"""The `rnn` preset is the documents' LSTM classifier."""

import keras

import zoo


def test_rnn_is_the_documents_rnn():
    model = zoo.build("rnn", input_shape=(20, 6))
    reference = keras.Sequential(
        [keras.Input((20, 6)), keras.layers.LSTM(50), keras.layers.Dense(10, activation="softmax")]
    )
    assert model.count_params() == reference.count_params()
    assert [w.shape for w in model.weights] == [w.shape for w in reference.weights]
