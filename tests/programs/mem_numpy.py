"""numpy arrays of known sizes, for tests/integration/test_memory.py."""
import numpy as np

a = np.zeros(10**7)                             # ZEROS: 80 MB
b = np.ones((1000, 1000))                       # ONES: 8 MB
for i in range(10):
    c = a + 1.0                                 # ADD: 10 x 80 MB temporaries
print(float(c[0]) + float(b[0, 0]))
