"""Every layer configuration and every zoo preset passes every clause of the contract."""

import pytest

from cases import LAYER_CASES, PRESET_CASES
from harness import CHECKS, PRESET_CHECKS, TENSORFLOW_CHECKS

CASES = LAYER_CASES + PRESET_CASES


@pytest.mark.parametrize("check", list(CHECKS), ids=list(CHECKS))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_contract(case, check, tmp_path):
    CHECKS[check](case, str(tmp_path))


@pytest.mark.parametrize("check", list(PRESET_CHECKS), ids=list(PRESET_CHECKS))
@pytest.mark.parametrize("case", PRESET_CASES, ids=[c.id for c in PRESET_CASES])
def test_preset_contract(case, check, tmp_path):
    PRESET_CHECKS[check](case, str(tmp_path))


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("check", list(TENSORFLOW_CHECKS), ids=list(TENSORFLOW_CHECKS))
@pytest.mark.parametrize("case", PRESET_CASES, ids=[c.id for c in PRESET_CASES])
def test_tensorflow_contract(case, check, tmp_path):
    TENSORFLOW_CHECKS[check](case, str(tmp_path))
