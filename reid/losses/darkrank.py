"""DarkRank (Chen, Wang, Zhang, AAAI 2018 / arXiv 2017: "DarkRank: Accelerating Deep Metric Learning via Cross
Sample Similarities Transfer").

For an anchor q, each candidate x (the other samples of the batch) gets a score S = -alpha ||q - x||^beta (eq. 2),
computed as -alpha * clamp(d2)^(beta / 2) so there is no sqrt at d = 0; alpha = 3, beta = 3 in the paper. Student
and teacher rank the same candidates, each in its own embedding space. With the Plackett-Luce probability of a
permutation, log P(pi | S) = sum_i [S_pi(i) - logsumexp_{j >= i} S_pi(j)] (eq. 3, in log space: the released
code's product form underflows when |S| reaches ~200):
- soft (eq. 5): KL(P_teacher || P_student) over all permutations of the list (exact enumeration: L <= 8);
- mc: the same KL estimated by sampling permutations from the teacher (Gumbel-perturbed teacher scores, sorted)
  and averaging log P_t - log P_s (unbiased; gradient only through P_s);
- hard (eq. 5): ListMLE, -log P_student of the teacher's ranking.
Every sample is an anchor and the losses are averaged (the paper uses one query per batch; the released code half
the batch: `anchors="half"`, which with `reid.data.sampler.DarkRankSampler` batches selects exactly the paired
images, each with one positive in the batch).

List length (`list_length`, the same default in `darkrank_loss` and the registry's `DarkRankLoss`):
- hard and mc: the whole list (all n - 1 other samples of the batch), as in eq. 5 and the released ListMLE;
- soft: L = 4, the teacher's 4 nearest candidates, as in the released code (the paper's eq. 5 sums over all
  permutations of the whole list, intractable beyond L = 8: `list_length="all"` asks for it on small batches).
An integer truncates any mode to the teacher's L nearest; "all" is the whole list.
Scale (measured, BENCHMARKS.md "Fair studies"): on L2-normalised embeddings with alpha = beta = 3, the paper's
weight 2 gives the transfer a backbone gradient 12-20x (soft, L = 4) to 300-400x (hard, whole list of a 64-batch)
that of the identity loss, and a from-scratch student collapses; weighted so that the two are of one size (hard
0.005, soft 0.1) hard transfer improves the student. The weight is the config's `weight`; the default stays the
paper's.
`variant="code"`: the released code's score, L2-normalised features scaled by sqrt(s) and
S = -(s ||q - x||^2)^p, s = 3.5, p = 2 (i.e. alpha = s^p, beta = 2p on normalised features).
"""
from __future__ import annotations

import itertools
from typing import Optional, Union

import torch
from torch.nn import functional as F

from .base import ReIDLoss, pairwise_sq_dist, upcast
from .registry import LOSSES

MAX_EXACT = 8
SOFT_LIST_LENGTH = 4  # the released code's soft-transfer list (the teacher's top 4)
ListLength = Union[int, str, None]


def resolve_list_length(mode: str, list_length: ListLength) -> Optional[int]:
    """The list length a mode uses, None meaning the whole list. `list_length` None = the mode's default (soft: 4,
    hard and mc: the whole list); "all" = the whole list; an integer = the teacher's L nearest."""
    if list_length is None:
        return SOFT_LIST_LENGTH if mode == "soft" else None
    if list_length == "all":
        return None
    if isinstance(list_length, bool) or not isinstance(list_length, int) or list_length < 1:
        raise ValueError(f"darkrank: list_length must be a positive integer, 'all' or None (the mode's default), "
                         f"got {list_length!r}")
    return int(list_length)


def plackett_luce_log_prob(scores: torch.Tensor) -> torch.Tensor:
    """log P(ordering) of scores already arranged in ranking order along the last dim."""
    tail = torch.logcumsumexp(scores.flip(-1), dim=-1).flip(-1)
    return (scores - tail).sum(-1)


