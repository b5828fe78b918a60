"""A slow job: works through a number of steps, ten seconds each, reporting progress."""
import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=9)
args = parser.parse_args()
for step in range(1, args.steps + 1):
    print(f"step {step}/{args.steps}", flush=True)
    time.sleep(10)
print("report rebuilt")
