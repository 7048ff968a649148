"""Image operations shared by training and tracking: SiamFC crops, and patches as pixel tensors.

Normalisation is the backbone's (``Backbone.normalize``, declared by ``Backbone.input_config``).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

EXEMPLAR_SIZE = 127
INSTANCE_SIZE = 255
CONTEXT = 0.5


def box_center(box: np.ndarray) -> np.ndarray:
    """Centre (cx, cy) of an [x, y, w, h] box in 0-based pixel-index coordinates."""
    return np.array([box[0] + (box[2] - 1) / 2, box[1] + (box[3] - 1) / 2], dtype=np.float64)


def center_to_box(center: np.ndarray, size: np.ndarray) -> np.ndarray:
    """[x, y, w, h] from a centre (cx, cy) and a size (w, h); the inverse of ``box_center``."""
    return np.array([center[0] - (size[0] - 1) / 2, center[1] - (size[1] - 1) / 2, size[0], size[1]])


def exemplar_size(target_size: np.ndarray, context: float = CONTEXT) -> float:
    """Side of the square exemplar region in image pixels: sqrt((w + p) (h + p)), p = context (w + h)."""
    pad = context * float(np.sum(target_size))
    return float(np.sqrt((target_size[0] + pad) * (target_size[1] + pad)))


def crop_and_resize(image: np.ndarray, center: np.ndarray, size: float, out_size: int,
                    border: np.ndarray | tuple, interp: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Square crop of side ``size`` image pixels centred on ``center``, resized to ``out_size``.

    One affine warp with sub-pixel accuracy; pixels outside the image take ``border`` (the mean colour).
    """
    scale = out_size / max(size, 1e-6)
    matrix = np.array([[scale, 0.0, (out_size - 1) / 2 - center[0] * scale],
                       [0.0, scale, (out_size - 1) / 2 - center[1] * scale]], dtype=np.float64)
    return cv2.warpAffine(image, matrix, (out_size, out_size), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=tuple(float(v) for v in border))


def to_pixels(patches: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """One HxWx3 patch or a list of them -> an NCHW tensor of the same raw pixels (uint8 stays uint8)."""
    array = np.ascontiguousarray(np.stack(patches) if isinstance(patches, list) else patches[None])
    return torch.from_numpy(array).permute(0, 3, 1, 2)
