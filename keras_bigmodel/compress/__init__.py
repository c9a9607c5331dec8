"""Model compression that accelerates (the documents' dynamic int8 quantization, and
their trend 3.1, compression and acceleration).

- `quantize` (`quantization`): Keras's own `Model.quantize` (int8 weights with
  per-channel scales, activations quantized on the fly), on a copy.
- `export_tflite` / `export_onnx` (`export`): LiteRT and ONNX files, float or int8
  (full-integer post-training quantization calibrated on example inputs: LiteRT's
  converter, onnxruntime's static QDQ quantization); `op_coverage` (`coverage`): the
  share of multiply-adds that runs in int8 kernels.
- `open_runtime`, `run_onnx`, `run_tflite` (`runtime`): one onnxruntime session or
  LiteRT interpreter, fed and answering like the Keras model.
- `prune`, `strip_pruning`, `PruningCallback`, `sparsity_report` (`pruning`):
  magnitude pruning (unstructured, 2:4 or by channel) trained with `fit`.
- `quantize_aware`, `strip_quantize_aware` (`qat`): quantization-aware training
  with Keras's own fake-quantization ops.
- `size_report` (`size`): parameters, bytes in memory, as stored and gzip'd.
- `distill` (`distillation`): knowledge distillation with `keras.distillation`.
"""

from keras_bigmodel.compress.coverage import op_coverage
from keras_bigmodel.compress.distillation import ProbabilityDistillation, distill
from keras_bigmodel.compress.export import (
    ONNX_BACKENDS,
    ONNX_QUANTIZATIONS,
    TFLITE_QUANTIZATIONS,
    export_onnx,
    export_tflite,
)
from keras_bigmodel.compress.pruning import (
    PRUNABLE_LAYERS,
    PRUNING_SCHEDULES,
    PRUNING_STRUCTURES,
    PrunedLayer,
    PruningCallback,
    prune,
    sparsity_report,
    strip_pruning,
)
from keras_bigmodel.compress.qat import (
    QAT_LAYERS,
    QuantizeAwareLayer,
    quantize_aware,
    strip_quantize_aware,
)
from keras_bigmodel.compress.quantization import QUANTIZATION_MODES, quantize
from keras_bigmodel.compress.runtime import (
    Runtime,
    RuntimeModel,
    load_runtime_model,
    open_runtime,
    run_onnx,
    run_tflite,
    runtime_file,
    write_runtime_record,
)
from keras_bigmodel.compress.size import size_report

__all__ = [
    "ONNX_BACKENDS",
    "ONNX_QUANTIZATIONS",
    "PRUNABLE_LAYERS",
    "PRUNING_SCHEDULES",
    "PRUNING_STRUCTURES",
    "QAT_LAYERS",
    "QUANTIZATION_MODES",
    "TFLITE_QUANTIZATIONS",
    "ProbabilityDistillation",
    "PrunedLayer",
    "PruningCallback",
    "QuantizeAwareLayer",
    "Runtime",
    "RuntimeModel",
    "distill",
    "export_onnx",
    "export_tflite",
    "load_runtime_model",
    "op_coverage",
    "open_runtime",
    "prune",
    "quantize",
    "quantize_aware",
    "run_onnx",
    "run_tflite",
    "runtime_file",
    "size_report",
    "sparsity_report",
    "strip_pruning",
    "strip_quantize_aware",
    "write_runtime_record",
]
