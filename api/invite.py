"""Personal credentials from the command line: `make invite NAME=…`, `make token NAME=…`.

    python -m api.invite alice          a one-time link to the web chat for alice (valid INVITE_HOURS)
    python -m api.invite alice --api    a personal token for OpenAI-compatible clients (/v1)
    python -m api.invite alice --api --days 90   one that stops working after 90 days
    python -m api.invite alice --revoke every API token of alice stops working

Both act as the user `web:<name>`: the same person on the page and in a client. The secret is
printed once; only its hash is stored.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta

from api.services import credentials
from shared.config import DatabaseSettings, GatewaySettings
from shared.db import Database
from shared.identity import web_user
from shared.models import CredentialKind

NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
LOCAL_URL = "http://127.0.0.1:8000"
OWNER = "owner"
# The start banner's link is meant to be opened now; a log that keeps it keeps it dead after this.
OWNER_LINK_HOURS = 1


def user_for(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError("NAME: 1-64 letters, digits or _ . @ - (e.g. NAME=alice)")
    return web_user(name)


def invite_link(db: Database, name: str, base_url: str, hours: int) -> str:
    token, _ = credentials.issue(db, user_for(name), CredentialKind.INVITE, timedelta(hours=hours))
    link = credentials.link(base_url, token)
    assert link is not None
    return link


def owner_link(db: Database, base_url: str) -> str | None:
    """The owner's one-time sign-in for the start banner, or None once they have a web session.

    A link is printed only until the owner has signed in, lives an hour, and each new one cancels
    the unopened ones before it: a log of many starts holds at most one link that opens."""
    if any(c.kind == CredentialKind.SESSION for c in credentials.held_by(db, user_for(OWNER))):
        return None
    credentials.drop_invites(db, user_for(OWNER))
    return invite_link(db, OWNER, base_url, OWNER_LINK_HOURS)


def api_token(db: Database, name: str, days: int | None = None) -> str:
    """A personal API token; with `days`, one that expires (none by default: clients keep it)."""
    lifetime = timedelta(days=days) if days else None
    token, _ = credentials.issue(db, user_for(name), CredentialKind.API, lifetime, label=name)
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.invite", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="who the credential is for (letters, digits, _ . @ -)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--api", action="store_true", help="a token for /v1 clients instead of a web link")
    what.add_argument("--revoke", action="store_true", help="revoke every API token of this person")
    parser.add_argument("--days", type=int, metavar="N", help="with --api: the token expires after N days")
    args = parser.parse_args(argv)
    if args.days is not None and (not args.api or not 1 <= args.days <= 3650):
        parser.error("--days goes with --api, from 1 to 3650")
    gateway = GatewaySettings()
    db = Database.from_settings(DatabaseSettings())
    try:
        if args.revoke:
            gone = credentials.revoke_held(db, user_for(args.name), kind=CredentialKind.API)
            # The gateway may trust a token it checked in the last 30 s a little longer.
            print(f"Revoked {gone} API token(s) of {user_for(args.name)}; they stop working within 30 s.")
        elif args.api:
            lasts = f"for {args.days} days" if args.days else "until revoked"
            print(f"Personal API token for {user_for(args.name)} ({lasts}; shown once; use as Bearer key):")
            print(api_token(db, args.name, args.days))
        else:
            base = gateway.public_url or LOCAL_URL
            print(f"One-time link for {user_for(args.name)} (opens once, within {gateway.invite_hours} h):")
            print(invite_link(db, args.name, base, gateway.invite_hours))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
