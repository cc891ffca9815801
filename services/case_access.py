"""Who may read or change which case (CONTRACT.md's role table).

Agents work the cases of their departments and the cases assigned to them;
supervisors and admins work every case; auditors only read.
"""

from __future__ import annotations

from casedesk.domain.case import FraudCase
from casedesk.services.tokens import Principal


class AccessDeniedError(PermissionError):
    """The caller's role or departments do not admit this case."""


class CaseHiddenError(AccessDeniedError):
    """The case exists, but not for this caller (not its departments, not assigned to it).

    Answered exactly like an unknown id (404): a 403 would tell that the case exists.
    """


# Roles that read every case; everyone else reads the cases of their departments and those assigned to them.
# (services/presence.py asks the same of case_files in SQL, with these roles.)
READ_EVERY_CASE = ("supervisor", "admin", "auditor")


def may_see(principal: Principal, departments: list[str] | tuple[str, ...], assignee_id: str | None) -> bool:
    """Agents see the cases of their departments and those assigned to them; the other roles see every case."""
    if principal.role in READ_EVERY_CASE:
        return True
    return bool(set(principal.departments) & set(departments)) or assignee_id == principal.sub


def check_may_read_parts(principal: Principal, departments: list[str] | tuple[str, ...],
                         assignee_id: str | None) -> None:
    """Agents read the cases of their departments and those assigned to them."""
    if not may_see(principal, departments, assignee_id):
        raise CaseHiddenError("the case is not in your departments nor assigned to you")


def check_may_read(principal: Principal, case: FraudCase) -> None:
    assignee = case.assignee.agent_id if case.assignee else None
    check_may_read_parts(principal, case.departments, assignee)


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