def _scores(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    return -alpha * pairwise_sq_dist(upcast(x)).clamp_min(1e-12).pow(beta / 2)


def darkrank_loss(student: torch.Tensor, teacher: torch.Tensor, mode: str = "soft", alpha: float = 3.0,
                  beta: float = 3.0, list_length: ListLength = None, anchors: str = "all",
                  num_samples: int = 64, generator: Optional[torch.Generator] = None,
                  variant: str = "paper") -> torch.Tensor:
    """DarkRank distillation loss between student (B, Ds) and teacher (B, Dt) embeddings (see module docstring).

    mode: "soft" (exact KL of eq. 5, list_length <= 8), "hard" (ListMLE of eq. 5) or "mc" (sampled KL with
    `num_samples` teacher permutations drawn with `generator`). list_length: None = the mode's default (hard / mc
    the whole list, soft the released code's 4), "all" or an integer. anchors: "all" | "half" | "one". The teacher
    gets no gradient.
    """
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"darkrank: student batch {student.shape[0]} != teacher batch {teacher.shape[0]}")
    if mode not in ("soft", "hard", "mc") or anchors not in ("all", "half", "one") or variant not in ("paper", "code"):
        raise ValueError(f"darkrank: bad option mode={mode!r}, anchors={anchors!r}, variant={variant!r}")
    if variant == "code":
        student, teacher = F.normalize(upcast(student), dim=1), F.normalize(upcast(teacher), dim=1)
        alpha, beta = 3.5 ** 2, 4.0
    n = student.shape[0]
    s_all, t_all = _scores(student, alpha, beta), _scores(teacher.detach(), alpha, beta)
    count = {"all": n, "half": max(1, n // 2), "one": 1}[anchors]
    rows = torch.arange(count, device=student.device)
    eye = torch.eye(n, dtype=torch.bool, device=student.device)[:count]
    # candidates of each anchor, in the teacher's order (highest score = nearest first)
    t_masked = t_all[:count].masked_fill(eye, float("-inf"))
    order = t_masked.argsort(dim=1, descending=True, stable=True)[:, : n - 1]
    wanted = resolve_list_length(mode, list_length)
    length = n - 1 if wanted is None else min(wanted, n - 1)
    order = order[:, :length]
    s = s_all[rows[:, None], order]
    t = t_all[rows[:, None], order]
    if mode == "hard":
        return -plackett_luce_log_prob(s).mean()
    if mode == "soft":
        if length > MAX_EXACT:
            raise ValueError(f"darkrank soft: exact enumeration of {length}! permutations is intractable; set "
                             f"list_length <= {MAX_EXACT} or use mode 'mc'")
        perms = torch.tensor(list(itertools.permutations(range(length))), device=s.device)
        log_ps = plackett_luce_log_prob(s[:, perms])
        log_pt = plackett_luce_log_prob(t[:, perms])
        return (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()
    gumbel = -torch.log(-torch.log(torch.rand((count, num_samples, length), generator=generator,
                                              device="cpu").clamp(1e-12, 1 - 1e-12))).to(s.device)
    sampled = (t[:, None, :] + gumbel).argsort(dim=-1, descending=True)
    log_ps = plackett_luce_log_prob(torch.gather(s[:, None].expand(-1, num_samples, -1), 2, sampled))
    log_pt = plackett_luce_log_prob(torch.gather(t[:, None].expand(-1, num_samples, -1), 2, sampled))
    return (log_pt - log_ps).mean()


@LOSSES.register("darkrank")
class DarkRankLoss(ReIDLoss):
    """`darkrank_loss` on the student's normalised embedding against the teacher's; the same parameters and
    defaults (hard: the whole list, soft: L = 4)."""

    default_teacher_input = "normalized"
    requires_teacher = True

    def __init__(self, mode: str = "soft", alpha: float = 3.0, beta: float = 3.0, list_length: ListLength = None,
                 anchors: str = "all", num_samples: int = 64, variant: str = "paper") -> None:
        super().__init__()
        wanted = resolve_list_length(mode, list_length)
        if mode == "soft" and (wanted is None or wanted > MAX_EXACT):
            raise ValueError(f"darkrank soft: list_length must be <= {MAX_EXACT} for exact enumeration "
                             f"(got {list_length}); use mode 'mc' for long lists")
        self.params = dict(mode=mode, alpha=alpha, beta=beta, list_length=list_length, anchors=anchors,
                           num_samples=num_samples, variant=variant)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor = None) -> torch.Tensor:
        return darkrank_loss(inputs, teacher, **self.params)
