"""A fixed amount of mixed Python work (calls, dicts, strings, lists) for the
slowdown benchmark.  argv[1]: rounds, argv[2]: file to write the seconds the
work took, wall-clock and CPU ("WALL CPU"), measured inside so interpreter
start-up is not counted."""
import sys
import time

clock = getattr(time, "perf_counter", time.time)
cpu_clock = getattr(time, "process_time", time.clock if hasattr(time, "clock") else time.time)


def tokenize(text):
    return [w.strip(".,").lower() for w in text.split()]


def count_words(words):
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return counts


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def one_round(text):
    words = tokenize(text)
    counts = count_words(words)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return fib(15) + len(top) + sum(i * i for i in range(500))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    text = "The quick brown fox jumps over the lazy dog, again and again. " * 40
    start, cpu_start = clock(), cpu_clock()
    total = 0
    for _ in range(rounds):
        total += one_round(text)
    result = "%.6f %.6f" % (clock() - start, cpu_clock() - cpu_start)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(result + "\n")
    else:
        print(result)


if __name__ == "__main__":
    main()
