"""SiamFC's balanced logistic loss and its label map (the stride is the backbone's ``total_stride``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

POSITIVE_RADIUS = 16.0  # pixels of the search image


def response_labels(size: int, total_stride: int, positive_radius: float = POSITIVE_RADIUS) -> torch.Tensor:
    """1 within ``positive_radius`` pixels (city-block, in cells of ``total_stride`` px) of the centre, else 0
    (siamfc-pytorch's labels)."""
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    dist = offsets.abs()[:, None] + offsets.abs()[None, :]
    return (dist <= positive_radius / total_stride).float()


def balanced_logistic_loss(logits: torch.Tensor, total_stride: int,
                           positive_radius: float = POSITIVE_RADIUS) -> torch.Tensor:
    """Binary cross-entropy where positives and negatives each weigh half (per pair, averaged)."""
    labels = response_labels(logits.shape[-1], total_stride, positive_radius).to(logits.device)
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
