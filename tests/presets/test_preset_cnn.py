"""The `cnn` preset is the documents' CNN, layer for layer."""

import keras
from summary import summary_text

import zoo


def test_cnn_is_the_documents_cnn_layer_for_layer():
    model = zoo.build("cnn")
    reference = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            keras.layers.Conv2D(32, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    assert model.count_params() == reference.count_params() == 3_938_570
    ours = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [type(layer) for layer in ours] == [type(layer) for layer in reference.layers]
    assert [w.shape for w in model.weights] == [w.shape for w in reference.weights]
    assert model.loss == "categorical_crossentropy"
    assert "3,938,570" in summary_text(model)
