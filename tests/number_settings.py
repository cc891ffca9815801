"""How a number setting is checked: its default, a value taken as given, and values that stop the process."""

from __future__ import annotations

from pathlib import Path

import pytest

from casedesk.services.settings import SettingsError, load_settings


def check_number_setting(tmp_path: Path, variable: str, attribute: str, default: object, given: tuple[str, object],
                         refused: tuple[str, ...]) -> None:
    """`variable` unset reads as `default`; `given` (text, value) is taken; each of `refused` is refused by name."""
    base = {"CASEDESK_DATA_DIR": str(tmp_path)}
    assert getattr(load_settings(base), attribute) == default
    assert getattr(load_settings({**base, variable: given[0]}), attribute) == given[1]
    for wrong in refused:
        with pytest.raises(SettingsError, match=variable):
            load_settings({**base, variable: wrong})
