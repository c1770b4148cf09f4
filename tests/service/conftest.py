"""A fresh, empty database per test on each backend, for service-layer machinery tests."""

from __future__ import annotations

import pytest

from tests.store.fresh import BACKENDS, fresh_engine


@pytest.fixture(params=BACKENDS)
def empty_engine(request, tmp_path):
    with fresh_engine(request.param, tmp_path) as engine:
        yield engine
