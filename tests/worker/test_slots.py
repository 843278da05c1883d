"""The slots' RQ workers: what they do when they leave."""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from redis import Redis
from rq import Queue

from tests.conftest import wait_for
from worker.slots import SlotPool, SlotWorker


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


def test_a_forced_stop_that_lands_after_the_answer_ended_still_ends_the_slot_quietly(
    redis_conn: Redis, queue: Queue
) -> None:
    # A forced stop raises SystemExit in the thread writing an answer; it lands at that thread's
    # next step, which can be after the answer ended (RQ marking the worker idle). Here it always
    # lands then: while the slot waits for its next job.
    pool = SlotPool(queue, redis_conn, "forced", 1, stop_check_seconds=0.1)
    unhandled: list[BaseException | None] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: unhandled.append(args.exc_value)
    try:
        runner = threading.Thread(target=pool.run, args=(False, "WARNING", lambda *_a, **_k: True))
        runner.start()
        wait_for(lambda: pool.workers, timeout=30)
        slot = next(thread for thread in threading.enumerate() if thread.name == "slot-0")
        pool.stopping.set()
        assert slot.ident is not None
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(slot.ident), ctypes.py_object(SystemExit))
        runner.join(timeout=30)
    finally:
        threading.excepthook = hook
    assert not runner.is_alive()
    assert unhandled == []
