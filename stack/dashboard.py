"""rq-dashboard, read-only: `python -m stack.dashboard` takes rq-dashboard's own options.

rq-dashboard can hide its delete actions (--disable-delete) but not requeue, empty or compact,
and its forms carry no CSRF protection (requeue-all even answers a GET): a page the operator
visits could make their browser replay failed work or empty a queue. Here every action is
refused; the dashboard only shows. Retrying is done through the gateway, which checks owners.
"""

from __future__ import annotations

from flask import abort, request
from rq_dashboard.cli import main
from rq_dashboard.web import blueprint

# The one action reachable by GET; every other one is a POST.
_ACTIONS_BY_GET = frozenset({"rq_dashboard.requeue_all"})


def _read_only() -> None:
    if request.method not in ("GET", "HEAD") or request.endpoint in _ACTIONS_BY_GET:
        abort(403, "This dashboard is read-only.")


# First of the blueprint's hooks: refused before anything else runs (its own hooks open Redis).
blueprint.before_request_funcs.setdefault(None, []).insert(0, _read_only)


if __name__ == "__main__":
    main()
