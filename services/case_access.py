"""Who may read or change which case (CONTRACT.md's role table).

Agents work the cases of their departments and the cases assigned to them;
supervisors and admins work every case; auditors only read.
"""

from __future__ import annotations

from casedesk.domain.case import FraudCase
from casedesk.services.tokens import Principal


class AccessDeniedError(PermissionError):
    """The caller's role or departments do not admit this case."""


def _agent_may_touch(principal: Principal, case: FraudCase) -> bool:
    return bool(set(principal.departments) & set(case.departments)) or case.assignee == principal.sub


def check_may_read(principal: Principal, case: FraudCase) -> None:
    if principal.role in ("supervisor", "admin", "auditor"):
        return
    if not _agent_may_touch(principal, case):
        raise AccessDeniedError("the case is not in your departments nor assigned to you")


def check_may_change(principal: Principal, case: FraudCase) -> None:
    if principal.role == "auditor":
        raise AccessDeniedError("auditors only read")
    check_may_read(principal, case)


def acting_department(principal: Principal, case: FraudCase) -> str:
    """The department the caller acts for on this case."""
    for department in principal.departments:
        if department in case.departments:
            return department
    return principal.departments[0] if principal.departments else ""
