#!/usr/bin/env python
"""Large-gallery search: faiss IVF (fp16 vectors) against exact search, on a synthetic re-ID-like gallery.

    python benchmarks/faiss_search.py                                  # the goal: 1,000,000 x 2048-d fp16, 2 threads
    python benchmarks/faiss_search.py --n 20000 --dim 256 --queries 50 # a quick check (seconds)

Goal (issue 20): per-query search <= 20 ms on 2 cores with recall@10 >= 0.95 against exact search, memory stated.
The gallery is what re-ID features look like: identities (`--per-id` images each) whose L2-normalised features
scatter around an identity centre; queries are fresh images of gallery identities. (Uniform random vectors would be
meaningless here: in 2048-d they have no near neighbours, and no index beats a scan on them.)

Measured: IVF training and adding time; per-query latency searching one query at a time (what an interactive
search sees) and in one batch, each including the exact float64 re-ordering of the candidates that `reid.search`
does; recall@10 against the exact top-10 (reid.inference.search_backends: float64 distances, ties by index);
memory: the index (fp16 codes, ids, centroids), the fp16 gallery kept for the exact re-ordering, peak RSS.
Needs faiss: pip install 'reid[faiss]'. Time it on an idle machine: on a shared one every figure inflates (a
100k x 2048 run on 2 cores at load 7 measured ~60 ms/query, several times its idle figure).
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.inference.search_backends import FaissIndex, import_faiss, refine  # noqa: E402


def synthetic_gallery(n: int, dim: int, per_id: int, noise: float, seed: int, chunk: int = 65536) -> np.ndarray:
    """(n, dim) float16 L2-normalised features, `per_id` consecutive rows per identity; built chunk by chunk so
    the float32 intermediate stays small."""
    gen = torch.Generator().manual_seed(seed)
    n_ids = (n + per_id - 1) // per_id
    centres = torch.randn(n_ids, dim, generator=gen).half()  # fp16: 1M / 20 ids x 2048 is 200 MB
    out = np.empty((n, dim), dtype=np.float16)
    for s in range(0, n, chunk):
        ids = torch.arange(s, min(n, s + chunk)) // per_id
        x = centres[ids].float() + noise * torch.randn(len(ids), dim, generator=gen)
        out[s:s + len(ids)] = torch.nn.functional.normalize(x, dim=1).half().numpy()
    return out, centres


def make_queries(centres: torch.Tensor, count: int, noise: float, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(len(centres), (count,), generator=gen)
    x = centres[ids].float() + noise * torch.randn(count, centres.shape[1], generator=gen)
    return torch.nn.functional.normalize(x, dim=1).numpy()


def exact_topk(q: np.ndarray, g: np.ndarray, k: int, extra: int = 8, chunk: int = 32768) -> np.ndarray:
    """Exact top-k over the fp16 gallery, streamed: float32 candidates per chunk, float64 order at the end."""
    qt = torch.from_numpy(q)
    m = k + extra
    best_d = torch.full((len(q), m), float("inf"))
    best_i = torch.zeros((len(q), m), dtype=torch.int64)
    for s in range(0, len(g), chunk):
        gc = torch.from_numpy(g[s:s + chunk].astype(np.float32))
        d = (qt.pow(2).sum(1, keepdim=True) + gc.pow(2).sum(1)[None] - 2 * qt @ gc.T).clamp_min(0)
        cand_d = torch.cat([best_d, d], 1)
        cand_i = torch.cat([best_i, torch.arange(s, s + len(gc)).expand(len(q), -1)], 1)
        top = torch.topk(cand_d, m, dim=1, largest=False)
        best_d, best_i = top.values, torch.gather(cand_i, 1, top.indices)
    return refine(q, g, best_i.numpy(), k)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="gallery size")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
    parser.add_argument("--per-id", type=int, default=20, help="gallery images per identity")
    parser.add_argument("--noise", type=float, default=0.8, help="per-image spread around the identity centre "
                        "(x sqrt(dim) relative to the centre's norm)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nlist", type=int, default=0, help="IVF lists (default: reid's rule, ~sqrt(n))")
    parser.add_argument("--nprobe", default="16,32,64", help="comma-separated nprobe values to measure")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", choices=["ivf", "hnsw"], default="ivf",
                        help="ivf: IVF with fp16 vectors (--nlist, --nprobe); hnsw: HNSW graph over PCA-reduced "
                             "vectors (--reduce, --hnsw-m; --ef takes the place of --nprobe)")
    parser.add_argument("--reduce", type=int, default=256, help="hnsw: PCA dimensions (0 = none)")
    parser.add_argument("--hnsw-m", type=int, default=32, help="hnsw: links per node")
    parser.add_argument("--ef", default="64,128,256", help="hnsw: comma-separated efSearch values to measure")
    parser.add_argument("--extra", default="",
                        help="comma-separated candidate pools to measure: k + extra candidates go to the exact "
                             "re-ordering (default: the index's own, 8 for ivf and 40 for hnsw)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    faiss = import_faiss()
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    result = {"n": args.n, "dim": args.dim, "per_id": args.per_id, "noise": args.noise, "queries": args.queries,
              "k": args.k, "threads": args.threads, "faiss": faiss.__version__}

    t = time.perf_counter()
    gallery, centres = synthetic_gallery(args.n, args.dim, args.per_id, args.noise, args.seed)
    queries = make_queries(centres, args.queries, args.noise, args.seed)
    result["generate_s"] = round(time.perf_counter() - t, 1)
    print(f"gallery {gallery.shape} fp16 ({gallery.nbytes / 2**30:.2f} GiB), generated in {result['generate_s']} s")

    t = time.perf_counter()
    truth = exact_topk(queries, gallery, args.k)
    exact_s = time.perf_counter() - t
    result["exact_ms_per_query_batched"] = round(1000 * exact_s / args.queries, 2)
    print(f"exact top-{args.k}: {result['exact_ms_per_query_batched']} ms/query (batched torch scan)")

    t = time.perf_counter()
    if args.index == "hnsw":
        index = FaissIndex(gallery, kind="hnsw", reduce=args.reduce or None, hnsw_m=args.hnsw_m, seed=args.seed)
        result["build_s"] = round(time.perf_counter() - t, 1)
        dim = args.reduce or args.dim
        graph = args.n * args.hnsw_m * 2 * 4  # about 2 M int32 links per node on level 0
        result["index"] = f"PCA{dim},HNSW{args.hnsw_m}"
        result["memory_gib"] = {"index": round((args.n * dim * 4 + graph) / 2**30, 2),
                                "gallery_fp16_for_reordering": round(gallery.nbytes / 2**30, 2)}
        settings = [("ef", int(v)) for v in args.ef.split(",")]
    else:
        index = FaissIndex(gallery, kind="ivf", nlist=args.nlist or None, fp16=True, seed=args.seed)
        result["build_s"] = round(time.perf_counter() - t, 1)
        result["nlist"] = index.nlist
        result["index"] = f"IVF{index.nlist},SQfp16"
        # 1 = equal lists; the vectors one query scans are ~ nprobe * n / nlist * this factor
        result["list_imbalance"] = round(float(index.index.invlists.imbalance_factor()), 3)
        codes = args.n * args.dim * 2 + args.n * 8  # fp16 codes + int64 ids in the inverted lists
        result["memory_gib"] = {"index": round((codes + index.nlist * args.dim * 4) / 2**30, 2),
                                "gallery_fp16_for_reordering": round(gallery.nbytes / 2**30, 2)}
        settings = [("nprobe", int(v)) for v in args.nprobe.split(",")]
    print(f"{result['index']} trained + added in {result['build_s']} s; index {result['memory_gib']['index']} "
          f"GiB + fp16 gallery {result['memory_gib']['gallery_fp16_for_reordering']} GiB for the exact re-ordering")

    result["runs"] = []
    pools = [int(v) for v in args.extra.split(",")] if args.extra else [index.extra]
    for (name, value), extra in [(s, e) for s in settings for e in pools]:
        index.extra = extra
        if name == "ef":
            index.index.hnsw.efSearch = max(value, args.k + extra)  # faiss returns at most efSearch candidates
        else:
            index.index.nprobe = min(value, index.nlist)
        index.search(queries[:2], args.k)  # warm-up
        single = []
        found = np.empty((args.queries, args.k), dtype=np.int64)
        for i in range(args.queries):
            t = time.perf_counter()
            found[i] = index.search(queries[i:i + 1], args.k)[0][0]
            single.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(queries, args.k)
        batched = (time.perf_counter() - t) / args.queries
        recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(truth, found)]))
        run = {name: value, "candidates": args.k + extra,
               "ms_per_query_single_median": round(1000 * float(np.median(single)), 2),
               "ms_per_query_single_p95": round(1000 * float(np.percentile(single, 95)), 2),
               "ms_per_query_batched": round(1000 * batched, 2), f"recall@{args.k}": round(recall, 4)}
        result["runs"].append(run)
        print(f"{name} {value:>4}, {args.k + extra:>4} candidates: {run['ms_per_query_single_median']:7.2f} ms/query "
              f"one at a time (p95 "
              f"{run['ms_per_query_single_p95']:.2f}), {run['ms_per_query_batched']:7.2f} ms/query batched, "
              f"recall@{args.k} {recall:.4f}")
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(f"peak RSS {result['peak_rss_gib']} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
