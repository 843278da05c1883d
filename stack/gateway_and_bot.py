"""The gateway and the Telegram bot in one process: what `make run` starts on a box with little
memory (BOT_IN_GATEWAY). `python -m stack.gateway_and_bot --host H --port P`.

Each is a Python process of 70-75 MB on its own, of which ~30 MB (the interpreter, pydantic,
the settings, httpx) is the same in both; one process holds it once. The bot still reaches the
gateway over HTTP on loopback, as it does from a process of its own, and nothing else changes:
its handlers only hand work over, so it takes little of the gateway's event loop.

The bot is restarted here when it fails (Telegram unreachable, a bad token), after a growing
pause, as the supervisor restarts a process of its own; the gateway keeps serving meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import uvicorn

from shared.config import BotSettings
from shared.logging import configure_logging
from stack.supervisor import Backoff

log = logging.getLogger("stack")


async def _pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def keep_bot_running(settings: BotSettings) -> None:
    """Run the bot until cancelled, starting it again whenever it stops."""
    from bot.__main__ import run

    loop = asyncio.get_running_loop()
    backoff = Backoff()
    while True:
        began = loop.time()
        try:
            await run(settings, handle_signals=False)
            failure = "stopped"
        except Exception as exc:  # noqa: BLE001 - whatever stops the bot, the gateway keeps serving
            failure = f"failed ({type(exc).__name__}: {exc})"
        pause = backoff.after(loop.time() - began)
        log.error("the bot %s; starting it again in %.0fs", failure, pause)
        await _pause(pause)


async def serve(host: str, port: int) -> None:
    # uvicorn's server owns Ctrl-C and SIGTERM: it stops taking requests and finishes the ones in
    # hand, and the bot is cancelled after it (its shutdown closes its sessions).
    server = uvicorn.Server(uvicorn.Config("api.main:create_app", factory=True, host=host, port=port))
    bot = asyncio.create_task(keep_bot_running(BotSettings()))
    try:
        await server.serve()
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    configure_logging()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
