"""`CombinedLoss`: a weighted sum of registered losses, each reading its own entry of the model output."""
from __future__ import annotations

import inspect
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from .registry import LOSSES

TERM_KEYS = {"name", "weight", "input", "teacher_input", "target"}


def check_term(i: int, term: Any) -> Tuple[Dict[str, Any], type]:
    """`loss.terms[i]` as a dict, and its registered loss class: the checks every reader of `loss.terms` shares (the
    config's builder and `CombinedLoss`). ValueError for an entry that is not a mapping or has no 'name'; the
    registry's KeyError, naming the closest registered loss, for an unknown name."""
    if not isinstance(term, Mapping):
        raise ValueError(f"loss.terms[{i}]: expected a mapping such as {{name: triplet}}, got {term!r}")
    if "name" not in term:
        raise ValueError(f"loss.terms[{i}] has no 'name': {dict(term)!r}")
    return dict(term), LOSSES.get(term["name"])


class CombinedLoss(nn.Module):
    """Weighted sum of registered losses.

    terms: [{name, weight=1, input?, teacher_input?, target="labels"|<batch key>, **loss params}]. `input` overrides
    the loss's `default_input` (the model output it reads), `teacher_input` its `default_teacher_input`; `target`
    names a batch entry (e.g. "attributes" for HRAML) used instead of the identity labels. Repeated names get
    display names "triplet", "triplet_1", ... Learnable loss state (density alpha_c, FitNet regressor) is
    registered here, so `loss_parameters()` hands it to the optimiser.
    """

    def __init__(self, terms: List[Mapping[str, Any]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("loss.terms is empty: give at least one loss")
        self.losses = nn.ModuleDict()
        self.specs: List[Dict[str, Any]] = []
        for i, term in enumerate(terms):
            term, cls = check_term(i, term)
            params = {k: v for k, v in term.items() if k not in TERM_KEYS}
            accepted = inspect.signature(cls.__init__).parameters
            if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
                bad = sorted(set(params) - set(accepted))
                if bad:
                    valid = sorted(k for k in accepted if k != "self")
                    raise ValueError(f"loss.terms[{i}] ({term['name']}): unknown parameter(s) {', '.join(bad)}; "
                                     f"valid: {', '.join(valid) or 'none'}")
            try:
                loss = cls(**params)
            except (TypeError, ValueError) as err:  # a bad value: say which term it belongs to
                raise ValueError(f"loss.terms[{i}] ({term['name']}): {err}") from err
            weight = term.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"loss.terms[{i}] ({term['name']}): weight must be a number, got {weight!r}")
            display = term["name"]
            n = 1
            while display in self.losses:
                display = f"{term['name']}_{n}"
                n += 1
            self.losses[display] = loss
            self.specs.append({"display": display, "weight": float(weight),
                               "input": term.get("input", loss.default_input),
                               "teacher_input": term.get("teacher_input", loss.default_teacher_input),
                               "target": term.get("target", "labels"),
                               "requires_teacher": loss.requires_teacher})

    @property
    def requires_teacher(self) -> bool:
        return any(s["requires_teacher"] for s in self.specs)

    def loss_parameters(self) -> List[nn.Parameter]:
        """Trainable parameters of the losses themselves (the engine gives them their own param group)."""
        return [p for p in self.parameters() if p.requires_grad]

    def terms(self, outputs: Mapping[str, Any], labels: torch.Tensor,
              teacher_outputs: Optional[Mapping[str, Any]] = None,
              batch: Optional[Mapping[str, Any]] = None) -> Dict[str, torch.Tensor]:
        """{display name: unweighted term}, still in the graph (per-term gradients, e.g. the DarkRank scale study)."""
        terms: Dict[str, torch.Tensor] = {}
        for spec in self.specs:
            name = spec["display"]
            if spec["input"] not in outputs:
                raise KeyError(f"loss '{name}' reads model output '{spec['input']}', which the model does not produce "
                               f"(available: {', '.join(outputs)})")
            teacher = None
            if spec["requires_teacher"]:
                if teacher_outputs is None:
                    raise ValueError(f"loss '{name}' needs a teacher: set distill.teacher_config and "
                                     "distill.teacher_checkpoint")
                if spec["teacher_input"] not in teacher_outputs:
                    raise KeyError(f"loss '{name}' reads teacher output '{spec['teacher_input']}' (available: "
                                   f"{', '.join(teacher_outputs)})")
                teacher = teacher_outputs[spec["teacher_input"]]
            target = labels
            if spec["target"] != "labels":
                if batch is None or spec["target"] not in batch:
                    raise KeyError(f"loss '{name}' targets '{spec['target']}', which the batch does not carry "
                                   "(e.g. attributes need data.kwargs.attributes: true)")
                target = batch[spec["target"]].to(labels.device)
            terms[name] = self.losses[name](outputs[spec["input"]], target, teacher)
        return terms

    def forward(self, outputs: Mapping[str, Any], labels: torch.Tensor,
                teacher_outputs: Optional[Mapping[str, Any]] = None,
                batch: Optional[Mapping[str, Any]] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(sum of weight * term, {display name: unweighted term, detached} for the log)."""
        terms = self.terms(outputs, labels, teacher_outputs, batch)
        total: Optional[torch.Tensor] = None
        for spec in self.specs:
            weighted = spec["weight"] * terms[spec["display"]]
            total = weighted if total is None else total + weighted
        return total, {name: value.detach() for name, value in terms.items()}
