"""The `fusion` preset is the documents' two-model fusion."""

import zoo
from keras_bigmodel.layers import FusionConcat


def test_fusion_is_the_documents_fusion():
    model = zoo.build("fusion")
    assert model.count_params() == 22
    assert isinstance(model.get_layer("fusion"), FusionConcat)
    assert tuple(model.output.shape) == (None, 2)
