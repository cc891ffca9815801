"""Typed keys for what the composition root puts on the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from datetime import tzinfo

import asyncpg
from aiohttp import web

from casedesk.services.settings import Settings

if TYPE_CHECKING:
    from casedesk.services.case_service import CaseService
    from casedesk.services.event_store import EventStore
    from casedesk.services.personal_data import PersonalData

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
STORE = web.AppKey("store", "EventStore")
CASES = web.AppKey("cases", "CaseService")
PERSONAL_DATA = web.AppKey("personal_data", "PersonalData")
ZONE = web.AppKey("zone", tzinfo)
