"""Exact cost model measured on the real modules with forward hooks: MACs, OPs, parameters, weight bits.

OPs follow Bi-Real Net / ReActNet: a fixed or FP layer costs its MACs, a binary layer MACs / 64 (64 binary
MACs per XNOR-popcount word). The budget of a mask is its OPs over the all-FP OPs, always at the 255x255
reference input (docs/design.md section 3); ``reference_costs`` measures that once per backbone and width.
``python -m backbones.cost`` (``backbones/cost/__main__.py``) prints the per-layer table.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch
from torch import nn

from backbones.base import Backbone
from backbones.registry import build_backbone, check_backbone_args
from backbones.unit import SwitchableConv

REFERENCE_INPUT = 255
BINARY_MACS_PER_OP = 64  # the word size: binary MACs one 64-bit XNOR-popcount OP does
BINARY_OPS_PER_MAC = 1 / BINARY_MACS_PER_OP


@dataclass
class LayerCost:
    """Cost of one convolution or linear layer at one input size."""

    name: str
    kind: str  # 'fixed', 'fp' or 'binary'
    macs: int
    ops: float
    params: int
    weight_bits: int
    output: list[int]


@dataclass
class CostReport:
    """Per-layer costs and totals of a backbone with its current mask."""

    backbone: str
    width: float
    input: int
    layers: list[LayerCost]
    total_macs: int
    ops: float
    budget: float
    min_budget: float
    params: int
    weight_bits: int

    def to_json(self) -> dict:
        return asdict(self)


def _layer_cost(name: str, kind: str, conv: nn.Module, output: torch.Tensor) -> LayerCost:
    weight = conv.weight
    per_output = weight[0].numel()  # (in_channels / groups) x kernel area, or in_features
    macs = int(output[0].numel() * per_output)
    bias = 0 if conv.bias is None else conv.bias.numel()
    params = weight.numel() + bias
    if kind == "binary":
        bits = weight.numel() + 32 * weight.shape[0] + 32 * bias
        ops = macs * BINARY_OPS_PER_MAC
    else:
        bits = 32 * params
        ops = float(macs)
    return LayerCost(name, kind, macs, ops, params, bits, list(output.shape[1:]))


@torch.no_grad()
def measure_layers(backbone: Backbone, input_size: int = REFERENCE_INPUT) -> list[LayerCost]:
    """Run one forward pass of a 1x3xNxN input and record every conv / linear layer's cost, in order."""
    backbone.check_input_size(input_size)
    units = backbone.units()
    unit_convs = {id(u.conv) for u in units.values()}
    layers: list[LayerCost] = []
    hooks = []
    for name, module in backbone.named_modules():
        if isinstance(module, SwitchableConv):
            def hook(mod, _inp, out, name=name):
                layers.append(_layer_cost(name, mod.state, mod.conv, out))
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and id(module) not in unit_convs:
            def hook(mod, _inp, out, name=name):
                layers.append(_layer_cost(name, "fixed", mod, out))
        else:
            continue
        hooks.append(module.register_forward_hook(hook))
    was_training = backbone.training
    gates = {name: u.gate for name, u in units.items()}
    try:
        backbone.eval()
        for u in units.values():
            u.gate = None
        device = next(backbone.parameters()).device
        backbone.embed(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        for name, u in units.items():
            u.gate = gates[name]
        backbone.train(was_training)
    return layers


@dataclass
class UnitCosts:
    """MACs at the reference input: the fixed layers' total and each unit's, for fast budget arithmetic."""

    fixed_macs: int
    unit_macs: dict[str, int]

    @property
    def fp_ops(self) -> float:
        return float(self.fixed_macs + sum(self.unit_macs.values()))

    def ops(self, states: dict[str, str]) -> float:
        """OPs with the given unit states."""
        return self.fixed_macs + sum(m if states[n] == "fp" else m * BINARY_OPS_PER_MAC
                                     for n, m in self.unit_macs.items())

    def budget(self, states: dict[str, str]) -> float:
        """Budget of a mask: its OPs over the all-FP OPs."""
        return self.ops(states) / self.fp_ops

    @property
    def min_budget(self) -> float:
        return self.budget({n: "binary" for n in self.unit_macs})


@functools.lru_cache(maxsize=64)
def _reference_macs(name: str, width: float) -> tuple[int, tuple[tuple[str, int], ...]]:
    backbone = build_backbone(name, width)
    layers = measure_layers(backbone, REFERENCE_INPUT)
    unit_names = set(backbone.units())
    return (sum(x.macs for x in layers if x.name not in unit_names),
            tuple((x.name, x.macs) for x in layers if x.name in unit_names))


def reference_costs(name: str, width: float) -> UnitCosts:
    """Fixed and per-unit MACs of backbone ``name`` at ``width`` at the reference input, measured once
    (cached): what every budget computation uses. BackboneError for an unknown name or a bad width.
    """
    check_backbone_args(name, width)
    fixed, units = _reference_macs(name, float(width))
    return UnitCosts(fixed_macs=fixed, unit_macs=dict(units))


def cost_report(backbone: Backbone, input_size: int = REFERENCE_INPUT) -> CostReport:
    """Per-layer table at ``input_size``; budget and min_budget always at the reference input."""
    layers = measure_layers(backbone, input_size)
    reference = reference_costs(backbone.name, backbone.width)
    return CostReport(
        backbone=backbone.name, width=backbone.width, input=input_size, layers=layers,
        total_macs=sum(x.macs for x in layers), ops=sum(x.ops for x in layers),
        budget=reference.budget(backbone.mask_states()), min_budget=reference.min_budget,
        params=sum(p.numel() for p in backbone.parameters()),
        weight_bits=sum(x.weight_bits for x in layers))


def format_table(report: CostReport) -> str:
    """A larq-summary-like text table of per-layer costs."""
    head = f"{'layer':<22}{'kind':<8}{'output':>16}{'MACs':>15}{'OPs':>15}{'params':>11}{'weight bits':>13}"
    rule = "-" * len(head)
    title = f"{report.backbone} (width {report.width:g}), input {report.input}x{report.input}"
    rows = [title, rule, head, rule]
    for x in report.layers:
        shape = "x".join(str(s) for s in x.output)
        rows.append(f"{x.name:<22}{x.kind:<8}{shape:>16}{x.macs:>15,}{x.ops:>15,.0f}{x.params:>11,}"
                    f"{x.weight_bits:>13,}")
    rows += [rule,
             f"total MACs {report.total_macs:,} ({report.total_macs / 1e9:.3f} G)   OPs {report.ops:,.0f}",
             (f"params {report.params:,}   weight bits {report.weight_bits:,} "
             f"({report.weight_bits / 8 / 2**20:.2f} MiB)"),
             (f"budget {report.budget:.4f} (at {REFERENCE_INPUT}x{REFERENCE_INPUT})   "
             f"min budget {report.min_budget:.4f}")]
    return "\n".join(rows)
