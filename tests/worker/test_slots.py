"""The slots' RQ workers: what they do when they leave."""

from __future__ import annotations

import threading
from typing import Any

from redis import Redis
from rq import Queue

from tests.conftest import wait_for
from worker.slots import SlotWorker


def test_a_slot_leaving_ends_its_command_listener_even_when_the_reply_comes_first(
    redis_conn: Redis, queue: Queue
) -> None:
    # RQ unsubscribes, then tells its listener to stop. On a busy machine the listener can read the
    # reply first and wait again (for a minute): the slot's stop then lasted RQ's one-second join and
    # left the thread behind. Here the reply always comes first.
    worker = SlotWorker(
        [queue], connection=redis_conn, serializer=queue.serializer, stopping=threading.Event()
    )
    worker.subscribe()  # type: ignore[no-untyped-call]
    listener, pubsub = worker.pubsub_thread, worker.pubsub
    assert listener is not None and pubsub is not None
    unsubscribed = threading.Event()
    reads_after = threading.Event()
    read = pubsub.get_message

    def get_message(*args: Any, **kwargs: Any) -> Any:
        if unsubscribed.is_set():
            reads_after.set()
        return read(*args, **kwargs)

    def unsubscribe(*args: Any) -> Any:
        result = send(*args)
        unsubscribed.set()
        # Return only once the listener has read the reply: it waits for its next message,
        # unless it was told to stop before.
        wait_for(lambda: reads_after.is_set() or not listener.is_alive(), timeout=30)
        return result

    send = pubsub.unsubscribe
    pubsub.get_message = get_message
    pubsub.unsubscribe = unsubscribe
    wait_for(listener.is_alive, timeout=30)

    worker.unsubscribe()

    assert not listener.is_alive()
    assert not reads_after.is_set()
