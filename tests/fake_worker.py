"""`python -m tests.fake_worker`: the real worker process, with the scripted model in place of a GGUF.

Used where tests need worker processes to kill or to run side by side, and speed matters more than
the model. FAKE_TOKEN_DELAY (seconds per token) and FAKE_ENDLESS=1 shape its output.
"""

from __future__ import annotations

import os

from shared.logging import configure_logging
from tests.fakes import FakeChatModel
from worker.__main__ import run

if __name__ == "__main__":
    configure_logging()
    run(
        model=FakeChatModel(
            token_delay=float(os.environ.get("FAKE_TOKEN_DELAY", "0")),
            endless=os.environ.get("FAKE_ENDLESS") == "1",
        )
    )
