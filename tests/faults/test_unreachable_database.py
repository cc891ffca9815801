"""Which errors mean "the database is out of reach" (503, retry) rather than a bug (500)."""

from __future__ import annotations

import asyncpg

from casedesk.services.store.database import database_unreachable


def _raised_while_handling(first: BaseException, then: BaseException) -> BaseException:
    """`then` as Python leaves it when raised in an except block of `first` (its __context__)."""
    then.__context__ = first
    return then


def test_refused_starting_up_and_lost_connections_are_out_of_reach() -> None:
    assert database_unreachable(FileNotFoundError(2, "no socket"))
    assert database_unreachable(ConnectionRefusedError())
    assert database_unreachable(asyncpg.CannotConnectNowError("the database system is starting up"))
    assert database_unreachable(asyncpg.AdminShutdownError("terminating connection"))
    assert database_unreachable(asyncpg.ConnectionDoesNotExistError("closed in the middle of operation"))


def test_a_lost_connection_reported_second_hand_is_out_of_reach() -> None:
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    error = _raised_while_handling(lost, asyncpg.InterfaceError("cannot call Transaction.__aexit__()"))
    assert database_unreachable(error)


def test_bugs_and_refusals_of_the_database_are_not() -> None:
    assert not database_unreachable(ValueError("a bug"))
    assert not database_unreachable(asyncpg.InterfaceError("connection has been released back to the pool"))
    assert not database_unreachable(asyncpg.UniqueViolationError("duplicate key"))
