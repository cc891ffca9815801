"""Refusals: every rule the fraud case enforces has a stable kebab-case name.

The HTTP layer turns a `RuleViolation` into a 409 problem whose `type` ends in
the rule's name, so clients can branch on it without parsing prose.
"""

from __future__ import annotations


class RuleViolation(Exception):
    """A command broke a rule of the case; nothing was recorded."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


class FieldRefused(RuleViolation, ValueError):
    """A value in one field of a command is unusable; `.field` names it.

    It is a `ValueError` (bad input, 422 naming `.field`) and a
    `RuleViolation` (with its rule name) at once.
    """

    def __init__(self, rule: str, field: str, detail: str) -> None:
        super().__init__(rule, detail)
        self.field = field


class CardDataRefused(FieldRefused):
    """A structured field holds a full card number or a security code.

    It is a `ValueError` (bad input, 422 naming `.field`) and a
    `RuleViolation` (rule `card-data-refused`) at once, so either kind of
    handler refuses it without storing the value.
    """

    def __init__(self, field: str) -> None:
        super().__init__("card-data-refused", field, f"{field} looks like card data; it is never stored")


class CaseMergedError(RuleViolation):
    """A command on a case merged into another: rule `case-merged`, naming the survivor."""

    def __init__(self, case_id: object, merged_into: object) -> None:
        super().__init__("case-merged", f"case {case_id} is merged into case {merged_into}; work that case,"
                         " or unmerge first")
        self.merged_into = merged_into


class CaseNotFoundError(LookupError):
    """No case has this id (or the stream of that id is not a case's)."""
