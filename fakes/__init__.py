"""Stand-ins for services we do not own, served on loopback: Telegram's Bot API.

Used by the tests, the memory benchmark and the compose deployment check, so that none of them
needs a real bot token or the internet.
"""
