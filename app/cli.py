"""`polaris`: serve, migrate and manage console users. Settings come from the environment."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import typer
import uvicorn
from rich.console import Console
from tortoise import Tortoise

from app import db, metrics
from app.auth import guessing
from app.errors import DomainError
from app.models import Role
from app.services import accounts, app_onboarding, pairing_codes
from app.settings import ConfigurationError, Settings, load_settings

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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
