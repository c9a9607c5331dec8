"""The keras-bigmodel model zoo: the documents' architectures as named presets.

```python
import zoo
zoo.list_presets()            # ['attention_rnn', 'cnn', 'crossmodal', 'fusion', 'multitask', ...]
model = zoo.build("cnn", input_shape=(8, 8, 1))
zoo.save_preset(model, "my_cnn/")
model = zoo.load_preset("my_cnn/")
```

Each preset is one file in `zoo/presets/` and registers itself on import.
"""

from zoo import presets  # noqa: F401  (registers the presets)
from zoo.preset_dir import load_preset, read_preset_metadata, save_preset
from zoo.registry import (
    Preset,
    UnknownPresetError,
    build,
    describe,
    get_preset,
    list_presets,
    preset,
    register_preset,
)
from zoo.views import DataView, ModelInput

__all__ = [
    "DataView",
    "ModelInput",
    "Preset",
    "UnknownPresetError",
    "build",
    "describe",
    "get_preset",
    "list_presets",
    "load_preset",
    "preset",
    "read_preset_metadata",
    "register_preset",
    "save_preset",
]
