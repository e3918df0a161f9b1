"""One rank of the torch.distributed (Gloo) side of bench:comm. Prints `RESULT <json>`.

Env: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, BENCH_SIZES_MB (comma list), BENCH_OPS (comma list).
Every op uses the fastest single-tensor API that torch's Gloo backend supports; when an op is not
supported (torch 1.13 Gloo has no reduce_scatter), the standard fallback is timed and named.
"""
import json
import os
import time

import torch
import torch.distributed as dist


def iters_for(nbytes):
    return max(3, min(50, (256 << 20) // max(nbytes, 1)))


def main():
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    sizes = [int(s) for s in os.environ["BENCH_SIZES_MB"].split(",")]
    ops = os.environ["BENCH_OPS"].split(",")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = []
    for op in ops:
        variant = None
        for mb in sizes:
            nbytes = mb << 20
            n = nbytes // 4
            if op == "allReduce":
                t = torch.zeros(n)
                fn = lambda: dist.all_reduce(t)
                variant = "all_reduce"
            elif op == "allGather":
                inp = torch.zeros(n // world)
                out = torch.zeros(n // world * world)
                outs = list(out.chunk(world))
                def fn():
                    nonlocal variant
                    if variant != "all_gather(list)":
                        try:
                            dist.all_gather_into_tensor(out, inp)
                            variant = "all_gather_into_tensor"
                            return
                        except RuntimeError:
                            variant = "all_gather(list)"
                    dist.all_gather(outs, inp)
            elif op == "reduceScatter":
                inp = torch.zeros(n // world * world)
                out = torch.zeros(n // world)
                def fn():
                    nonlocal variant
                    if variant != "all_reduce+slice":
                        try:
                            dist.reduce_scatter_tensor(out, inp)
                            variant = "reduce_scatter_tensor"
                            return
                        except RuntimeError:
                            variant = "all_reduce+slice"
                    tmp = inp.clone()
                    dist.all_reduce(tmp)
                    out.copy_(tmp[rank * out.numel():(rank + 1) * out.numel()])
            else:
                continue
            for _ in range(3):
                fn()  # warm-up (and API probe)
            dist.barrier()
            it = iters_for(nbytes)
            t0 = time.perf_counter()
            for _ in range(it):
                fn()
            dt = (time.perf_counter() - t0) / it
            results.append({"op": op, "mb": mb, "seconds": dt, "variant": variant})
    dist.barrier()
    print("RESULT " + json.dumps({"rank": rank, "results": results}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
