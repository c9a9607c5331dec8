"""Deprecated location of `check_model`, `require_tensorflow` and
`UnsupportedBackendError`; they live in `keras_bigmodel.validation`."""

from keras_bigmodel.validation import UnsupportedBackendError, check_model, require_tensorflow

__all__ = ["UnsupportedBackendError", "check_model", "require_tensorflow"]
