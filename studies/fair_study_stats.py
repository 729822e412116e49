"""The statistics of the fair studies (studies/fair_study.py), on the results JSON alone: per-arm mean and sample
std over the seeds, the two-standard-error verdict of a claim, the best lambda of a density sweep."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

from fair_study_arms import SWEEPS


def best_of_sweep(results: Dict[str, Any], base: str) -> Optional[str]:
    """The sweep arm of `base` with the best seed-0 mAP, once every lambda has its seed-0 run (else None)."""
    scores = {arm: results.get(f"{arm}_seed0", {}).get("single_query", {}).get("mAP") for arm in SWEEPS[base].values()}
    if any(v is None for v in scores.values()):
        return None
    return max(scores, key=lambda arm: scores[arm])


def arm_stats(results: Dict[str, Any], arm: str, metric: str, mode: str = "single_query") -> Optional[Dict[str, Any]]:
    runs = sorted((r for r in results.values() if r["arm"] == arm and mode in r), key=lambda r: r["seed"])
    if not runs:
        return None
    values = [r[mode][metric] for r in runs]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return {"values": values, "mean": mean, "std": std, "n": len(values), "seeds": [r["seed"] for r in runs]}


def verdict(a: Dict[str, Any], b: Dict[str, Any]) -> str:
    if a["n"] < 3 or b["n"] < 3:
        return f"incomplete ({a['n']} and {b['n']} seeds)"
    diff = a["mean"] - b["mean"]
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    if diff > 2 * se:
        return "holds"
    if diff < -2 * se:
        return "does not hold at this scale"
    return "no significant difference at this scale"


def claim_arm(results: Dict[str, Any], name: str) -> Optional[str]:
    """An arm name, or "best:<base>": the best lambda of that base's sweep (None until the sweep is complete)."""
    return best_of_sweep(results, name.split(":", 1)[1]) if name.startswith("best:") else name



def claim_comparison(results: Dict[str, Any], c: Dict[str, str]) -> Dict[str, Any]:
    """The two arms of a claim as run so far: their stats on the claim's metric (single query mAP unless it names
    one: then the DML evaluation of both; None for an arm not run), their rank-1, and, once both have run, the
    difference of the means, its standard error (nan with one seed) and the verdict."""
    method = claim_arm(results, c["method"]) if c["method"] else None
    metric = c.get("metric", "mAP")
    mode = "dml" if metric != "mAP" else c.get("method_mode", "single_query")
    a = arm_stats(results, method, metric, mode) if method else None
    b = arm_stats(results, c["baseline"], metric, "dml" if metric != "mAP" else "single_query")
    out = {"method": method, "mode": mode, "metric": metric, "a": a, "b": b, "diff": None, "se": None,
           "verdict": None, "ra": arm_stats(results, method, "rank1", c.get("method_mode", "single_query"))
           if method else None, "rb": arm_stats(results, c["baseline"], "rank1")}
    if a is not None and b is not None:
        se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"]) if a["n"] > 1 and b["n"] > 1 else math.nan
        out.update(diff=a["mean"] - b["mean"], se=se, verdict=verdict(a, b))
    return out
