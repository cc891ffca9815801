"""The `casedesk` command: serve, migrate, token (and more as they land)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

from casedesk.services.settings import SettingsError, load_settings


def freeze_startup_objects() -> None:
    """Move what start-up made (modules, routes, pools: some 50,000 objects) out of the cyclic
    collector's reach: they live as long as the process, and each full pass walked them all,
    a pause of up to 60 ms measured under claims load (20 ms after this; tests/bench does the
    same before it times a replay, so its figure is the server's)."""
    import gc

    gc.collect()
    gc.freeze()


async def _freeze_startup_objects(_app: object) -> None:
    freeze_startup_objects()


def _install_uvloop() -> None:
    """Run the next asyncio.run on uvloop: less CPU per socket read and write than asyncio's loop."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # uvloop is optional (not on Windows)
        pass


def _serve(args: argparse.Namespace) -> int:
    from casedesk.services.http.app import create_app
    from casedesk.services.http.slow_clients import Limits, run_guarded
    from casedesk.services.logs import configure_logging
    from casedesk.services.tokens import key_id

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    _install_uvloop()
    host = args.host or settings.host
    port = args.port or settings.port
    print(f"casedesk serving on http://{host}:{port}  (dashboard: /dashboard)", file=sys.stderr)
    print(f"bearer tokens checked with key {key_id(settings.token_secret)}, the token secret from"
          f" {settings.token_secret_source}", file=sys.stderr)
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)
    limits = Limits(header_timeout=settings.header_timeout, body_idle_timeout=settings.body_idle_timeout,
                    max_connections_per_ip=settings.max_connections_per_ip)
    run_guarded(app, host=host, port=port, limits=limits, shutdown_timeout=10)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    import asyncpg

    from casedesk.services.store.database import direct_database_url
    from casedesk.services.store.migrations import migrate

    async def run() -> list[str]:
        conn = await asyncpg.connect(direct_database_url(load_settings()))
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(run())
    print("applied: " + (", ".join(applied) if applied else "nothing, the schema is current"))
    return 0


def _token(args: argparse.Namespace) -> int:
    from casedesk.services.tokens import issue_token, key_id

    settings = load_settings()
    departments = [d for d in args.departments.split(",") if d]
    print(issue_token(settings.token_secret, sub=args.sub, name=args.name or args.sub,
                      role=args.role, departments=departments, ttl=args.ttl))
    # On stderr, so `TOKEN=$(casedesk token ...)` still captures the token alone.
    print(f"signed with key {key_id(settings.token_secret)}, the token secret from {settings.token_secret_source};"
          " a server accepts it only with the same secret (the same CASEDESK_TOKEN_SECRET, or the same"
          " CASEDESK_DATA_DIR)", file=sys.stderr)
    return 0


def _project(args: argparse.Namespace) -> int:
    import signal

    from casedesk.projections.catalogue import running_projections
    from casedesk.projections.runner import BuildParts, ProjectionRunner
    from casedesk.services.logs import configure_logging
    from casedesk.services.projection_worker import stop_when_orphaned
    from casedesk.services.store.database import create_pool, direct_database_url
    from casedesk.services.store.event_store import EventStore
    from casedesk.services.store.migrations import migrate

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        orphaned = asyncio.create_task(stop_when_orphaned(stop))  # from the start: serve may die any time
        # Session advisory locks and LISTEN: never through PgBouncer in transaction mode.
        pool = await create_pool(direct_database_url(settings), min_size=2, max_size=6)
        async with pool.acquire() as conn:
            await migrate(conn)
        store = EventStore(pool)
        runner = ProjectionRunner(store, pool, running_projections(settings),
                                  build_parts=BuildParts(direct_database_url(settings), settings.build_workers))
        await runner.start()
        print("casedesk projection worker running (SIGTERM stops it at a batch boundary)", file=sys.stderr)
        await stop.wait()
        orphaned.cancel()
        await runner.stop()
        await store.close()
        await pool.close()

    # A batch is a score of statements, each a socket write and a wake-up: on asyncio's own loop, those
    # writes were a third of the worker's CPU while 50 agents claimed (py-spy, `python -m tests.bench claims`).
    _install_uvloop()
    asyncio.run(run())
    return 0


def _processor_sim(args: argparse.Namespace) -> int:
    from aiohttp import web

    from casedesk.services.effects.processor_sim import create_sim_app
    from casedesk.services.logs import configure_logging
    from casedesk.services.projection_worker import exit_when_orphaned
    from casedesk.services.store.database import direct_database_url

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    app = create_sim_app(direct_database_url(settings), settings.processor_user, settings.processor_password)
    app.cleanup_ctx.append(exit_when_orphaned)
    print(f"casedesk processor simulator on http://{args.host}:{args.port}", file=sys.stderr)
    web.run_app(app, host=args.host, port=args.port, print=None, shutdown_timeout=5)
    return 0


def _processor_instructions(args: argparse.Namespace) -> int:
    import signal

    from casedesk.services.case_service import CaseService
    from casedesk.services.effects.processor_client import ProcessorClient
    from casedesk.services.effects.processor_instructions import ProcessorInstructions
    from casedesk.services.logs import configure_logging
    from casedesk.services.projection_worker import stop_when_orphaned
    from casedesk.services.store.database import create_pool, direct_database_url
    from casedesk.services.store.event_mapper import CaseEventMapper
    from casedesk.services.store.event_store import EventStore
    from casedesk.services.store.migrations import migrate

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    if settings.processor_url is None:
        raise SettingsError("CASEDESK_PROCESSOR_URL is not set: where is the card processor?")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        orphaned = asyncio.create_task(stop_when_orphaned(stop))
        # A session advisory lock and LISTEN: never through PgBouncer in transaction mode.
        pool = await create_pool(direct_database_url(settings), min_size=2, max_size=8)
        async with pool.acquire() as conn:
            await migrate(conn)
        store = EventStore(pool)
        assert settings.processor_url is not None
        client = ProcessorClient(settings.processor_url, settings.processor_user, settings.processor_password,
                                 settings.processor_timeout)
        instructions = ProcessorInstructions(pool, CaseService(store, CaseEventMapper()), client,
                                             retry_max=settings.processor_retry_max)
        await instructions.start()
        print(f"casedesk sending processor instructions to {settings.processor_url}", file=sys.stderr)
        await stop.wait()
        orphaned.cancel()
        await instructions.stop()
        await store.close()
        await pool.close()

    asyncio.run(run())
    return 0


def _webhooks(args: argparse.Namespace) -> int:
    import signal

    from casedesk.services.effects.webhook_sender import run_sender
    from casedesk.services.logs import configure_logging
    from casedesk.services.projection_worker import stop_when_orphaned
    from casedesk.services.store.database import create_pool, direct_database_url
    from casedesk.services.store.migrations import migrate

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    # Background work: at a peak the API's requests take the cores first and delivery lags
    # (it is at least once, per case in order, never within a set time); once the peak is
    # past it catches up. Without this, signing and posting every event cost `POST note` a
    # third of its throughput on a 2-core machine (issue 17).
    os.nice(settings.webhook_nice)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        orphaned = asyncio.create_task(stop_when_orphaned(stop))
        # A session advisory lock and LISTEN: never through PgBouncer in transaction mode.
        pool = await create_pool(direct_database_url(settings), min_size=2, max_size=8)
        async with pool.acquire() as conn:
            await migrate(conn)
        print("casedesk webhook sender running (SIGTERM stops it)", file=sys.stderr)
        await run_sender(pool, settings, stop, own_process=True)
        orphaned.cancel()
        await pool.close()

    _install_uvloop()  # a third more requests a second out of the same core (aiohttp's client)
    asyncio.run(run())
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _rebuild(args: argparse.Namespace) -> int:
    from casedesk.projections.catalogue import configured_projections
    from casedesk.services.rebuild import UnknownProjectionError, rebuild_projections
    from casedesk.services.store.database import create_pool, direct_database_url
    from casedesk.services.store.migrations import migrate

    async def run() -> dict[str, float]:
        settings = load_settings()
        pool = await create_pool(direct_database_url(settings), min_size=1, max_size=4)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            return await rebuild_projections(pool, args.names, configured_projections(settings),
                                             workers=args.workers, dsn=direct_database_url(settings))
        finally:
            await pool.close()

    try:
        rates = asyncio.run(run())
    except UnknownProjectionError as error:
        print(error, file=sys.stderr)
        return 2
    for name, rate in rates.items():
        print(f"{name}: rebuilt at {rate:,.0f} events/s")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    import asyncpg

    from casedesk.services.privacy.sealing_epoch import EpochCheck, check_epochs, rewritten_positions
    from casedesk.services.store.audit_chain import verify_with_progress
    from casedesk.services.store.audit_seal import HeadsFile, SealCheck, check_seal, key_bytes
    from casedesk.services.store.database import database_url
    from casedesk.services.store.migrations import migrate

    settings = load_settings()

    async def run() -> tuple[int, int, SealCheck | None, EpochCheck | None]:
        conn = await asyncpg.connect(database_url(settings))
        try:
            await migrate(conn)
            checked, broken = await verify_with_progress(conn, args.case)
            if args.case:
                return checked, broken, None, None
            # The whole log against the keyed seal and the heads exported outside the database; a head
            # exported before a sealing epoch against the log as it was then (issue 21).
            key = key_bytes(settings.audit_key)
            epochs = await check_epochs(conn)  # first: the seal's check may leave its cursor open on a break
            seal = await check_seal(conn, key, HeadsFile(settings.audit_heads_path, key),
                                    await rewritten_positions(conn))
            return checked, broken, seal, epochs
        finally:
            await conn.close()

    checked, broken, seal, epochs = asyncio.run(run())
    if args.case and not checked:
        print(f"no case {args.case}", file=sys.stderr)
        return 2
    print(f"{checked} stream(s) checked, {broken} with a broken hash chain")
    if seal is not None:
        print(f"audit seal: {seal.events_checked} event(s) checked, sealed up to position {seal.sealed_up_to},"
              f" {seal.heads_checked} exported head(s) checked: {'ok' if seal.ok else seal.problem}")
    if epochs is not None and epochs.epochs:
        print(f"sealing epochs: {epochs.epochs}, {epochs.events} re-encrypted event(s) checked (hash as written,"
              f" skeleton unchanged): {'ok' if epochs.problem is None else epochs.problem}")
    bad_epoch = epochs is not None and epochs.problem is not None
    return 1 if broken or (seal is not None and not seal.ok) or bad_epoch else 0


def _import_breach(args: argparse.Namespace) -> int:
    import getpass
    from pathlib import Path

    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from casedesk.domain.values import Actor
    from casedesk.services.breach_intake import BreachIntake, IntakeReport, UnreadableListError
    from casedesk.services.breaches import find_breach
    from casedesk.services.personal_data import PersonalData
    from casedesk.services.privacy.customer_keys import CustomerKeys
    from casedesk.services.store.database import create_pool, database_url
    from casedesk.services.store.event_mapper import CaseEventMapper
    from casedesk.services.store.event_store import EventStore
    from casedesk.services.store.migrations import migrate

    settings = load_settings()
    path = Path(args.file)
    form = args.format or ("csv" if path.suffix.lower() == ".csv" else "ndjson")
    operator = args.by or f"shell:{getpass.getuser()}"
    actor = Actor(id=operator, name=args.name or operator, role="supervisor", department="fraud")

    async def run() -> IntakeReport | None:
        pool = await create_pool(database_url(settings), min_size=2, max_size=4,
                                 statement_cache=settings.statement_cache)
        store = EventStore(pool)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            mapper = CaseEventMapper()
            breach = await find_breach(store, mapper, args.breach)
            if breach is None:
                return None
            keys = CustomerKeys(pool, settings.master_key_or_derived, sealing=settings.seal_personal_data)
            intake = BreachIntake(store, mapper, PersonalData(settings.pii_key, settings.phone_region), breach, actor,
                                  keys)
            with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), TimeRemainingColumn()) as progress:
                task = progress.add_task(f"{path.name} → {breach.merchant} breach", total=size)

                async def chunks() -> AsyncIterator[bytes]:
                    while chunk := await asyncio.to_thread(file.read, 256 * 1024):
                        progress.advance(task, len(chunk))
                        yield chunk

                return await intake.take(chunks(), form)
        finally:
            await store.close()
            await pool.close()

    try:
        file = path.open("rb")
    except OSError as error:
        print(f"cannot read {path}: {error.strerror}", file=sys.stderr)
        return 2
    size = path.stat().st_size
    try:
        with file:
            report = asyncio.run(run())
    except UnreadableListError as error:
        print(f"nothing imported: {error}", file=sys.stderr)
        return 2
    if report is None:
        print(f"no breach {args.breach}", file=sys.stderr)
        return 2
    print(f"{report.accepted:,} accepted: {report.cases_opened:,} cases opened, {report.already_known:,} already known;"
          f" {report.rejected_total:,} lines rejected")
    for rejected in report.rejected[:args.show_rejects]:
        print(f"  line {rejected.line}: {rejected.reason}")
    if report.rejected_total > args.show_rejects:
        print(f"  ... and {report.rejected_total - args.show_rejects:,} more")
    return 1 if report.rejected_total else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casedesk",
        description="Fraud-case backend for a card issuer's call center.",
        epilog="Settings come from the environment; see README.md (DATABASE_URL unset: "
        "an embedded PostgreSQL in $CASEDESK_DATA_DIR, default ./.casedesk).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate, start projections, serve the API and dashboard")
    serve.add_argument("--host", help="listen address (default $CASEDESK_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default $CASEDESK_PORT or 8080)")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply the SQL migrations that have not run yet")
    migrate.set_defaults(run=_migrate)

    project = commands.add_parser(
        "project", help="run the projection workers only (no HTTP); any number may run, each "
        "projection works in one of them at a time")
    project.set_defaults(run=_project)

    sim = commands.add_parser("processor-sim", help="a card processor speaking CONTRACT.md's processor API "
                              "(the embedded default; tables processor_sim_* on DATABASE_URL)")
    sim.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8090, help="listen port (default 8090)")
    sim.set_defaults(run=_processor_sim)

    instruct = commands.add_parser(
        "processor-instructions", help="follow the case log and send card-processor instructions to "
        "$CASEDESK_PROCESSOR_URL, each exactly once in effect (one process at a time works, by advisory lock)")
    instruct.set_defaults(run=_processor_instructions)
    webhooks = commands.add_parser(
        "webhooks", help="deliver case events to the webhook subscriptions (signed, at least once, per case in "
        "order); one process at a time works, by advisory lock")
    webhooks.set_defaults(run=_webhooks)

    rebuild = commands.add_parser("rebuild", help="rebuild projections from zero, with a progress bar")
    rebuild.add_argument("names", nargs="*", metavar="NAME", help="projections to rebuild (default: all)")
    rebuild.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                         help="fold the case files in N processes side by side, split by case (default: 1)")
    rebuild.set_defaults(run=_rebuild)

    audit = commands.add_parser("audit", help="audit tools: verify the hash chains of the case streams")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="AUDIT_COMMAND")
    verify = audit_commands.add_parser("verify", help="recompute the hash chains and the keyed seal over the whole log;"
                                       " exit 1 naming what was tampered with")
    which = verify.add_mutually_exclusive_group()
    which.add_argument("--case", type=UUID, metavar="ID", help="check one case")
    which.add_argument("--all", action="store_true", help="check every stream (the default)")
    verify.set_defaults(run=_audit_verify)

    intake = commands.add_parser(
        "import-breach", help="open one outreach case per card of a breach's affected-cards list (NDJSON or CSV); "
        "idempotent, so a cut-off run is finished by running it again; exit 1 when lines were rejected")
    intake.add_argument("file", help="the list: .csv is read as CSV with a header, anything else as NDJSON")
    intake.add_argument("--breach", type=UUID, required=True, metavar="ID", help="the breach (POST /v1/breaches)")
    intake.add_argument("--format", choices=["ndjson", "csv"], help="override the format the file name implies")
    intake.add_argument("--by", help="operator id recorded on the cases (default shell:$USER)")
    intake.add_argument("--name", help="operator name recorded on the cases")
    intake.add_argument("--show-rejects", type=int, default=20, metavar="N", help="rejected lines to list (default 20)")
    intake.set_defaults(run=_import_breach)

    from casedesk.services.privacy.commands import add_commands as add_privacy_commands

    add_privacy_commands(commands)

    token = commands.add_parser("token", help="print a bearer token signed with the configured secret")
    token.add_argument("--sub", required=True, help="agent id")
    token.add_argument("--name", help="display name (default: the agent id)")
    token.add_argument("--role", required=True, choices=["agent", "supervisor", "auditor", "admin", "ivr"],
                       help="ivr: a service token for the phone system, which may only verify calls")
    token.add_argument("--departments", default="fraud", help="comma-separated, e.g. fraud,credit_management")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds until it expires (default 8 h)")
    token.set_defaults(run=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except SettingsError as error:
        print(f"casedesk: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
