"""The contract tests run against the same app the API tests build."""

from tests.api.conftest import client, settings

__all__ = ["client", "settings"]
