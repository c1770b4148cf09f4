"""A fresh, empty database per test on each backend, named by URL for a subprocess."""

from __future__ import annotations

import pytest

from tests.databases import postgres_database, sqlite_database


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request, tmp_path):
    database = postgres_database() if request.param == "postgresql" else sqlite_database(tmp_path)
    with database as url:
        yield url
