"""Checking a `.keras` file before anything in it is deserialized, and bounding its load.

Keras's own `safe_mode` has been bypassed repeatedly (CVE-2024-3660: Lambda bytecode;
CVE-2025-1550: arbitrary module import from config.json; CVE-2025-8747 and
CVE-2025-9906: turning safe mode off, or downloading files, from inside the file;
CVE-2025-9905: HDF5 files ignore safe_mode), and it bounds neither memory nor work.
`kbm.load_model` (and `zoo.load_preset`, and every command of the CLI) runs these
checks first, in this order, and refuses a file with `UnsafeModelError` (or
`ModelFileError` for a broken one; both are `ValueError`s) before Keras sees it:

1. **The archive** (`archive`): a bounded zip directory (read from its end record
   before `zipfile` parses it); only `metadata.json`, `config.json`, one weights file
   and `assets/`; no absolute or `..` paths, links, duplicates or encryption; no member,
   and no archive as a whole, that expands more than 100x (a thousand small bzip2
   assets are one bomb); sizes within `LoadLimits`.
2. **The config** (`config_check`, `resolve`): one linear pass, with parent links
   instead of spelled-out paths. Every object is resolved exactly as Keras's
   deserializer resolves it (a class by `registered_name`, then as a public Keras
   symbol, then by importing `module` for `keras*` packages; a function by its
   `config` name) but without importing: a module Keras would import must already be
   in `sys.modules`. It must be a Keras modelling class, a Keras activation, loss,
   metric or op, or an object registered with Keras (or passed as custom_objects),
   whose names agree with the entry; never `Lambda`, a TypeSpec or a wrapper of
   foreign code. A string `vocabulary`/`idf_weights` (a file to read) is refused here,
   not left to Keras's process-wide flag. `__numpy__`/`__tensor__` dtypes must be plain
   and their sizes, like every declared shape, fit `max_tensor_elements`; layers fit
   `max_layers`, nesting `max_depth`.
3. **The weights file**: HDF5 read in place through a window on the archive, with
   hard links only (counted from each group's header before they are walked), no
   external, virtual, compressed or partly stored (fill-value) dataset, and no padding;
   `.npz` read member by member, header only, each array backed by its bytes.
4. **The declared size** (`budget`): Keras creates and initialises every variable from
   the config before it reads the weights. Field-by-field bounds cannot cover sizes
   inferred through a graph or a custom layer's arguments, so the model is built once
   by Keras's own loader inside a `keras.StatelessScope`, where variables record their
   shapes and get no values: the exact count of what the load would allocate, for any
   layer, at the cost of building the model twice. The count must fit `max_params`,
   and the weights file must store at least those bytes (a 4 KB file cannot make
   Keras allocate gigabytes). The config-level bounds of step 2 remain needed: NumPy
   allocates a `__numpy__` array while the config is deserialized, before any scope
   could help.

Keras then loads the very file object that was checked, under `guard.loading_guard`:
safe mode forced on for the duration (and restored afterwards, even if the host called
`keras.config.enable_unsafe_deserialization()`), and an import blocker for every module
the file names that is not imported yet. MemoryError and RecursionError while checking
become `UnsafeModelError`. What is not guaranteed: Keras's and HDF5's own parsers are
trusted with bytes that passed these checks; the CPU time to build and initialise a
model within the limits is Keras's; intermediate tensor shapes are inferred by Keras
(symbolically, except on PyTorch for an operation without a "meta" kernel). A file you
do not trust at all belongs in a separate process with its own resource limits.
"""

from keras_bigmodel.security.archive import ArchiveReport, inspect_archive, is_hdf5
from keras_bigmodel.security.budget import DeclaredSize, measure_declared_size
from keras_bigmodel.security.config_check import ConfigFindings, check_config
from keras_bigmodel.security.errors import ModelFileError, ModelTooLargeError, UnsafeModelError
from keras_bigmodel.security.guard import loading_guard
from keras_bigmodel.security.limits import DEFAULT_LIMITS, LoadLimits, resolve_limits
from keras_bigmodel.security.resolve import DENIED_CLASSES

__all__ = [
    "DEFAULT_LIMITS",
    "DENIED_CLASSES",
    "ArchiveReport",
    "ConfigFindings",
    "DeclaredSize",
    "LoadLimits",
    "ModelFileError",
    "ModelTooLargeError",
    "UnsafeModelError",
    "check_config",
    "inspect_archive",
    "is_hdf5",
    "loading_guard",
    "measure_declared_size",
    "resolve_limits",
]
