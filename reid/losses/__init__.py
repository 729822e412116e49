"""Losses: one registry, one calling convention (`loss(inputs, labels, teacher=None)`), combined with weights."""
from typing import Any

from .base import ReIDLoss
from .registry import LOSSES
from . import identity, metric  # noqa: F401  (registration; metric first: others build on it)
from . import darkrank, density, distillation, horde, hraml, support_neighbor  # noqa: F401,E402
from .combined import CombinedLoss
from .darkrank import darkrank_loss
from .density import compute_class_densities, density_adaptivity_loss
from .hraml import hraml_loss
from .support_neighbor import support_neighbor_loss


def build_loss(name: str, **params: Any) -> ReIDLoss:
    """Build the registered loss `name` with its keyword parameters (unknown names list the known ones)."""
    return LOSSES.build(name, **params)


__all__ = ["LOSSES", "ReIDLoss", "CombinedLoss", "build_loss", "darkrank_loss", "support_neighbor_loss",
           "density_adaptivity_loss", "compute_class_densities", "hraml_loss"]
