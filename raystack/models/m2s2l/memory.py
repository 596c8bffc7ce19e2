"""Memory of normal prototypes, as MNAD (Park et al., CVPR 2020) reads and updates it.

A bank holds M unit-norm items p_m (d channels). Queries q_k are the L2-normalised
feature vectors of every grid location of every sample in the batch.

- **Read** (every forward): w_km = softmax_m(q_k . p_m); the read feature is
  r_k = sum_m w_km p_m, and the decoder gets [q_k, r_k] (concatenated channels).
- **Update** (training forwards only, no gradient): with v_km = softmax_k(q_k . p_m)
  (the softmax over the queries) and U_m the queries whose nearest item is m,
  p_m <- normalise(p_m + sum_{k in U_m} (v_km / max_{k' in U_m} v_k'm) q_k).
  Items no query chose stay as they are. Reads use the items from before the update.
- **Losses**: compactness = mean ||q_k - p_nearest||^2 (elementwise MSE), separateness =
  triplet margin loss with the nearest item as positive and the second nearest as
  negative (margin 1). Items are constants for the gradient; queries learn.
- **Distance** (the score's ``aux``): per sample, the mean over its locations of
  ||q_k - p_nearest||^2.

MNAD also updates its memory at test time on frames it judges normal; we do not: a scan
must give the same scores whatever order its work units run in (docs/architecture.md#work-units).

    bank = MemoryBank(num_items=10, dim=256)
    out = bank(torch.randn(2, 32, 32, 256))   # out.read (2, 32, 32, 256), out.distance (2,)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def memory_read(queries: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, d) queries, (M, d) items -> read (K, d), weights (K, M) (softmax over items)."""
    weights = (queries @ items.t()).softmax(dim=1)
    return weights @ items, weights


def memory_update(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """MNAD's update: the new (M, d) items from (K, d) normalised queries (no gradient)."""
    with torch.no_grad():
        scores = queries @ items.t()  # (K, M)
        v = scores.softmax(dim=0)  # each item's distribution over the queries
        nearest = scores.argmax(dim=1)  # (K,)
        assigned = F.one_hot(nearest, items.shape[0]).to(v.dtype)  # (K, M): k in U_m
        v = v * assigned
        # Normalise by the largest weight among the item's own queries; items no query
        # chose have an all-zero column and keep their value.
        v = v / v.amax(dim=0, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
        return F.normalize(items + v.t() @ queries, dim=1)


def memory_losses(
    queries: torch.Tensor, items: torch.Tensor, margin: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compactness, separateness and per-query squared distance to the nearest item.

    Args:
        queries: (K, d) normalised queries (carry the gradient).
        items: (M, d) items, treated as constants; needs M >= 2 for separateness.
    """
    items = items.detach()
    top = (queries @ items.t()).topk(min(2, items.shape[0]), dim=1).indices  # (K, 2)
    pos = items[top[:, 0]]
    dist = (queries - pos).pow(2).sum(dim=1)  # (K,)
    compact = F.mse_loss(queries, pos)
    if items.shape[0] < 2:
        return compact, queries.new_zeros(()), dist
    separate = F.triplet_margin_loss(queries, pos, items[top[:, 1]], margin=margin)
    return compact, separate, dist


class MemoryOutput(NamedTuple):
    query: torch.Tensor  # (b, h, w, d) normalised queries
    read: torch.Tensor  # (b, h, w, d) memory read
    compact: torch.Tensor  # scalar compactness loss
    separate: torch.Tensor  # scalar separateness loss
    distance: torch.Tensor  # (b,) mean squared distance to the nearest item (no gradient)


class MemoryBank(nn.Module):
    """M prototype items read by attention and written by MNAD's update rule in training."""

    def __init__(
        self,
        num_items: int,
        dim: int,
        margin: float = 1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.margin = margin
        # A buffer, not a parameter: items move by the update rule, never by the optimiser,
        # and a checkpoint carries them with the weights.
        items = torch.randn(num_items, dim, device=device, dtype=dtype)
        self.register_buffer("items", F.normalize(items, dim=1) if items.device.type != "meta"
                             else items)

    def forward(self, x: torch.Tensor) -> MemoryOutput:
        """(b, h, w, d) features -> :class:`MemoryOutput`; updates the items when training."""
        b, h, w, d = x.shape
        q = F.normalize(x.reshape(-1, d), dim=1)  # (K, d), K = b*h*w
        # A copy for this forward: the update below rewrites the buffer in place, and the
        # read's backward must still see the items it read from.
        items = self.items.detach().clone()
        read, _ = memory_read(q, items)
        compact, separate, dist = memory_losses(q, items, self.margin)
        if self.training:
            self.items.copy_(memory_update(q.detach(), items))
        return MemoryOutput(
            q.reshape(b, h, w, d), read.reshape(b, h, w, d), compact, separate,
            dist.detach().reshape(b, h * w).mean(dim=1),
        )
