"""Ratio benchmarks of keras-bigmodel (not tests): `python -m benchmarks [--quick]`."""
