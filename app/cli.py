"""`polaris`: serve, migrate and manage console users. Settings come from the environment."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from tortoise import Tortoise

from app import clock, db, metrics
from app.auth import guessing
from app.edge.one_write import OneWriteHttpToolsProtocol
from app.errors import DomainError
from app.models import Role
from app.services import accounts, app_onboarding, pairing_codes, seeding
from app.services.credentials import DeviceDetails
from app.services.pairing_sessions import credential_ttl
from app.settings import ConfigurationError, Settings, load_settings
from simulator.profiles import Identity, fleet_identities
from simulator.state import DEFAULT_PATH, StateFile, StateFileError, StoredDevice

T = TypeVar("T")

cli = typer.Typer(
    help="Polaris device pairing service.", no_args_is_help=True, add_completion=False
)
out = Console()
err = Console(stderr=True)

FIRST_ADMIN_EMAIL = "admin@example.com"


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        err.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _run_with_db(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        await Tortoise.init(config=db.tortoise_config(settings.database_url))
        try:
            return await work()
        finally:
            await Tortoise.close_connections()

    return asyncio.run(runner())


def _migrate(settings: Settings) -> None:
    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_start":
            out.print(f"  applying {app_label}.{name} …", end="")
        elif event == "apply_done":
            out.print(" [green]done[/green]")

    asyncio.run(db.migrate(settings.database_url, progress=progress))


@cli.command()
def migrate() -> None:
    """Apply pending database migrations."""
    settings = _settings()
    out.print(f"Migrating {settings.database_url.split('://', 1)[0]} database …")
    _migrate(settings)
    out.print("[green]Database schema is up to date.[/green]")


def _create_user(email: str, password: str, role: Role) -> None:
    settings = _settings()
    try:
        user = _run_with_db(
            settings, lambda: accounts.create_user(email=email, password=password, role=role)
        )
    except DomainError as exc:
        err.print(f"[red]Could not create the user:[/red] {exc.message}")
        raise typer.Exit(1) from None
    out.print(f"Created {user.role.value} [bold]{user.email}[/bold].")


@cli.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Sign-in email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create a console user with the admin role."""
    _create_user(email, password, Role.ADMIN)


