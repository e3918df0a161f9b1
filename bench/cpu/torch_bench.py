"""PyTorch side of `pnpm bench:cpu` (Debian python3-torch, CPU): the same workloads as bench.ts.

Usage: torch_bench.py --threads N --part micro|train|gemm  -> prints one JSON object.
--part gemm --shapes M,N,K,ta,tb;... --reps R: best-of-R seconds per GEMM shape (bench/cpu/gemm.ts).
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timeit(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    # best of `reps`, as bench.ts does for ours (slower calls are other tenants' interference)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def micro():
    out = {}
    for n in (1024, 2048):
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        s = timeit(lambda: torch.matmul(a, b), 20 if n == 1024 else 6)
        out[f"gemm{n}"] = {"seconds": s, "gflops": 2 * n**3 / s / 1e9}
    # attention fwd+bwd, causal, B=1, S=1024, H=8, D=64 (torch 1.13 has no fused SDPA: the eager formulation)
    S, H, D = 1024, 8, 64
    q = torch.randn(1, H, S, D, requires_grad=True)
    k = torch.randn(1, H, S, D, requires_grad=True)
    v = torch.randn(1, H, S, D, requires_grad=True)
    mask = torch.ones(S, S, dtype=torch.bool).triu(1)
    go = torch.randn(1, H, S, D)

    def attn():
        s = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(D))
        p = s.masked_fill(mask, float("-inf")).softmax(-1)
        o = p @ v
        o.backward(go)
        q.grad = k.grad = v.grad = None

    out["attention"] = {"seconds": timeit(attn, 5)}
    return out


def gemm(shapes, reps):
    out = {}
    for spec in shapes.split(";"):
        m, n, k, ta, tb = (int(x) for x in spec.split(","))
        a = torch.randn(k, m).t() if ta else torch.randn(m, k)
        b = torch.randn(n, k).t() if tb else torch.randn(k, n)
        torch.matmul(a, b)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t0)
        out[spec] = best
    return out


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        hd = c["hidden"] // c["heads"]
        self.hd = hd
        self.n1 = RMSNorm(c["hidden"])
        self.n2 = RMSNorm(c["hidden"])
        self.q = nn.Linear(c["hidden"], c["heads"] * hd, bias=False)
        self.k = nn.Linear(c["hidden"], c["kv"] * hd, bias=False)
        self.v = nn.Linear(c["hidden"], c["kv"] * hd, bias=False)
        self.o = nn.Linear(c["heads"] * hd, c["hidden"], bias=False)
        self.g = nn.Linear(c["hidden"], c["ffn"], bias=False)
        self.u = nn.Linear(c["hidden"], c["ffn"], bias=False)
        self.d = nn.Linear(c["ffn"], c["hidden"], bias=False)

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        c = self.c
        h = self.n1(x)
        q = self.q(h).view(b, s, c["heads"], self.hd).transpose(1, 2)
        k = self.k(h).view(b, s, c["kv"], self.hd).transpose(1, 2)
        v = self.v(h).view(b, s, c["kv"], self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = c["heads"] // c["kv"]
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(self.hd))
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(b, s, -1)
        x = x + self.o(o)
        h = self.n2(x)
        return x + self.d(F.silu(self.g(h)) * self.u(h))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList([Block(c) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["hidden"])
        self.head = nn.Linear(c["hidden"], c["vocab"], bias=False)

    def forward(self, ids, labels):
        s = ids.shape[1]
        hd = self.c["hidden"] // self.c["heads"]
        inv = 1.0 / (self.c["theta"] ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(s).float(), inv)
        emb = torch.cat((ang, ang), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.ones(s, s, dtype=torch.bool).triu(1)
        x = self.embed(ids)
        for l in self.layers:
            x = l(x, cos, sin, mask)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))


def train(steps, warmup):
    c = dict(vocab=8192, hidden=512, layers=8, heads=8, kv=2, ffn=1408, theta=1e6)
    batch, seq = 4, 512
    torch.manual_seed(0)
    model = Model(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    times, losses = [], []
    for i in range(warmup + steps):
        ids = torch.randint(0, c["vocab"], (batch, seq))
        labels = torch.randint(0, c["vocab"], (batch, seq))
        t0 = time.perf_counter()
        loss = model(ids, labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = sorted(times)[len(times) // 2]
    return {
        "stepMs": [t * 1000 for t in times],
        "medianStepMs": med * 1000,
        "tokensPerSec": batch * seq / med,
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "losses": losses,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--part", choices=["micro", "train", "gemm"], required=True)
    ap.add_argument("--shapes", default="1024,1024,1024,0,0")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.part == "gemm":
        res = {"gemm": gemm(a.shapes, a.reps)}
    else:
        res = micro() if a.part == "micro" else train(a.steps, a.warmup)
    res["torch"] = torch.__version__
    res["threads"] = torch.get_num_threads()
    print(json.dumps(res))
