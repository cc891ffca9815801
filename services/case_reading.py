"""Reading a case file (view + timeline) for the query routes and audit history.

Until a read model serves it, the case file is folded from the stream; with
`upto_version` it is the case as it stood then.
"""

from __future__ import annotations

from datetime import tzinfo
from uuid import UUID

from casedesk.projections.case_file import fold
from casedesk.projections.case_view import CaseFile
from casedesk.services.case_service import CaseNotFoundError
from casedesk.services.event_mapper import CaseEventMapper
from casedesk.services.event_store import EventStore


async def read_case_file(
    store: EventStore, mapper: CaseEventMapper, case_id: UUID, zone: tzinfo,
    upto_version: int | None = None,
) -> CaseFile:
    stored = await store.read_stream(case_id, lte=upto_version)
    file = fold((mapper.to_domain_event(s) for s in stored), zone=zone)
    if file is None:
        raise CaseNotFoundError(str(case_id))
    return file
