"""Every projection casedesk runs, by name (what `casedesk rebuild NAME` accepts)."""

from __future__ import annotations

from datetime import UTC, tzinfo

from casedesk.projections.case_files import CaseFiles
from casedesk.projections.runner import Projection


def all_projections(zone: tzinfo = UTC) -> list[Projection]:
    return [CaseFiles(zone)]
