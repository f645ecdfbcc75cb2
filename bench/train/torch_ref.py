#!/usr/bin/python3
"""PyTorch reference for the Fashion-MNIST training benchmark.

Same recipe as Hadron's bench/train: Conv2d(32,3x3,relu) -> MaxPool(2) ->
Conv2d(64,3x3,relu) -> MaxPool(2) -> Conv2d(128,3x3,relu) -> MaxPool(2) ->
Flatten -> Linear(512,relu) -> Linear(10), valid padding, Adam lr 0.001,
batch 64, cross-entropy, images rescaled by 1/255, PyTorch's default init.
Reads the same IDX files and prints one JSON line like the Go program.
Run with Debian's python3-torch: /usr/bin/python3 bench/train/torch_ref.py.
"""
import argparse
import gzip
import json
import os
import resource
import struct
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd)
    return arr.reshape(dims)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--label", default="pytorch")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)

    def load(prefix):
        x = read_idx(os.path.join(a.data, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(a.data, f"{prefix}-labels-idx1-ubyte.gz"))
        x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)  # N,1,28,28
        return x, torch.from_numpy(y.astype(np.int64))

    xtr, ytr = load("train")
    xte, yte = load("t10k")
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(a.seed)
    n = xtr.shape[0]
    epoch_secs = []
    start = time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        t0 = time.perf_counter()
        total, correct = 0.0, 0
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
        secs = time.perf_counter() - t0
        epoch_secs.append(secs)
        print(f"epoch {epoch + 1}/{a.epochs}: loss {total / n:.4f} accuracy {correct / n:.4f}, "
              f"{n / secs:.0f} samples/s, {secs:.1f}s", file=__import__("sys").stderr)
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, xte.shape[0], 1000):
            right += (model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
    print(json.dumps({
        "impl": a.label,
        "epochs": a.epochs,
        "threads": a.threads,
        "batch_size": a.batch,
        "train_samples": n,
        "samples_per_sec": n * a.epochs / sum(epoch_secs),
        "epoch_seconds": epoch_secs,
        "wall_seconds": time.perf_counter() - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "test_accuracy": right / xte.shape[0],
        "kernel": "torch " + torch.__version__,
    }))


if __name__ == "__main__":
    main()
