"""OnePassInferer's choice between one padded pass and sliding windows."""
from __future__ import annotations

import pytest

from inference.models.one_pass import OnePassInferer


@pytest.mark.parametrize("roi_size", [8, (8, 8, 8), [8, 8, 8]])
def test_the_window_may_be_given_as_one_int_for_every_axis(roi_size):
    inferer = OnePassInferer(roi_size=roi_size, sw_batch_size=1)
    assert inferer.one_pass((4, 4, 4))
    assert not inferer.one_pass((8, 8, 8))
    assert not inferer.one_pass((16, 4, 16))
