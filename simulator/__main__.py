"""`polaris-sim` (or `python -m simulator`): simulated scanners against any Polaris server."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console

from simulator.admin import AdminApi, admin_http_client
from simulator.display import live_status
from simulator.fleet import Fleet, FleetConfig
from simulator.problems import ProblemError
from simulator.profiles import PROFILES, identity
from simulator.protocol import (
    DeviceApi,
    PendingPairing,
    device_http_client,
    device_http_clients,
)
from simulator.scanner import SimulatedScanner
from simulator.scenarios import (
    ROTATION_RACE_WINDOW,
    SCENARIOS,
    CloneResponse,
    ScenarioContext,
    ScenarioFailed,
)
from simulator.state import DEFAULT_PATH, StateFile, StateFileError, StoredDevice

T = TypeVar("T")


HELP = (
    "Simulated iPhones, iPads and Macs running the scanner app, against a Polaris server."
    "\n\n"
    "The server is --base-url (or POLARIS_SIM_BASE_URL). Minting pairing codes needs an "
    "admin: --admin-email and --admin-password, or better the environment variables "
    "POLARIS_SIM_ADMIN_EMAIL and POLARIS_SIM_ADMIN_PASSWORD (a password on the command line "
    "shows in `ps`); given an email but no password on a terminal, it asks for it. An "
    "admin-app access JWT works instead: --admin-token (POLARIS_SIM_ADMIN_TOKEN). A fleet "
    "whose devices are all in the credentials file resumes without any admin."
    "\n\n"
    "Secrets (passwords, codes, proofs, device credentials) are never printed."
)

cli = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass(frozen=True)
class Options:
    server: str
    email: str | None
    password: str | None = field(repr=False)
    admin_token: str | None = field(repr=False)
    state: Path


@cli.callback()
def main_options(
    ctx: typer.Context,
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            "--server",
            envvar="POLARIS_SIM_BASE_URL",
            help="Base URL of the Polaris server.",
        ),
    ] = "http://127.0.0.1:8000",
    admin_email: Annotated[
        str | None,
        typer.Option(envvar="POLARIS_SIM_ADMIN_EMAIL", help="Admin email, to mint codes."),
    ] = None,
    admin_password: Annotated[
        str | None,
        typer.Option(
            envvar="POLARIS_SIM_ADMIN_PASSWORD",
            show_envvar=True,
            help="Admin password (prefer the env var; prompted for on a terminal if missing).",
        ),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="POLARIS_SIM_ADMIN_TOKEN", help="Admin-app access JWT, instead of a password."
        ),
    ] = None,
    state: Annotated[
        Path,
        typer.Option(envvar="POLARIS_SIM_STATE", help="Credentials file (created mode 0600)."),
    ] = DEFAULT_PATH,
) -> None:
    if admin_email and not admin_password and not admin_token and sys.stdin.isatty():
        admin_password = typer.prompt(f"Password for {admin_email}", hide_input=True)
    ctx.obj = Options(base_url.rstrip("/"), admin_email, admin_password, admin_token, state)


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


@contextlib.asynccontextmanager
async def _admin(options: Options) -> AsyncIterator[AdminApi | None]:
    if not (options.admin_token or (options.email and options.password)):
        yield None
        return
    async with admin_http_client(options.server) as client:
        admin = AdminApi(client)
        if options.admin_token:
            admin.use_bearer(options.admin_token)
        else:
            assert options.email
            assert options.password
            await admin.login(options.email, options.password)
        yield admin


def _need_admin(admin: AdminApi | None) -> AdminApi:
    if admin is None:
        err.print(
            "[red]Admin credentials needed[/red] to mint codes: --admin-email and "
            "--admin-password (or POLARIS_SIM_ADMIN_EMAIL / POLARIS_SIM_ADMIN_PASSWORD), "
            "or --admin-token."
        )
        raise typer.Exit(2)
    return admin


def _fail(exc: Exception) -> typer.Exit:
    if isinstance(exc, ProblemError):
        err.print(f"[red]Refused:[/red] {exc.status} {exc.code} {exc.detail}")
    elif isinstance(exc, httpx.HTTPError):
        err.print(f"[red]Cannot reach the server:[/red] {type(exc).__name__} {exc}")
    else:
        err.print(f"[red]{type(exc).__name__}:[/red] {exc}")
    return typer.Exit(1)


@cli.command()
def profiles() -> None:
    """List the device profiles."""
    for name, profile in PROFILES.items():
        out.print(
            f"{name:20} {profile.marketing_name:28} {profile.platform.value:7} "
            f"{profile.model:11} OS {profile.os_version:8} app {profile.app_version:8} "
            f"APNs {profile.apns_environment}",
            highlight=False,
        )


async def _pair(
    options: Options, profile: str, serial: str, uri: str | None, code: str | None, typed: bool
) -> str:
    phone_identity = identity(profile, serial)
    async with (
        _admin(options) as admin,
        device_http_client(options.server) as client,
    ):
        phone = SimulatedScanner(phone_identity, DeviceApi(client))
        minted = None
        if uri is None and code is None:
            minted = await _need_admin(admin).mint_code()
            uri, code = minted.pairing_uri, minted.code
        if typed or uri is None:
            assert code is not None

            async def show(pending: PendingPairing) -> None:
                # The code is a secret until redeemed; the check code is meant to be read.
                err.print(
                    f"Typed the code; check code on the device: [bold]{pending.check_code}[/bold]"
                )
                if minted is not None and admin is not None:
                    session = await admin.pairing_session(minted.pairing_session_id)
                    shown = session.get("pendingDevice", {}).get("checkCode")
                    if shown != pending.check_code:
                        raise ScenarioFailed(f"the console shows check code {shown}")
                    await admin.approve(minted.pairing_session_id)
                    err.print("Approved through the admin API.")
                else:
                    err.print("Waiting for an admin to approve it in the console …")

            credentials = await phone.pair_by_code(code, on_pending=show)
        else:
            credentials = await phone.pair_by_qr(uri)
        await phone.heartbeat()
    with StateFile(options.state).locked() as state:
        stored = state.load(options.server)
        # The first heartbeat may have rotated the pair (`rotateAfterIso` already past).
        kept = phone.credentials or credentials
        state.save(options.server, [*stored, StoredDevice.of(phone_identity, kept)])
    err.print(
        f"Paired {phone_identity.label} ({phone_identity.profile.model}); "
        f"credentials kept in {options.state}"
    )
    return credentials.device_id


@cli.command()
def pair(
    ctx: typer.Context,
    profile: Annotated[str, typer.Option(help="Device profile (see `profiles`).")] = "iphone-14",
    serial: Annotated[str | None, typer.Option(help="The device's serial, for its label.")] = None,
    uri: Annotated[
        str | None, typer.Option(help="A polaris://pair URI read off the console's QR code.")
    ] = None,
    code: Annotated[str | None, typer.Option(help="A code read off the console, typed.")] = None,
    typed: Annotated[bool, typer.Option(help="Type the minted code instead of scanning.")] = False,
) -> None:
    """Pair one simulated device and print its deviceId (never its secret)."""
    options: Options = ctx.obj
    if profile not in PROFILES:
        err.print(f"[red]Unknown profile[/red] {profile!r}; see `profiles`.")
        raise typer.Exit(2)
    serial = serial or f"QA-{secrets.token_hex(3).upper()}"
    try:
        device_id = _run(_pair(options, profile, serial, uri, code, typed))
    except (ProblemError, httpx.HTTPError, ScenarioFailed, StateFileError, TimeoutError) as exc:
        raise _fail(exc) from None
    print(device_id)


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` unless Ctrl+C comes first (then cancel it); True if it finished."""
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return not stop.is_set()


