"""Non-ASCII names and paths: the function 計算() and the class Ünïcode live
in a file whose name is not ASCII either; the profile must show them as UTF-8."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import clock, lifetime, ready  # noqa: E402


def 計算(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


class Ünïcode:
    def método(self):
        return 計算(20000)


def main():
    end = clock() + lifetime()
    obj = Ünïcode()
    ready()
    while clock() < end:
        obj.método()


if __name__ == "__main__":
    main()
