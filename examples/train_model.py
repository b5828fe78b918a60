"""A job that needs a lot of memory for a while: holds --gib GiB, touched page by page."""
import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--gib", type=float, default=1.5)
args = parser.parse_args()
size = int(args.gib * (1 << 30))
print(f"allocating {args.gib} GiB", flush=True)
block = bytearray(size)
for i in range(0, size, 4096):
    block[i] = 1
print("training...", flush=True)
time.sleep(5)
print(f"done; held {size >> 20} MiB")
