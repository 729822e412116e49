"""What the pretrained study says against the from-scratch one, what a user should pick from it, and whether its
DarkRank teacher is far enough above the student: blocks generated from the results JSON files
(studies/fair_study.py `table --regime pretrained`), so that no verdict or number in the documents is typed by
hand."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Sequence

from fair_study_arms import claims_in_both
from fair_study_stats import arm_stats, claim_comparison, verdict


def _verdict_text(cmp: Dict[str, Any]) -> str:
    spread = "" if math.isnan(cmp["se"]) else f" +- {2 * cmp['se']:.2f}"
    return f"{cmp['verdict']} ({cmp['diff']:+.2f}{spread})"


def _agreement(holds_scratch: bool, holds_pretrained: bool) -> str:
    if holds_scratch == holds_pretrained:
        return "agree: holds in both" if holds_scratch else "agree: holds in neither"
    return "**disagree**: holds " + ("from scratch only" if holds_scratch else "pretrained only")


def regimes_table(from_scratch: Dict[str, Any], pretrained: Dict[str, Any]) -> str:
    """One line per claim that has its verdict (3 seeds per arm) in both regimes: the two verdicts with their
    differences (method - baseline, 2 standard errors) and whether they agree; a count of the claims still waiting.
    The regimes disagree when the claim holds in one and not in the other (the issue's rule): "no significant
    difference" and "does not hold" are both a claim that does not hold, shown apart by their verdict columns."""
    lines = ["| paper | claim | from scratch (64x32 CNN) | pretrained (ImageNet Lite0, 128x64) | regimes |",
             "| --- | --- | --- | --- | --- |"]
    waiting = 0
    for c, p in claims_in_both():
        if not c["method"]:
            continue
        a, b = claim_comparison(from_scratch, c), claim_comparison(pretrained, p)
        complete = [cmp["verdict"] is not None and not cmp["verdict"].startswith("incomplete") for cmp in (a, b)]
        if not all(complete):
            waiting += 1
            continue
        # a claim both regimes test with arms of their own (the matched DarkRank weights): name the pretrained one
        claim = c["claim"] + ("" if p["method"] == c["method"] else f"; pretrained: `{p['method']}`")
        lines.append(f"| {c['paper']} | {claim} | {_verdict_text(a)} | {_verdict_text(b)} | "
                     f"{_agreement(a['verdict'] == 'holds', b['verdict'] == 'holds')} |")
    if len(lines) == 2:
        return f"No claim has its verdict in both regimes yet ({waiting} wait for seeds)."
    return "\n".join(lines) + f"\n\n{waiting} more claims wait for their seeds in one of the regimes."


def pick_list(results: Dict[str, Any], arms: Sequence[str], describe: Callable[[str], str]) -> str:
    """The arms of one recipe ranked by mean single query mAP, each against the first with the claims' verdict
    rule (difference of the means against 2 standard errors, 3 seeds each), so the pick follows from the numbers."""
    ranked: List[tuple] = sorted(((arm_stats(results, a, "mAP"), arm_stats(results, a, "rank1"), a) for a in arms
                                  if arm_stats(results, a, "mAP") is not None), key=lambda t: -t[0]["mean"])
    if not ranked:
        return "(no runs yet)"
    lines = ["| rank | arm | what it trains | seeds | mAP mean +- std | R1 mean | against the first |",
             "| ---: | --- | --- | --- | ---: | ---: | --- |"]
    best = ranked[0][0]
    for i, (m, r1, arm) in enumerate(ranked, 1):
        std = "-" if m["n"] < 2 else f"{m['std']:.2f}"
        if i == 1:
            against = "-"
        else:
            v = verdict(best, m)
            against = {"holds": "behind (more than 2 s.e.)", "no significant difference at this scale":
                       "level (within 2 s.e.)"}.get(v, v)
        lines.append(f"| {i} | `{arm}` | {describe(arm)} | {', '.join(map(str, m['seeds']))} | {m['mean']:.2f} +- "
                     f"{std} | {r1['mean']:.2f} | {against} |")
    return "\n".join(lines)


def teacher_line(results: Dict[str, Any], margin: float = 10.0) -> str:
    """The DarkRank set-up check: the teacher's single query mAP against the student alone's mean (the issue asks
    for the paper's relation, a teacher at least `margin` mAP above its student)."""
    teacher, student = arm_stats(results, "teacher", "mAP"), arm_stats(results, "student_alone", "mAP")
    if teacher is None or student is None:
        return "The teacher or the student alone has not run yet."
    gap = teacher["mean"] - student["mean"]
    spread = "" if student["n"] < 2 else f" +- {student['std']:.2f}"
    return (f"Teacher {teacher['mean']:.2f} mAP (seed {teacher['seeds'][0]}) vs student alone "
            f"{student['mean']:.2f}{spread} (seeds {', '.join(map(str, student['seeds']))}): {gap:+.2f} mAP, "
            + ("at least" if gap >= margin else "**less than**") + f" the {margin:g} the study asks for.")
