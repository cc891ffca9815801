"""The API tests' token helper, for the effects tests too."""

from tests.api.conftest import auth

__all__ = ["auth"]
