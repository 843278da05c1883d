"""The bot's tests. `bot` comes first, as in the bot's own process: it sets how aiogram is imported."""

import bot  # noqa: F401
