"""Every projection casedesk runs, by name (what `casedesk rebuild NAME` accepts)."""

from __future__ import annotations

from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

from casedesk.domain.clock_policies import DEFAULT_POLICY, ClockPolicy, policy_named
from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import Projection
from casedesk.services.settings import Settings
from casedesk.services.store.audit_seal import AuditSeal, HeadsFile, key_bytes


def all_projections(zone: tzinfo = UTC, policy: ClockPolicy = DEFAULT_POLICY) -> list[Projection]:
    """The read models: each can be rebuilt from zero."""
    return [CaseFiles(zone, policy=policy)]


def configured_projections(settings: Settings) -> list[Projection]:
    """The read models with the display zone and clock policy the settings name."""
    return all_projections(ZoneInfo(settings.timezone), policy_named(settings.clock_policy))


def running_projections(settings: Settings) -> list[Projection]:
    """What a projection worker runs: the read models, and the audit seal over the log,
    which is not a read model and never rebuilt (a rebuild would seal whatever the log now says)."""
    key = key_bytes(settings.audit_key)
    seal = AuditSeal(key, HeadsFile(settings.audit_heads_path, key))
    return [*configured_projections(settings), seal]
