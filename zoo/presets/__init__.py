"""The zoo's presets, one file each. Every module here that does not start with an
underscore registers its preset(s) when imported; `zoo` imports them all, so adding
a preset is adding a file (see CONTRIBUTING.md)."""

import importlib
import pkgutil

__all__ = ["PRESET_MODULES"]

PRESET_MODULES = tuple(
    sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
)

for _module in PRESET_MODULES:
    importlib.import_module(f"{__name__}.{_module}")
