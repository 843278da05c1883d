"""Alembic environment: migrations run on an engine built like the application's (same pragmas)."""

from __future__ import annotations

from alembic import context

from shared.config import DatabaseSettings
from shared.db import make_engine
from shared.models import Base

config = context.config
url = config.attributes.get("database_url") or DatabaseSettings().database_url

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(DatabaseSettings(database_url=url))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
