"""Typed keys for what the composition root puts on the aiohttp application."""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from casedesk.domain.approval_policy import ApprovalLimits
from casedesk.domain.clock_policies import ClockPolicy
from casedesk.services.settings import Settings
from casedesk.services.turn_taking import TurnTaking

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
# Audit histories made in a worker process (services/history_process.py); absent: in this one.
HISTORY_PROCESS = web.AppKey("history_process", "HistoryProcess")
# Quick requests in flight, which long work gives way to (services/turn_taking.py).
TURNS = web.AppKey("turns", TurnTaking)
# The query side: the standby when DATABASE_READ_URL is set, else POOL itself.
READ_POOL = web.AppKey("read_pool", asyncpg.Pool)
READ_STORE = web.AppKey("read_store", "EventStore")
# Straight to the primary (DATABASE_DIRECT_URL): LISTEN and the projection workers' locks.
DIRECT_POOL = web.AppKey("direct_pool", asyncpg.Pool)
DIRECT_URL = web.AppKey("direct_url", str)
STORE = web.AppKey("store", "EventStore")
CASES = web.AppKey("cases", "CaseService")
# The case reads of the query routes (the read model plus the stream's tail).
CASE_READER = web.AppKey("case_reader", "CaseReader")
BREACHES = web.AppKey("breaches", "Breaches")
MERCHANT_FLAGS = web.AppKey("merchant_flags", "MerchantFlags")
PERSONAL_DATA = web.AppKey("personal_data", "PersonalData")
# The customer keys: seal personal data as it is stored, open it as answers leave (issue 21).
CUSTOMER_KEYS = web.AppKey("customer_keys", "CustomerKeys")
CALL_CODES = web.AppKey("call_codes", "CallCodes")
CALL_VERIFIER = web.AppKey("call_verifier", "CallVerifier")
ZONE = web.AppKey("zone", tzinfo)
CLOCK_POLICY = web.AppKey("clock_policy", ClockPolicy)
APPROVAL_LIMITS = web.AppKey("approval_limits", ApprovalLimits)
RUNNER = web.AppKey("runner", "ProjectionRunner")
# Set on every projection batch's NOTIFY: readers waiting for a min_position wake on it.
READ_MODELS_MOVED = web.AppKey("read_models_moved", "ReadModelsMoved")
