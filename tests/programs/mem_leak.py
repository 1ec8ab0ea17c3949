"""A planted leak beside a line churning gigabytes of temporaries, for
tests/integration/test_memory.py (lines found by their tags)."""
import time

leaked = []


def step():
    for j in range(4):
        tmp = bytes(10**7)                      # CHURN: 150 x 4 x 10 MB = 6 GB, freed
    leaked.append(bytearray(2 * 10**5))         # LEAK: 150 x 200 kB, kept


for i in range(150):
    step()
    time.sleep(0.01)
print("leaked", len(leaked))