async def _fleet(options: Options, config: FleetConfig) -> tuple[Fleet, bool]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    connections = max(1, min(config.connections, config.devices))
    with StateFile(options.state).locked() as state:
        async with _admin(options) as admin, contextlib.AsyncExitStack() as clients:
            pools = device_http_clients(options.server, connections=connections)
            for pool in pools:
                await clients.enter_async_context(pool)
            fleet = Fleet(
                config, clients=pools, server_url=options.server, admin=admin, state=state
            )
            async with live_status(fleet.stats, out, options.server):
                if not await _until_stopped(fleet.enrol(), stop):
                    return fleet, False
                report = await fleet.run(stop)
            for line in report.lines():
                out.print(line, highlight=False)
            if admin is not None:
                online = await fleet.online_per_admin_api()
                out.print(
                    f"admin API: {online} of the fleet's {report.paired} devices online",
                    highlight=False,
                )
            return fleet, True


@cli.command()
def fleet(
    ctx: typer.Context,
    devices: Annotated[int, typer.Option(min=1, help="How many devices.")] = 100,
    heartbeat: Annotated[float, typer.Option(min=0.5, help="Seconds between heartbeats.")] = 30.0,
    flaky: Annotated[
        float,
        typer.Option(min=0, max=1, help="Chance per heartbeat of dropping off for 1-4 beats."),
    ] = 0.0,
    duration: Annotated[
        float | None,
        typer.Option(min=1, help="Seconds to run after pairing (default: until Ctrl+C)."),
    ] = None,
    connections: Annotated[
        int, typer.Option(min=1, help="HTTP connections, in pools of 8 (more rarely helps).")
    ] = 64,
    ramp: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds over which first heartbeats spread (default: min(interval, duration/2)).",
        ),
    ] = None,
    seed: Annotated[str, typer.Option(help="Names the fleet: same seed, same devices.")] = "fleet",
    max_error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Exit 1 above this share of failed requests.")
    ] = 0.01,
) -> None:
    """Pair (or resume) N devices and heartbeat them, showing a live status."""
    options: Options = ctx.obj
    config = FleetConfig(
        devices=devices,
        heartbeat=heartbeat,
        flaky=flaky,
        duration=duration,
        connections=connections,
        ramp=ramp,
        seed=seed,
    )
    try:
        running, finished = _run(_fleet(options, config))
    except (ProblemError, httpx.HTTPError, StateFileError, RuntimeError) as exc:
        raise _fail(exc) from None
    report = running.report()
    failed = report.pairing_failed > 0 or report.error_count > max_error_rate * max(
        report.requests, 1
    )
    if not finished:
        err.print(
            f"Stopped while pairing: {report.paired} devices kept in {options.state}; "
            "run again to resume."
        )
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(1)


