"""SiamFC's balanced logistic loss and its label map."""
from __future__ import annotations

import torch
import torch.nn.functional as F

POSITIVE_RADIUS = 16  # pixels of the search image
TOTAL_STRIDE = 8


def response_labels(size: int, radius: float = POSITIVE_RADIUS / TOTAL_STRIDE) -> torch.Tensor:
    """1 within ``radius`` cells (city-block) of the map's centre, else 0 (siamfc-pytorch's labels)."""
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    dist = offsets.abs()[:, None] + offsets.abs()[None, :]
    return (dist <= radius).float()


def balanced_logistic_loss(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy where positives and negatives each weigh half (per pair, averaged)."""
    if labels is None:
        labels = response_labels(logits.shape[-1]).to(logits.device)
    labels = labels.expand_as(logits)
    pos, neg = labels == 1, labels == 0
    weight = torch.zeros_like(labels)
    weight[pos] = 0.5 / pos.sum(dim=(-1, -2, -3), keepdim=True).expand_as(labels)[pos].clamp(min=1)
    weight[neg] = 0.5 / neg.sum(dim=(-1, -2, -3), keepdim=True).expand_as(labels)[neg].clamp(min=1)
    loss = F.binary_cross_entropy_with_logits(logits, labels, weight, reduction="sum")
    return loss / logits.shape[0]


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's response against the FP teacher's soft response (per pair)."""
    return F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher), reduction="mean")
