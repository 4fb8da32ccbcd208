"""A tiny seeded "training" script for the browser test (tests/browser/run.sh).

No torch: each epoch it writes a float32 checkpoint (checkpoints/model.safetensors:
fc.weight, of which every 7th value moves each epoch, and fc.bias, which
never changes), the run's state as YAML (state.yaml: epoch and learning
rate), appends to train.log, and prints the epoch's metrics as a SNAP line
(docs/training.md), which makes `snap run` commit a snapshot.

    python3 train.py --seed 1 --epochs 3 --lr 0.001
"""

import argparse
import json
import os
import random
import struct
import time


def write_safetensors(path, tensors):
    """tensors: [(name, [float, ...])], stored as F32, in this order."""
    header, data, at = {}, b"", 0
    for name, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": [len(values)], "data_offsets": [at, at + len(raw)]}
        data += raw
        at += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + data)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.001)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs("checkpoints", exist_ok=True)
    weights = [rng.gauss(0, 1) for _ in range(4096)]
    bias = [0.0] * 64
    for epoch in range(1, args.epochs + 1):
        # Only some weights move each epoch, as in fine-tuning.
        for i in range(0, len(weights), 7):
            weights[i] -= args.lr * rng.gauss(0, 1)
        write_safetensors("checkpoints/model.safetensors", [("fc.weight", weights), ("fc.bias", bias)])
        with open("state.yaml", "w") as f:
            f.write("train:\n  epoch: %d\n  lr: %r\n  seed: %d\n" % (epoch, args.lr, args.seed))
        loss = round(1.0 / (epoch + args.seed) + rng.random() / 100, 6)
        acc = round(1.0 - loss / 2, 6)
        with open("train.log", "a") as f:
            f.write("epoch %d loss %r acc %r\n" % (epoch, loss, acc))
        print('SNAP {"epoch": %d, "metrics": {"loss": %r, "acc": %r}}' % (epoch, loss, acc), flush=True)
        time.sleep(0.3)


if __name__ == "__main__":
    main()
