"""The Telegram bot: aiogram 3 over the gateway's HTTP API."""

from bot.lazy_types import install as _install_lazy_types

# Before any module of the bot imports aiogram (see bot.lazy_types).
_install_lazy_types()
