"""``journey serve``, ``journey tokens`` and ``journey audit``: the HTTP service and its access."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import click

from mbcjourney import logs
from mbcjourney.bootstrap import open_access, open_service
from mbcjourney.cli.options import Context, db_option, parse_date, parse_instant, pass_context
from mbcjourney.cli.output import print_table
from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.audit import AuditRow
from mbcjourney.processors.tokens import Scope
from mbcjourney.projections.settings import ClinicalSettings
from mbcjourney.service import ServiceConfig
from mbcjourney.service.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_RATE_LIMIT
from mbcjourney.settings import database_url

SCOPES = [s.value for s in Scope]


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface, e.g. in a container).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (each with its own rate-limit counters unless "
                   "--rate-limit-storage is shared).")
@click.option("--bootstrap", default=None, metavar="HOST:PORT",
              help="Scale-out: publish accepted events to Kafka for the workers, and read "
                   "the PostgreSQL they write (--db).  Default: the embedded database only "
                   "(never taken from JOURNEY_KAFKA_BOOTSTRAP: scale-out is asked for).")
@click.option("--topic", default="mbc.clinical-events", show_default=True, metavar="NAME")
@click.option("--dead-letter-topic", default="mbc.dead-letter", show_default=True, metavar="NAME")
@click.option("--max-body", default=DEFAULT_MAX_BODY_BYTES, show_default=True,
              type=click.IntRange(1024), metavar="BYTES", help="Largest POST body (else 413).")
@click.option("--rate-limit", default=DEFAULT_RATE_LIMIT, show_default=True, metavar="RATE",
              help="Requests per token, e.g. '100/second', '5000/minute'; 'none' for no limit.")
@click.option("--rate-limit-storage", default="memory://", show_default=True, metavar="URI",
              help="Where the counters live (the limits library's storage URIs).")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True, metavar="IPS",
              help="Proxies trusted for X-Forwarded-Proto/For (behind a TLS proxy).")
@pass_context
def serve(ctx: Context, db: str | None, host: str, port: int, workers: int,
          bootstrap: str | None, topic: str, dead_letter_topic: str, max_body: int,
          rate_limit: str, rate_limit_storage: str, forwarded_allow_ips: str) -> None:
    """Run the HTTP service (API under /v1, OpenAPI at /openapi.json) until stopped.

    Create a token first (journey tokens create).  Example:

        journey serve --db sqlite:///study.db --port 8000
    """
    import uvicorn

    limit = None if rate_limit.strip().lower() == "none" else rate_limit
    if limit is not None:
        from limits import parse

        try:
            parse(limit)
        except ValueError:
            raise click.BadParameter("expected e.g. 100/second", param_hint="--rate-limit"
                                     ) from None
    config = ServiceConfig(database_url(db), bootstrap, topic, dead_letter_topic, max_body,
                           limit, rate_limit_storage)
    click.echo(f"journey serve: http://{host}:{port} (OpenAPI /openapi.json, docs /docs)",
               err=True)
    if workers == 1:
        with open_service(config, ctx.settings) as app:
            uvicorn.run(app, host=host, port=port, access_log=False, log_config=None,
                        proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)
        return
    import os

    os.environ["JOURNEY_SERVE_CONFIG"] = _config_text(config)
    os.environ["JOURNEY_SERVE_SETTINGS"] = ctx.settings.model_dump_json()
    os.environ["JOURNEY_SERVE_LOG_LEVEL"] = logging.getLevelName(
        logging.getLogger().getEffectiveLevel()).lower()
    uvicorn.run("mbcjourney.cli.service:app_from_environment", factory=True, host=host,
                port=port, workers=workers, access_log=False, log_config=None,
                proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)


def _config_text(config: ServiceConfig) -> str:
    import orjson

    return orjson.dumps(config.__dict__).decode()


def app_from_environment() -> object:
    """uvicorn's factory in each of ``--workers`` processes: the app from the parent's
    config and clinical settings (passed in the environment, which the processes inherit).

    The service stays open for the life of the process (uvicorn owns it).
    """
    import os

    import orjson

    logs.configure(os.environ.get("JOURNEY_SERVE_LOG_LEVEL", "warning"))
    config = ServiceConfig(**orjson.loads(os.environ["JOURNEY_SERVE_CONFIG"]))
    settings = ClinicalSettings.model_validate_json(os.environ["JOURNEY_SERVE_SETTINGS"])
    opened = open_service(config, settings)
    return opened.__enter__()


# --- tokens ------------------------------------------------------------------------------


@click.group()
def tokens() -> None:
    """Bearer tokens of the HTTP service: shown once when created, stored only as a hash."""


@click.command("create")
@click.option("--name", required=True, help="Who or what holds it (unique), e.g. 'lab-system'.")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES),
              help="What it may do (repeat for several).")
@click.option("--centre", "centres", multiple=True, metavar="CENTRE",
              help="Limit it to these centres' patients (repeat; default: every centre).")
@click.option("--expires", default=None, callback=parse_date, metavar="DATE",
              help="Last day it is valid (default: until revoked).")
@db_option
def tokens_create(name: str, scopes: tuple[str, ...], centres: tuple[str, ...],
                  expires: date | None, db: str | None) -> None:
    """Create a token and print it (once: only its hash is kept).

    Example: journey tokens create --name coord-c01 --scope patients:read
    --scope alerts:write --centre C01 --db sqlite:///study.db
    """
    now = datetime.now(UTC)
    if expires is not None and expires < now.date():
        raise click.BadParameter("the day is past", param_hint="--expires")
    with open_access(db, create=True) as (store, _audit):
        token, secret = store.issue(name, [Scope(s) for s in scopes], centres=centres,
                                    expires_on=expires, now=now)
    click.echo(secret)
    click.echo(f"token {token.name!r}: {' '.join(sorted(s.value for s in token.scopes))}"
               f"{'; centres ' + ' '.join(sorted(token.centres)) if token.centres else ''}"
               " (shown once: keep it now)", err=True)


@click.command("list")
@db_option
def tokens_list(db: str | None) -> None:
    """Every token: name, scopes, centres, expiry, revocation (never the token)."""
    with open_access(db) as (store, _audit):
        rows = [(t.name, " ".join(sorted(s.value for s in t.scopes)),
                 " ".join(sorted(t.centres)) or "*", t.created_at,
                 t.expires_on.isoformat() if t.expires_on else "",
                 t.revoked_at or "") for t in store.list()]
    print_table(("name", "scopes", "centres", "created_at", "expires_on", "revoked_at"), rows)


@click.command("revoke")
@click.argument("name")
@db_option
def tokens_revoke(name: str, db: str | None) -> None:
    """Revoke the token NAME (refused from the next request on).

    Example: journey tokens revoke lab-system --db sqlite:///study.db
    """
    with open_access(db) as (store, _audit):
        if not store.revoke(name, now=datetime.now(UTC)):
            raise ConfigurationError(f"no unrevoked token named {name!r} (see journey tokens "
                                     "list)")
    click.echo(f"revoked {name}")


def _since(ctx: object, param: object, value: str | None) -> datetime | None:
    if value is not None and len(value) == 10:
        day = parse_date(ctx, param, value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    return parse_instant(ctx, param, value)


# --- audit -------------------------------------------------------------------------------


@click.command()
@click.option("--patient", default=None, metavar="ID", help="Only records naming this patient.")
@click.option("--token", "token_name", default=None, metavar="NAME", help="Only this token's.")
@click.option("--since", default=None, callback=lambda c, p, v: _since(c, p, v),
              metavar="DATE-TIME", help="Only records from then on (a date: from its start).")
@db_option
def audit(patient: str | None, token_name: str | None, since: datetime | None,
          db: str | None) -> None:
    """Who read or changed which patients' data through the service, oldest first.

    Example: journey audit --patient P0001 --db sqlite:///study.db
    """
    with open_access(db) as (_store, log):
        rows = log.rows(patient=patient, token=token_name, since=since)
    names = tuple(AuditRow.__dataclass_fields__)
    print_table(names, [tuple("" if getattr(r, n) is None else getattr(r, n) for n in names)
                        for r in rows])
