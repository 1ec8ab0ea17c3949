"""asyncio started late: the program sleeps (argv[1] seconds, default 1)
before it imports asyncio, then runs one task, early(), that burns CPU for
three times as long as the program ran before asyncio started, plus 1 s,
and exits.  Used to check that `record --async` sees a task that starts after
recording began (its task containers did not exist at the first lookup)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, ready  # noqa: E402


def spin(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def main():
    start = clock()
    ready()
    time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    import asyncio                      # the task containers appear now
    started = clock()
    phase = 3 * (started - start) + 1.0

    async def early():
        while clock() - started < phase:
            spin(20000)

    asyncio.run(early())


if __name__ == "__main__":
    main()
