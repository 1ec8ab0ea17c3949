"""Two halves of equal CPU time, each in its own function, then an exit with
a status of its own. argv[1]: CPU seconds per half. The second half ends the
instant the program does: a sampler that drops what it had not resolved
when the process went away shows it short."""
import sys
import time


def spin(secs):
    t0 = time.process_time()
    n = 0
    while time.process_time() - t0 < secs:
        for _ in range(200):
            n += 1
    return n


def first_half(secs):
    return spin(secs)


def second_half(secs):
    return spin(secs)


secs = float(sys.argv[1])
first_half(secs)
second_half(secs)
print("done")
sys.exit(3)
