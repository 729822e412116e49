"""The pretrained study against the from-scratch one, and the ranking a user's pick follows from
(studies/fair_study_regimes.py): generated from the results JSON, verdicts by the claims' rule."""
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.study

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "studies"))
import fair_study  # noqa: E402
from fair_study_regimes import pick_list, regimes_table, teacher_line  # noqa: E402


def runs(arm, maps):
    return {f"{arm}_seed{s}": {"arm": arm, "seed": s, "single_query": {"mAP": m, "rank1": m + 20},
                               "images_per_s": 100.0, "parameters": 10}
            for s, m in enumerate(maps)}


def test_regimes_disagree_only_where_a_claim_holds_in_one_and_not_the_other():
    scratch = {**runs("sn", [12.0, 12.5, 11.5]), **runs("triplet_soft", [12.2, 11.8, 12.6]),  # level
               **runs("softmax", [8.0, 8.5, 8.2])}  # SN ahead of softmax
    pretrained = {**runs("sn", [37.0, 38.0, 37.5]), **runs("triplet_soft", [52.0, 52.5, 51.8]),  # SN behind
                  **runs("softmax", [30.0, 31.0, 30.5])}  # SN ahead again
    table = regimes_table(scratch, pretrained)
    row = lambda text: next(line for line in table.splitlines() if text in line)  # noqa: E731
    triplet, softmax = row("beats the batch-hard triplet"), row("beats the softmax")
    assert "no significant difference at this scale" in triplet and "does not hold at this scale" in triplet
    # level in one regime, behind in the other: the claim holds in neither, both verdicts stay visible
    assert triplet.endswith("| agree: holds in neither |") and "(-14.60 +- 0.71)" in triplet
    assert "| holds (+3.77 +- " in softmax and softmax.endswith("| agree: holds in both |")
    behind = {**pretrained, **runs("softmax", [50.0, 51.0, 50.5])}
    flipped = next(line for line in regimes_table(scratch, behind).splitlines() if "beats the softmax" in line)
    assert "does not hold at this scale (-13.00 +- " in flipped
    assert flipped.endswith("| **disagree**: holds from scratch only |")
    assert regimes_table(behind, scratch).splitlines()[3].endswith("| **disagree**: holds pretrained only |")
    assert "more claims wait for their seeds" in table  # the other claims have no runs in these results


def test_claims_with_fewer_than_three_seeds_are_not_compared_across_regimes():
    two_seeds = {**runs("sn", [12.0, 12.5]), **runs("triplet_soft", [12.2, 11.8])}
    full = {**runs("sn", [12.0, 12.5, 11.5]), **runs("triplet_soft", [12.2, 11.8, 12.6])}
    assert regimes_table(full, two_seeds).startswith("No claim has its verdict in both regimes yet")


def test_the_pick_ranks_by_mean_map_and_compares_each_arm_with_the_first():
    results = {**runs("sn", [37.0, 38.0, 37.5]), **runs("triplet_soft", [52.0, 52.5, 51.8]),
               **runs("softmax", [51.0, 53.5, 50.0]), **runs("contrastive", [40.0])}
    table = pick_list(results, ["sn", "triplet_soft", "softmax", "contrastive", "hraml"], lambda arm: f"loss {arm}")
    rows = table.splitlines()[2:]
    assert [r.split("|")[2].strip() for r in rows] == ["`triplet_soft`", "`softmax`", "`contrastive`", "`sn`"]
    assert rows[0].endswith("| - |") and "| loss triplet_soft | 0, 1, 2 | 52.10 +- 0.36 |" in rows[0]
    assert rows[1].endswith("| level (within 2 s.e.) |")
    assert rows[2].endswith("| incomplete (3 and 1 seeds) |") and "| 40.00 +- - |" in rows[2]
    assert rows[3].endswith("| behind (more than 2 s.e.) |")  # hraml has no runs: not listed


def test_the_table_command_writes_both_blocks_into_the_documents(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**runs("sn", [37.0]), **runs("triplet_soft", [52.0])}))
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- fair_study_pretrained:regimes -->\n<!-- /fair_study_pretrained:regimes -->\n"
                   "<!-- fair_study_pretrained:pick -->\n<!-- /fair_study_pretrained:pick -->\n")
    try:
        fair_study.main(["table", "--regime", "pretrained", "--json", str(path), "--into", str(doc)])
    finally:
        fair_study.use_regime("from_scratch")
    text = doc.read_text()
    assert "No claim has its verdict in both regimes yet" in text
    assert "| 1 | `triplet_soft` | triplet (margin soft, mining batch_hard) | 0 |" in text
    assert "support_neighbor (k 10, sigma 50.0, lambda_squeeze 0.1)" in text


def test_a_claim_each_regime_tests_with_its_own_matched_weight_pairs_the_two_arms():
    scratch = {**runs("student_soft_w0.1", [12.0, 13.0, 14.0]), **runs("student_alone", [10.0, 10.5, 11.0])}
    pretrained = {**runs("student_soft_w0.2", [40.0, 40.5, 41.0]), **runs("student_alone", [45.0, 45.5, 46.0])}
    table = regimes_table(scratch, pretrained)
    row = next(line for line in table.splitlines() if "rescaled (2 -> 0.1) so" in line)
    assert "; pretrained: `student_soft_w0.2` |" in row
    assert "| holds (+2.50 +- " in row and "| does not hold at this scale (-5.00 +- " in row
    assert row.endswith("| **disagree**: holds from scratch only |")


def test_the_teacher_line_states_its_margin_over_the_student_alone():
    students = runs("student_alone", [48.0, 49.0, 50.0])
    assert teacher_line(students) == "The teacher or the student alone has not run yet."
    line = teacher_line({**students, **runs("teacher", [61.5])})
    assert line.startswith("Teacher 61.50 mAP (seed 0) vs student alone 49.00 +- 1.00 (seeds 0, 1, 2): +12.50 mAP,")
    assert "at least the 10 the study asks for" in line
    assert "**less than** the 10" in teacher_line({**students, **runs("teacher", [55.0])})
