"""run_gpu.py - GPU work through CUDA's runtime library (ctypes, no Python
package needed) for `homura run --gpu` on a machine with an NVIDIA GPU
(test_run.py::test_gpu_real, skipped elsewhere): 1 GiB on the device,
filled again and again for about argv[1] seconds on one line."""
import ctypes
import ctypes.util
import glob
import sys
import time


def load_cudart():
    names = [ctypes.util.find_library("cudart")] + sorted(
        glob.glob("/usr/local/cuda*/lib64/libcudart.so*"), reverse=True)
    for name in names:
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                pass
    sys.exit("no libcudart")


cuda = load_cudart()
size = 1 << 30
ptr = ctypes.c_void_p()
if cuda.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(size)) != 0:
    sys.exit("cudaMalloc failed")
end = time.monotonic() + (float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
n = 0
while time.monotonic() < end:
    cuda.cudaMemset(ptr, n & 255, ctypes.c_size_t(size)); cuda.cudaDeviceSynchronize()  # LINE gpu
    n += 1
cuda.cudaFree(ptr)
print("fills", n)
