"""Two halves of equal CPU time, each in its own function, then an exit with
a status of its own. argv[1]: CPU seconds per half. The second half ends the
instant the program does: a sampler that drops what it had not resolved
when the process went away shows it short.

argv[2] (optional): CPU seconds of the interpreter's teardown, spent by an
object's __del__ after the module's functions were freed (their code
objects die before the process exits).

argv[3] (optional): CPU seconds of each of two helpers run once, before the
halves, and deleted, as modules do at import (urllib.parse deletes
_fix_result_transcoding; the second may take the first's address). A
function dying, or its address taken by the next, does not make a program
one that drops code as it runs, whose samples a sampler must distrust."""
import gc
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


class Teardown:
    def __init__(self, secs):
        self.secs = secs

    def __del__(self, clock=time.process_time):
        t0 = clock()
        while clock() - t0 < self.secs:
            pass


if len(sys.argv) > 3:
    # Compiled apart, as an imported module's code is: a helper's code
    # object is a constant of that module body's code (which dies once
    # run), not of this one's (which runs to the end), so deleting the
    # function frees it.
    for name in ("_setup", "_setup2"):
        helper = {"spin": spin}
        exec(compile("def %s(secs):\n    return spin(secs)\n" % name, "<helper>", "exec"), helper)
        helper[name](float(sys.argv[3]))
        del helper
        gc.collect()    # the function and its globals hold each other
secs = float(sys.argv[1])
first_half(secs)
second_half(secs)
print("done")
if len(sys.argv) > 2 and float(sys.argv[2]) > 0:
    # A module's names are cleared at teardown in the order they were
    # bound (those starting with "_" first): the functions above go before
    # this object, whose __del__ then runs with their code objects freed.
    zzz_teardown = Teardown(float(sys.argv[2]))
sys.exit(3)