@cli.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="Sign-in email.")],
    role: Annotated[Role, typer.Option(case_sensitive=False, help="admin or operator.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create a console user with the given role."""
    _create_user(email, password, role)


def _bootstrap_first_admin(settings: Settings, sign_in_url: str) -> None:
    if _run_with_db(settings, accounts.has_users):
        return
    if settings.is_production:
        out.print(
            "[yellow]No console users yet.[/yellow] Create one with "
            "[bold]polaris create-admin --email you@example.com[/bold]."
        )
        return
    password = secrets.token_urlsafe(12)
    _run_with_db(
        settings,
        lambda: accounts.create_user(email=FIRST_ADMIN_EMAIL, password=password, role=Role.ADMIN),
    )
    out.print()
    out.print("[bold green]Created the first admin.[/bold green] Sign in with:")
    out.print(f"  URL       {sign_in_url}")
    out.print(f"  Email     {FIRST_ADMIN_EMAIL}")
    out.print(f"  Password  {password}")
    out.print("[dim]The password is shown only this once; keep it somewhere safe.[/dim]")
    out.print()


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the web service (console, device API, admin API)."""
    settings = _settings()
    if settings.is_embedded and workers > 1:
        # Embedded presence and revocations live in one process's memory: a second process
        # would not hear of a revocation made in the first.
        err.print(
            "[red]--workers > 1 needs REDIS_URL[/red] (embedded mode keeps presence and "
            "revocations in one process). Set REDIS_URL, or run one worker."
        )
        raise typer.Exit(2)
    # Here, once, rather than in each worker's lifespan, so `--workers N` never races.
    if settings.should_auto_migrate:
        _migrate(settings)
    shown_host = settings.public_base_url if host in ("0.0.0.0", "::") else f"http://{host}:{port}"  # noqa: S104
    _bootstrap_first_admin(settings, f"{shown_host}/login")
    _warn_if_guessable(settings)
    out.print(f"Serving on http://{host}:{port} (Ctrl+C to stop)")
    with contextlib.ExitStack() as stack:
        if workers > 1:
            # One scrape answers for every worker (app.metrics).
            stack.enter_context(metrics.shared_by_workers())
        _run_uvicorn(host, port, workers)


def _guessing_odds(settings: Settings, live: int) -> list[guessing.GuessingOdds]:
    return [
        guessing.typed_code_odds(
            settings, code_bits=5 * pairing_codes.CODE_LENGTH, live_codes=live
        ),
        guessing.app_token_odds(
            settings, token_bits=8 * app_onboarding.QR_TOKEN_BYTES, live_tokens=live
        ),
    ]


def _warn_if_guessable(settings: Settings) -> None:
    for odds in _guessing_odds(settings, live=1):
        if not odds.meets_goal:
            err.print(
                f"[yellow]Warning:[/yellow] with REDEEM_FAILURES_GLOBAL={odds.budget}, a "
                f"{odds.what} is guessed within its life with probability 2^{odds.log2:.1f}, "
                f"above the 2^-{guessing.GOAL_BITS} aimed for (see `polaris brute-force-odds`).",
                soft_wrap=True,
            )


@cli.command("brute-force-odds")
def brute_force_odds(
    live: Annotated[
        int, typer.Option(min=1, help="Secrets of each kind alive at the same moment.")
    ] = 1,
) -> None:
    """Print how likely a guessed code or QR token is to hit a live one, from the configured
    budgets; exits 1 if either is above 2^-32."""
    settings = _settings()
    goal = f"at most 2^-{guessing.GOAL_BITS}"
    out.print(f"Guessing a live secret within its life ({goal} aimed for):", highlight=False)
    for odds in _guessing_odds(settings, live):
        rows = {
            "secret": f"{odds.bits} bits",
            "budget": f"{odds.budget} over all clients: {odds.allowed} per {odds.window_seconds} s",
            "life": f"{odds.lifetime_seconds} s, {odds.live} alive at once",
            "guesses per life": f"at most {odds.guesses:,}",
            "probability": f"2^{odds.log2:.1f} = {float(odds.probability):.3g}",
            f"goal ({goal})": "met" if odds.meets_goal else "NOT MET",
        }
        out.print(f"\n{odds.what}", highlight=False)
        for name, value in rows.items():
            out.print(f"  {name:<24}{value}", highlight=False, soft_wrap=True)
    out.print()
    out.print(
        "A typed code that is guessed reaches pending approval only; a scanned code also "
        "needs its 256-bit console proof.",
        soft_wrap=True,
    )
    if not all(odds.meets_goal for odds in _guessing_odds(settings, live)):
        raise typer.Exit(1)


def _run_uvicorn(host: str, port: int, workers: int) -> None:
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        server_header=False,
        log_config=None,
        # The app writes its own access log; uvicorn's, even switched off in `logging`,
        # would still format its arguments on every request.
        access_log=False,
        http=OneWriteHttpToolsProtocol,
    )


@cli.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the service with a simulated fleet, on a database of its own made anew each time."""
    from app.demo import run_demo

    configured = _settings()
    database = configured.data_dir / "demo.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (database, *database.parent.glob(database.name + "-*")):
        leftover.unlink(missing_ok=True)
    # Embedded and quiet: a first look needs no Redis, and no access-log line per heartbeat.
    settings = configured.model_copy(
        update={"database_url": f"sqlite://{database}", "redis_url": None, "log_level": "WARNING"}
    )
    out.print(f"Demo on a fresh {database} (your own database is untouched).", soft_wrap=True)
    _migrate(settings)
    password = secrets.token_urlsafe(12)
    _run_with_db(
        settings,
        lambda: accounts.create_user(email=FIRST_ADMIN_EMAIL, password=password, role=Role.ADMIN),
    )
    out.print(f"Sign in at http://{host}:{port}/login", soft_wrap=True)
    out.print(f"  Email     {FIRST_ADMIN_EMAIL}", soft_wrap=True)
    out.print(f"  Password  {password}", soft_wrap=True)
    out.print("Starting the fleet … (Ctrl+C to stop)")
    asyncio.run(
        run_demo(
            settings,
            host=host,
            port=port,
            email=FIRST_ADMIN_EMAIL,
            password=password,
            say=lambda line: out.print(line, highlight=False, soft_wrap=True),
        )
    )


@cli.command("rotate-signing-key")
def rotate_signing_key(
    grace_minutes: Annotated[
        int,
        typer.Option(min=11, help="How long the old key stays published (> token lifetime)."),
    ] = 60,
) -> None:
    """Sign access tokens with a new key; the old one verifies until its grace ends."""
    from app.services import signing_keys

    settings = _settings()
    key = _run_with_db(
        settings,
        lambda: signing_keys.rotate(settings=settings, grace=timedelta(minutes=grace_minutes)),
    )
    out.print(
        f"New signing key [bold]{key.id}[/bold]. Running servers switch to it within "
        f"{signing_keys.REFRESH_SECONDS} s; the previous key stays published for "
        f"{grace_minutes} min."
    )


def _seed_details(identity: Identity, settings: Settings) -> DeviceDetails:
    chosen = identity.profile
    capabilities = tuple(c for c in chosen.capabilities if c in settings.supported_capabilities)
    return DeviceDetails(
        label=identity.label,
        platform=chosen.platform.value,
        model=chosen.model,
        os_version=chosen.os_version,
        app_version=chosen.app_version,
        apns_environment=chosen.apns_environment,
        capabilities=capabilities or settings.supported_capabilities[:1],
        push_token=identity.push_token,
    )


def _seed_identities(count: int, fleet: str) -> list[Identity]:
    """The devices `polaris-sim fleet --devices N --seed <fleet>` is made of, so it resumes
    them instead of pairing new ones; labels as an operator would give them."""
    return [
        dataclasses.replace(
            identity,
            label=seeding.seeded_label(
                identity.serial, identity.profile.platform.value, identity.profile.marketing_name
            ),
        )
        for identity in fleet_identities(count, seed=fleet)
    ]


def _confirm_production(settings: Settings, count: int, yes: bool) -> None:
    if not settings.is_production or yes:
        return
    if not sys.stdin.isatty():
        err.print(
            "[red]POLARIS_ENV is production:[/red] seeding writes devices with live credentials "
            "into its database. Pass --yes if that is what you want."
        )
        raise typer.Exit(2)
    typer.confirm(
        f"POLARIS_ENV is production. Write {count:,} devices with live credentials into its "
        "database?",
        abort=True,
    )


async def _seed(
    settings: Settings,
    identities: list[Identity],
    *,
    owner_email: str | None,
    batch: int,
    seeded: list[tuple[Identity, seeding.SeededDevice]],
) -> tuple[str, bool]:
    """Seed until done or told to stop; returns the owner's email and whether it stopped."""
    owner = await seeding.seeding_owner(owner_email)
    details = [_seed_details(identity, settings) for identity in identities]
    # A cancelled commit may still commit, leaving devices whose credentials nobody kept:
    # Ctrl+C stops between batches instead.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    columns = (TextColumn("Seeding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False) as progress:
        task = progress.add_task("devices", total=len(details))
        batches = seeding.seed_devices(
            details=details,
            owner=owner,
            now=clock.now(),
            ttl=credential_ttl(settings),
            batch_size=batch,
        )
        async with contextlib.aclosing(batches):
            async for done in batches:
                start = len(seeded)
                seeded.extend(zip(identities[start : start + len(done)], done, strict=True))
                progress.advance(task, len(done))
                if stop.is_set():
                    break
    return owner.email, stop.is_set()


def _file_seeded(
    state: StateFile, server: str, seeded: list[tuple[Identity, seeding.SeededDevice]]
) -> int:
    """Add the seeded devices' credentials under `server`; returns how many entries with the
    same serials they replace (devices of an earlier run, whose credentials are dropped)."""
    fresh = [
        StoredDevice(
            serial=identity.serial,
            profile=identity.profile.name,
            label=identity.label,
            push_token=identity.push_token,
            device_id=str(device.device_id),
            device_token=device.device_token,
            device_secret=device.device_secret,
            expires_at_iso=device.expires_at_iso,
        )
        for identity, device in seeded
    ]
    serials = {device.serial for device in fresh}
    earlier = state.load(server)
    kept = [device for device in earlier if device.serial not in serials]
    state.save(server, kept + fresh)
    return len(earlier) - len(kept)


@cli.command("seed-devices")
def seed_devices(
    count: Annotated[int, typer.Option(min=1, help="How many paired devices to create.")],
    state: Annotated[
        Path, typer.Option(help="The simulator's credentials file (written mode 0600).")
    ] = DEFAULT_PATH,
    server_url: Annotated[
        str | None,
        typer.Option(
            help="The URL the simulator and Locust will be pointed at: the credentials are "
            "filed under it (default: PUBLIC_BASE_URL)."
        ),
    ] = None,
    batch: Annotated[
        int, typer.Option(min=1, max=seeding.MAX_BATCH, help="Devices per transaction.")
    ] = seeding.DEFAULT_BATCH,
    owner: Annotated[
        str | None,
        typer.Option(help="Email of the admin who owns the devices (default: the first admin)."),
    ] = None,
    fleet: Annotated[
        str,
        typer.Option(help="The simulator fleet's --seed: serials are SIM-<fleet>-00000 …"),
    ] = "fleet",
    yes: Annotated[
        bool, typer.Option("--yes", help="Seed a production database without asking.")
    ] = False,
) -> None:
    """Create N paired scanners through the service layer, audited, and write their
    credentials where the simulator and Locust read them."""
    settings = _settings()
    _confirm_production(settings, count, yes)
    server = (server_url or settings.public_base_url).rstrip("/")
    started = time.monotonic()
    identities = _seed_identities(count, fleet)
    seeded: list[tuple[Identity, seeding.SeededDevice]] = []
    replaced = 0
    try:
        with StateFile(state).locked() as file:
            file.load(server)  # an unreadable file stops us before the database is touched
            try:
                owner_email, stopped = _run_with_db(
                    settings,
                    lambda: _seed(
                        settings, identities, owner_email=owner, batch=batch, seeded=seeded
                    ),
                )
            finally:
                # Committed batches stay in the database, so their credentials must not be lost.
                if seeded:
                    replaced = _file_seeded(file, server, seeded)
    except StateFileError as exc:
        err.print(f"[red]Credentials file:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    except DomainError as exc:
        err.print(f"[red]Could not seed:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(1) from None
    elapsed = time.monotonic() - started
    if replaced:
        out.print(f"Replaced {replaced:,} earlier entries with the same serials.", soft_wrap=True)
    if stopped:
        out.print(f"Stopped after {len(seeded):,} of {count:,} devices.", highlight=False)
    out.print(
        f"Seeded {len(seeded):,} devices in {elapsed:.1f} s ({len(seeded) / elapsed:,.0f} "
        f"devices/s), owned by {owner_email}; credentials for {server} in {state} (mode 0600).",
        highlight=False,
        soft_wrap=True,
    )
    if stopped:
        raise typer.Exit(130)


@cli.command()
def worker(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve the job metrics on this port at /metrics (plain HTTP, no token: keep "
            "it inside the deployment's network).",
        ),
    ] = None,
) -> None:
    """Run background jobs under arq (needs REDIS_URL); any number of workers may run."""
    _settings()
    try:
        from app.worker import run
    except ConfigurationError as exc:
        err.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    if metrics_port is not None:
        metrics.serve_on_port(metrics_port)
        out.print(f"Job metrics on port {metrics_port} at /metrics")
    out.print("Worker running the scheduled jobs (Ctrl+C to stop)")
    run()


@cli.command("measure-presence", hidden=True)
def measure_presence(
    devices: Annotated[int, typer.Option(min=1, help="Size of the measured fleet.")] = 100_000,
    rounds: Annotated[int, typer.Option(min=1, help="Sweeps and flushes timed (median).")] = 1,
    allow_existing: Annotated[
        bool,
        typer.Option(help="Measure on a database or presence store that already has data."),
    ] = False,
) -> None:
    """Time the offline sweep and the last-seen flush over a fleet built for it and weigh the
    presence store; prints JSON. Exits 1 on a database with devices, unless allowed."""
    import orjson

    from app.services import presence_measure

    settings = _settings()
    try:
        figures = _run_with_db(
            settings,
            lambda: presence_measure.measure(
                settings=settings, devices=devices, rounds=rounds, allow_existing=allow_existing
            ),
        )
    except DomainError as exc:
        err.print(f"[red]Not measured:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(1) from None
    typer.echo(orjson.dumps(figures.as_dict()).decode())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
