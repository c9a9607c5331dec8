"""Every layer configuration and every zoo preset passes every clause of the contract."""

import pytest

from cases import LAYER_CASES
from harness import CHECKS

CASES = LAYER_CASES


@pytest.mark.parametrize("check", list(CHECKS), ids=list(CHECKS))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_contract(case, check, tmp_path):
    CHECKS[check](case, str(tmp_path))