async def _scenarios(
    options: Options,
    names: list[str],
    online_window: float,
    race_window: float,
    clone_response: CloneResponse = CloneResponse.FLAG,
) -> list[str]:
    failed: list[str] = []
    async with (
        _admin(options) as admin,
        device_http_client(options.server) as client,
    ):
        context = ScenarioContext(
            client,
            _need_admin(admin),
            online_window=online_window,
            race_window=race_window,
            clone_response=clone_response,
            log=lambda line: out.print(line, highlight=False),
        )
        for name in names:
            scenario = SCENARIOS[name]
            out.print(f"[bold]{name}[/bold]: {scenario.summary}")
            try:
                await scenario.run(context)
            except (ScenarioFailed, ProblemError, httpx.HTTPError) as exc:
                err.print(f"[red]✗ {name} failed:[/red] {exc}")
                failed.append(name)
            else:
                out.print(f"[green]✓ {name} passed[/green]")
    return failed


@cli.command()
def scenario(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Scenario names, or `all`; none lists them.")
    ] = None,
    online_window: Annotated[
        float, typer.Option(help="The server's HEARTBEAT_ONLINE_WINDOW_SECONDS.")
    ] = 90.0,
    race_window: Annotated[
        float, typer.Option(help="The server's ROTATION_RACE_WINDOW_SECONDS.")
    ] = ROTATION_RACE_WINDOW,
    clone_response: Annotated[
        CloneResponse, typer.Option(help="The server's CLONE_RESPONSE.")
    ] = CloneResponse.FLAG,
) -> None:
    """Run named scenarios (QR, typed, rotation, misbehaviours) and check the admin's view."""
    options: Options = ctx.obj
    if not names:
        for name, entry in SCENARIOS.items():
            out.print(f"{name:20} {entry.summary}", highlight=False)
        return
    chosen = list(SCENARIOS) if names == ["all"] else names
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        err.print(f"[red]Unknown scenario[/red] {', '.join(unknown)}; run `scenario` to list.")
        raise typer.Exit(2)
    try:
        failed = _run(_scenarios(options, chosen, online_window, race_window, clone_response))
    except (ProblemError, httpx.HTTPError) as exc:
        raise _fail(exc) from None
    if failed:
        raise typer.Exit(1)


def main() -> None:
    cli(prog_name="polaris-sim")


if __name__ == "__main__":
    main()
