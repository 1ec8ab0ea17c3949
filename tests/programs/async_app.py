"""An asyncio program with named tasks for `record --async` (Python 3.8+).

- handler_a awaits fetch_a, which awaits asyncio.sleep (idle most of the time);
- handler_b awaits a Queue.get that nobody feeds (always idle);
- busy: CPU work in crunch(), yielding to the loop with asyncio.sleep(0)
  every few milliseconds, so it is the task running when sampled.
Lines marked `# AWAIT-x` are where each coroutine waits. Prints
`ready PID` once every task has started."""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402

END = clock() + lifetime()


async def fetch_a():
    await asyncio.sleep(0.05)  # AWAIT-FETCH


async def handler_a():
    while clock() < END:
        await fetch_a()  # AWAIT-HANDLER-A


async def handler_b(queue):
    while True:
        await queue.get()  # AWAIT-HANDLER-B


def crunch(n):
    total = 0
    for i in range(n):
        total += i * i  # CRUNCH
    return total


async def busy():
    while clock() < END:
        crunch(20000)
        await asyncio.sleep(0)


async def main():
    queue = asyncio.Queue()
    tasks = [
        asyncio.ensure_future(handler_a()),
        asyncio.ensure_future(handler_b(queue)),
        asyncio.ensure_future(busy()),
    ]
    for t, name in zip(tasks, ("handler_a", "handler_b", "busy")):
        t.set_name(name)
    await asyncio.sleep(0.1)
    ready()
    await tasks[0]
    await tasks[2]
    tasks[1].cancel()


asyncio.run(main())
