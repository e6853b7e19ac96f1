"""Root conftest: the harness lives in fixtures/ (loaded as a plugin from pytest.ini)."""
