"""MixBin: gates, budget losses, exact selection vs brute force, greedy fills, baselines, checkpoints, CLIs."""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch

from backbones.base import Classifier
from backbones.checkpoint import load_sliced_weights, load_weights, save_checkpoint
from backbones.cli import run_cli
from backbones.cost import UnitCosts, reference_costs
from backbones.mask import Mask, build_masked_backbone, load_mask, save_mask, uniform_mask, with_budget
from backbones.registry import build_classifier
from mixbin import baseline, search, train
from mixbin.data import ToNetworkInput
from mixbin.gates import GateSet, anneal, budget_matched_init, heaviside, psi_for
from mixbin.select import fits, greedy_fill, select_fp, select_fp_brute_force, states_for
from tracker.model import build_siamfc

CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "classification" / "cifar10"
needs_cifar = pytest.mark.skipif(not CIFAR.is_dir(), reason=f"real CIFAR-10 subset not found under {CIFAR}")
TRACKING = CIFAR.parents[1] / "tracking"
needs_tracking = pytest.mark.skipif(not TRACKING.is_dir(), reason=f"real tracking data not found under {TRACKING}")
TINY = ["--input-size", "96", "--batch-size", "4", "--limit", "12", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def resnet_costs() -> UnitCosts:
    return reference_costs("resnet", 0.25)


# --- gates -------------------------------------------------------------------------------------------

def test_gate_starts_at_init_and_limits_are_a_step():
    gates = GateSet(["a", "b", "c"], init=0.3, beta=2.0)
    assert torch.allclose(gates.values(), torch.full((3,), 0.3), atol=1e-6)
    assert psi_for(0.5, 1.0) == 0.0
    psi = torch.tensor([-0.2, -1e-3, 0.0, 1e-3, 0.2])
    assert heaviside(psi, 1e6).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert torch.all(heaviside(psi, 1.0) > 0) and torch.all(heaviside(psi, 1.0) < 1)
    assert anneal(1.0, 50.0, 0.0) == 1.0 and anneal(1.0, 50.0, 1.0) == pytest.approx(50.0)
    assert anneal(0.0, 2.0, 0.5, "linear") == 1.0
    with pytest.raises(ValueError):
        psi_for(1.0, 1.0)


def test_soft_ops_crispness_and_undecided(resnet_costs):
    names = list(resnet_costs.unit_macs)
    gates = GateSet(names, init=0.5)
    assert float(gates.crispness_loss().detach()) == pytest.approx(0.25)
    assert gates.undecided() == len(names)
    with torch.no_grad():
        gates.psi.fill_(100.0)
    assert float(gates.soft_ops(resnet_costs).detach()) == pytest.approx(resnet_costs.fp_ops)
    assert gates.undecided() == 0 and float(gates.crispness_loss().detach()) < 1e-12
    with torch.no_grad():
        gates.psi.fill_(-100.0)
    assert float(gates.soft_budget(resnet_costs).detach()) == pytest.approx(resnet_costs.min_budget)
    init = budget_matched_init(resnet_costs, 0.4)
    assert float(GateSet(names, init=init).soft_budget(resnet_costs).detach()) == pytest.approx(0.4, abs=1e-6)


@pytest.mark.parametrize("beta", [1.0, 50.0])
@pytest.mark.parametrize("target", [0.06, 0.3, 0.6, 1.0])
def test_the_threshold_holds_the_soft_budget_at_the_target(beta, target):
    costs = reference_costs("resnet", 1.0)  # all-binary budget 0.0506
    gates = GateSet(list(costs.unit_macs), init=0.5, beta=beta)
    with torch.no_grad():
        gates.psi.copy_(torch.linspace(-0.5, 0.7, len(gates.names)))
    gates.project(costs, target)
    assert float(gates.soft_budget(costs).detach()) == pytest.approx(target, abs=1e-6)


def test_a_closed_gate_stays_shut_and_the_threshold_holds_the_budget_without_it():
    costs = reference_costs("alexnet", 1.0)
    gates = GateSet(list(costs.unit_macs), init=0.5, beta=5.0, closed={"conv2"})
    with torch.no_grad():
        gates.psi.copy_(torch.tensor([3.0, 0.2, 0.1, -0.1]))  # conv2 would win on its own
    gates.project(costs, 0.4)
    z = gates.values()
    assert float(z[0].detach()) == 0.0 and float(gates.soft_budget(costs).detach()) == pytest.approx(0.4, abs=1e-6)
    z.sum().backward()
    assert float(gates.psi.grad[0]) == 0.0 and float(gates.psi.grad[1]) > 0


def test_selection_within_the_landing_window_equals_brute_force():
    from mixbin.select import budget_floor, in_window

    costs = reference_costs("resnet", 1.0)
    names = list(costs.unit_macs)
    rng = random.Random(5)
    for target in (0.15, 0.3, 0.5):
        scores = {n: rng.uniform(-3, 3) for n in names}
        states = select_fp(scores, costs, target, at_least_floor=True)
        chosen = {n for n, s in states.items() if s == "fp"}
        window = [set(s) for r in range(len(names) + 1) for s in itertools.combinations(names, r)
                  if in_window(set(s), costs, target)]
        best = max(window, key=lambda s: sum(scores[n] for n in s))
        assert in_window(chosen, costs, target) and chosen == best
        assert budget_floor(costs, target) - 1e-12 <= costs.budget(states) <= target


def test_gates_mix_the_paths_and_receive_gradients():
    model = build_classifier("alexnet", 10, 0.25)
    gates = GateSet(list(model.backbone.units()), init=0.5)
    gates.apply(model.backbone)
    assert all(u.gate is not None for u in model.backbone.units().values())
    model(torch.randn(2, 3, 96, 96)).sum().backward()
    assert gates.psi.grad is not None and torch.all(gates.psi.grad != 0)
    gates.remove(model.backbone)
    assert all(u.gate is None for u in model.backbone.units().values())


# --- hard selection ------------------------------------------------------------------------------------

def _costs(fixed: int, macs: list[int]) -> UnitCosts:
    return UnitCosts(fixed, {f"u{i}": m for i, m in enumerate(macs)})


def test_selection_on_a_hand_made_instance():
    costs = _costs(64, [64, 64, 128, 640])  # FP OPs 960, all-binary 78; FP adds 63/64 of a unit's MACs
    target = (78 + 63 + 63 + 126) / 960  # room for u0 + u1 + u2, never for u3 (630)
    states = select_fp({"u0": 0.9, "u1": 0.2, "u2": 0.6, "u3": 1.0}, costs, target)
    assert states == {"u0": "fp", "u1": "fp", "u2": "fp", "u3": "binary"}
    # a tie in gate values is broken by the tie-breaker (psi), then by OPs, then by the earlier unit
    tie = {"u0": 0.5, "u1": 0.5, "u2": 0.0, "u3": 0.0}
    tight = (78 + 63) / 960  # room for one of u0, u1
    assert select_fp(tie, costs, tight) == states_for({"u0"}, list(costs.unit_macs))
    assert select_fp(tie, costs, tight, {"u1": 0.7, "u0": 0.6}) == states_for({"u1"}, list(costs.unit_macs))


def test_selection_equals_brute_force_and_never_exceeds_the_budget():
    rng = random.Random(0)
    for _ in range(40):
        n = rng.randint(1, 7)
        costs = _costs(rng.randint(1, 500), [rng.choice([10, 64, 100, 128, 333]) for _ in range(n)])
        names = list(costs.unit_macs)
        scores = {u: rng.choice([0.0, 0.25, 0.5, 1.0, rng.random()]) for u in names}  # many ties
        tiebreak = {u: rng.choice([0.1, 0.5, rng.random()]) for u in names}
        target = rng.uniform(costs.min_budget, 1.0)
        for tb in (None, tiebreak):
            exact = select_fp(scores, costs, target, tb)
            assert exact == select_fp_brute_force(scores, costs, target, tb)
            assert costs.budget(exact) <= target
            fp = [u for u in names if exact[u] == "fp"]
            assert fits(fp, costs, target)
    with pytest.raises(ValueError, match="reachable range"):
        select_fp({"u0": 1.0}, _costs(100, [100]), 0.4)


def test_selection_on_the_real_resnet_costs(resnet_costs):
    names = list(resnet_costs.unit_macs)
    scores = {u: v for u, v in zip(names, [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.5], strict=True)}
    for target in (resnet_costs.min_budget + 1e-6, 0.2, 0.3, 0.55, 1.0):
        exact = select_fp(scores, resnet_costs, target)
        assert exact == select_fp_brute_force(scores, resnet_costs, target)
        assert resnet_costs.budget(exact) <= target


def test_the_hard_mask_is_the_gates_choice_when_it_fits(resnet_costs, capsys):
    names = list(resnet_costs.unit_macs)
    gates = {n: 1.0 if n in ("layer1.0.conv", "layer2.0.conv") else 1e-30 for n in names}
    psi = {n: 1.0 if gates[n] > 0.5 else -1.0 for n in names}
    states, agreement = search.gate_choice(gates, psi, resnet_costs, 0.4)
    assert agreement and states == states_for({"layer1.0.conv", "layer2.0.conv"}, names)
    assert capsys.readouterr().err == ""


def test_a_gate_set_over_the_target_is_reported_and_falls_back_without_counting_units(capsys):
    costs = _costs(64, [64, 64, 64, 640, 10])  # FP OPs 906, all-binary 78 (integer-exact in 1/64 MACs)
    names = list(costs.unit_macs)
    target = (64 + 842 / 64 + 2 * 63 + 10 * 63 / 64) / 906 + 1e-9 # room for two of u0-u2 and u4, not for all three
    gates = {"u0": 1.0, "u1": 1.0, "u2": 1.0, "u3": 1e-30, "u4": 1e-30}
    psi = {"u0": 0.2, "u1": 0.1, "u2": 0.3, "u3": -2.0, "u4": -1.0}
    states, agreement = search.gate_choice(gates, psi, costs, target)
    err = capsys.readouterr().err.strip()
    assert not agreement and len(err.splitlines()) == 1 and "over the target" in err and "u0, u1, u2" in err
    # knapsack on the gates; the tie between the pairs of u0-u2 goes to the larger psi; u4 (gate ~0, psi < 0)
    # stays binary although it fits: no rule that counts units adds it
    assert states == states_for({"u0", "u2"}, names) and fits({"u0", "u2", "u4"}, costs, target)


def test_greedy_fill_skips_units_that_do_not_fit_and_goes_on():
    costs = _costs(64, [64, 640, 128])  # FP OPs 896, all-binary 77
    target = (77 + 63 + 126) / 896  # room for u0 and u2 but not u1 (630)
    order = ["u0", "u1", "u2"]
    assert greedy_fill(order, costs, target) == {"u0": "fp", "u1": "binary", "u2": "fp"}
    assert greedy_fill(order[::-1], costs, target) == {"u0": "fp", "u1": "binary", "u2": "fp"}
    assert baseline.first_mask(costs, 1.0) == {u: "fp" for u in order}
    wide = _costs(0, [100, 100, 100, 100])
    two = (400 / 64 + 2 * 100 * 63 / 64) / 400
    assert baseline.first_mask(wide, two) == states_for({"u0", "u1"}, list(wide.unit_macs))
    assert baseline.last_mask(wide, two) == states_for({"u2", "u3"}, list(wide.unit_macs))
    assert baseline.random_mask(wide, two, 3) == baseline.random_mask(wide, two, 3)
    assert sum(s == "fp" for s in baseline.random_mask(wide, two, 3).values()) == 2


# --- baselines on a synthetic task ---------------------------------------------------------------------

class _RandomTask:
    """A tiny stand-in task on random images, enough to exercise the loss-probing baselines."""

    name, backbone, width, device, seed = "random", "alexnet", 0.25, torch.device("cpu"), 0

    def make_model(self, mask):
        return Classifier(build_masked_backbone(mask), 3)

    def loss(self, model, batch):
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    def heldout_batch(self):
        generator = torch.Generator().manual_seed(1)
        return torch.randn(6, 3, 96, 96, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2])


def test_sensitivity_values_are_raw_loss_increases_not_a_ratio(monkeypatch):
    costs = _costs(64, [64, 640, 64])  # room for u1 alone or for u0 + u2
    target = (64 + 768 / 64 + 630) / 832 + 1e-9
    increases = {"u0": 0.3, "u1": 1.0, "u2": 0.3}  # per OPs, u0 and u2 would win; by raw value u1 does
    names = list(costs.unit_macs)
    monkeypatch.setattr(baseline, "heldout_loss",
                        lambda task, model, states: sum(increases[n] for n in names if states[n] == "binary"))
    states, delta = baseline.sensitivity_mask(None, None, costs, target)
    assert states == states_for({"u1"}, names) and delta == pytest.approx(increases)


def test_iterative_and_sensitivity_meet_the_budget():
    task = _RandomTask()
    costs = reference_costs("alexnet", 0.25)
    model = task.make_model(uniform_mask("alexnet", 0.25, "fp"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    target = costs.min_budget + 0.6 * (1 - costs.min_budget)
    states, trace = baseline.iterative_mask(task, model, costs, target)
    assert costs.budget(states) <= target and trace
    assert {n for n, _ in trace} == {n for n in costs.unit_macs if states[n] == "binary"}
    states, delta = baseline.sensitivity_mask(task, model, costs, target)
    scale = max(abs(v) for v in delta.values())
    assert states == select_fp({n: v / scale for n, v in delta.items()}, costs, target)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # probes change nothing


def test_prune_width_matches_the_budget():
    width, ratio = baseline.prune_width("resnet", 0.5, 0.3)
    assert width < 0.5 and ratio <= 0.3
    full = reference_costs("resnet", 0.5).fp_ops
    assert reference_costs("resnet", width).fp_ops / full == pytest.approx(ratio)
    assert baseline.prune_width("resnet", 0.5, 1.0)[0] == 0.5


# --- checkpoints ---------------------------------------------------------------------------------------

def test_checkpoint_round_trip_into_classifier_and_siamfc(tmp_path):
    mask = uniform_mask("alexnet", 0.25, "fp")
    model = build_classifier("alexnet", 10, 0.25)
    path = save_checkpoint(tmp_path / "ck.safetensors", model, mask, {"seed": 0})
    sidecar = json.loads((tmp_path / "ck.json").read_text())
    expected = {f"backbone.{k}" for k in model.backbone.state_dict()} | {f"head.{k}" for k in model.head.state_dict()}
    assert set(sidecar["tensors"]) == expected
    other = build_classifier("alexnet", 10, 0.25)
    load_weights(other, path)
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in model.state_dict().items())
    tracker = build_siamfc(mask)
    load_weights(tracker, path)
    assert all(torch.equal(v, tracker.backbone.state_dict()[k]) for k, v in model.backbone.state_dict().items())
    narrow = build_classifier("alexnet", 10, 0.125)
    load_sliced_weights(narrow, path)
    assert torch.equal(narrow.backbone.conv1.weight, model.backbone.conv1.weight[: narrow.backbone.conv1.out_channels, :])
    from backbones.cli import UsageError

    with pytest.raises(UsageError, match="width"):
        load_weights(build_classifier("alexnet", 10, 0.5), path)
    sidecar["tensors"]["head.bias"] = [3]
    (tmp_path / "ck.json").write_text(json.dumps(sidecar))
    with pytest.raises(UsageError, match="disagree"):
        load_weights(other, path)


def test_network_input_is_bgr_with_the_tracker_normalisation():
    image = torch.zeros(3, 2, 2, dtype=torch.uint8)
    image[0] = 255  # red in RGB
    out = ToNetworkInput()(image)
    assert out[2, 0, 0] == pytest.approx((255 - 127.5) / 64) and out[0, 0, 0] == pytest.approx(-127.5 / 64)


# --- command lines ------------------------------------------------------------------------------------

def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


def test_budget_outside_the_reachable_range_exits_2(tmp_path, capsys):
    for budget in ("0.05", "1.2"):
        rc = run_cli(search.main, ["--data", str(tmp_path), "--backbone", "resnet", "--width", "0.25",
                                   "--budget", budget, "--out", str(tmp_path / "m.json")])
        assert rc == 2
        assert "[0.0978, 1]" in _one_line_error(capsys)
    rc = run_cli(baseline.main, ["--method", "first", "--data", str(tmp_path), "--backbone", "resnet",
                                 "--budget", "0.01", "--out", str(tmp_path / "m.json")])
    assert rc == 2 and "reachable range" in _one_line_error(capsys)
    assert not list(tmp_path.iterdir())


def test_image_folder_without_images_exits_2(tmp_path, capsys):
    for split in ("train", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
    args = ["--data", str(tmp_path), "--backbone", "alexnet", "--width", "0.25", "--iterations", "1",
            "--out", str(tmp_path / "run")]
    assert run_cli(train.main, args) == 2
    assert "no images" in _one_line_error(capsys)
    assert run_cli(train.main, ["--data", str(tmp_path / "train"), *args[2:]]) == 2
    assert "train/ and test/" in _one_line_error(capsys)


def test_mask_for_another_backbone_exits_2(tmp_path, capsys):
    save_mask(uniform_mask("alexnet", 0.25, "binary"), tmp_path / "alex.json")
    rc = run_cli(train.main, ["--data", str(tmp_path), "--backbone", "resnet", "--mask", str(tmp_path / "alex.json"),
                              "--iterations", "1", "--out", str(tmp_path / "run")])
    assert rc == 2 and "alexnet" in _one_line_error(capsys)


def test_tracking_task_without_splits_is_a_one_line_error(tmp_path, capsys):
    rc = run_cli(search.main, ["--task", "tracking", "--data", str(tmp_path), "--backbone", "resnet",
                               "--width", "0.25", "--budget", "0.3", "--out", str(tmp_path / "m.json")])
    assert rc == 2 and "splits/train.txt" in _one_line_error(capsys)
    assert not (tmp_path / "m.json").exists()


@needs_cifar
def test_tiny_search_on_cifar_writes_a_mask_the_tracker_loads(tmp_path, capsys):
    run = tmp_path / "fp"
    assert run_cli(train.main, ["--data", str(CIFAR), "--backbone", "resnet", "--width", "0.25", "--mask", "fp",
                                "--iterations", "1", "--out", str(run), *TINY]) == 0
    checkpoint = run / "checkpoint.safetensors"
    out = tmp_path / "masks" / "r.json"
    rc = run_cli(search.main, ["--data", str(CIFAR), "--backbone", "resnet", "--width", "0.25", "--budget", "0.3",
                               "--iterations", "2", "--finetune-iterations", "1", "--seed", "3",
                               "--init-from", str(checkpoint), "--out", str(out), *TINY])
    assert rc == 0, capsys.readouterr().err
    mask = load_mask(out)
    assert mask.budget["achieved"] <= mask.budget["target"] == 0.3
    assert mask.search["method"] == "mixbin" and mask.search["seed"] == 3 and mask.search["task"] == "classification"
    assert set(mask.search["gates"]) == set(mask.units) and "code_version" in mask.search
    assert isinstance(mask.search["gate_agreement"], bool) and "soft_budget" in mask.search
    if mask.search["gate_agreement"]:
        assert {n for n, z in mask.search["gates"].items() if z > 0.5} == {n for n, s in mask.units.items() if s == "fp"}
    tracker = build_siamfc(str(out))  # the classification mask loads into the tracker unchanged
    assert tracker.backbone.mask_states() == mask.units
    load_weights(tracker, tmp_path / "masks" / "r.weights.safetensors")
    rc = run_cli(baseline.main, ["--method", "first", "--data", str(CIFAR), "--backbone", "resnet", "--width", "0.25",
                                 "--budget", "0.3", "--finetune-iterations", "0", "--init-from", str(checkpoint),
                                 "--out", str(tmp_path / "first.json"), *TINY])
    assert rc == 0
    first = load_mask(tmp_path / "first.json")
    assert first.budget["achieved"] <= 0.3
    assert first.search["budget_unused"] == pytest.approx(0.3 - first.budget["achieved"], abs=1e-5)
    assert mask.search["budget_unused"] == pytest.approx(0.3 - mask.budget["achieved"], abs=1e-5)


@needs_cifar
def test_search_and_baselines_fine_tune_from_the_same_start(tmp_path):
    common = ["--data", str(CIFAR), "--backbone", "alexnet", "--width", "0.25", "--budget", "0.7",
              "--finetune-iterations", "0", "--seed", "5", *TINY]
    assert run_cli(search.main, [*common, "--iterations", "2", "--out", str(tmp_path / "s.json")]) == 0
    assert run_cli(baseline.main, [*common, "--method", "last", "--out", str(tmp_path / "b.json")]) == 0
    from safetensors.torch import load_file

    searched, last = (load_file(tmp_path / f"{n}.weights.safetensors") for n in ("s", "b"))
    assert searched.keys() == last.keys() and all(torch.equal(searched[k], last[k]) for k in last)


def test_brute_force_reference_is_exhaustive():
    costs = _costs(10, [10, 20, 30])
    names = list(costs.unit_macs)
    scores = {"u0": 0.3, "u1": 0.3, "u2": 0.7}
    target = (10 + 60 / 64 + 63 * 30 / 64) / 70
    best = max((s for r in range(4) for s in itertools.combinations(names, r) if fits(s, costs, target)),
               key=lambda s: sum(scores[u] for u in s))
    assert select_fp_brute_force(scores, costs, target) == states_for(set(best), names) == select_fp(
        scores, costs, target)


def test_best_reachable_budget_and_floor_match_brute_force():
    from mixbin.select import best_reachable, budget_floor, smallest_share

    for backbone, width in (("resnet", 0.5), ("resnet", 1.0), ("alexnet", 1.0)):
        costs = reference_costs(backbone, width)
        names = list(costs.unit_macs)
        for target in (0.3, 0.5):
            sets = [s for r in range(len(names) + 1) for s in itertools.combinations(names, r)
                    if fits(s, costs, target)]
            best = max(costs.budget(states_for(s, names)) for s in sets)
            assert best_reachable(costs, target) == pytest.approx(best, abs=1e-12) and best <= target
            share = min(costs.budget(states_for({n}, names)) for n in names) - costs.min_budget
            assert smallest_share(costs) == pytest.approx(share, abs=1e-12)
            assert budget_floor(costs, target) == pytest.approx(best - share, abs=1e-12)


def test_bound_check_flags_each_failed_requirement(tmp_path, capsys):
    from mixbin import report

    names = list(reference_costs("resnet", 1.0).unit_macs)
    fp = {"layer1.0.conv", "layer2.0.conv", "layer2.3.conv"}  # 0.2994, the best reachable at 0.3
    gates = {n: 0.99 if n in fp else 0.01 for n in names}
    good = {"gates": gates, "soft_budget": 0.305, "gate_agreement": True}
    cases = {"good": (fp, good, True), "soft": (fp, {**good, "soft_budget": 0.32}, False),
             "blurry": (fp, {**good, "gates": {**gates, "layer1.1.conv": 0.3}}, False),
             "disagree": (fp, {**good, "gate_agreement": False}, False),
             "short": ({"layer1.0.conv"}, good, False)}  # 0.1406: more than one unit (0.0711) short of 0.2994
    for name, (units, search_, expected) in cases.items():
        mask = Mask("resnet", 1.0, states_for(units, names), {"target": 0.3}, {"method": "mixbin", **search_})
        save_mask(with_budget(mask), tmp_path / f"{name}.json")
        assert report.bound_check(tmp_path / f"{name}.json")["meets"] is expected, name
    assert run_cli(report.main, ["--bounds", str(tmp_path / "good.json"), str(tmp_path / "short.json")]) == 1
    assert "| 0.3 | 0.2994 | 0.2994 | 0.2283 | 0.3050 | True | True | True |" in capsys.readouterr().out


def test_report_groups_runs_by_budget_and_method(tmp_path):
    import json as _json

    from mixbin.report import collect, table

    for seed, acc in ((0, 0.5), (1, 0.7)):
        (tmp_path / f"b0.3_random_s{seed}.json").write_text(_json.dumps({
            "budget": {"target": 0.3, "achieved": 0.28},
            "search": {"method": "random", "seed": seed, "metrics": {"accuracy": acc}, "wall_time_s": 10}}))
    groups = collect(tmp_path)
    assert [r["accuracy"] for r in groups[("0.3", "random")]] == [0.5, 0.7]
    assert "| 0.3 | random | 2 | 0.600 | 0.500-0.700 | 0.280 | 10 | - |" in table(groups)
    for seed, acc in ((0, 0.4), (1, 0.5)):  # MixBin with the same fine-tuning seeds: random - MixBin = +0.2
        (tmp_path / f"b0.3_mixbin_s{seed}.json").write_text(_json.dumps({
            "budget": {"target": 0.3, "achieved": 0.29},
            "search": {"method": "mixbin", "seed": seed, "metrics": {"accuracy": acc}, "wall_time_s": 20}}))
    text = table(collect(tmp_path))
    assert "| 0.3 | random | 2 | 0.600 | 0.500-0.700 | 0.280 | 10 | 0.150 [0.100, 0.200] (n=2) |" in text
    assert "| 0.3 | mixbin | 2 | 0.450 | 0.400-0.500 | 0.290 | 20 | - |" in text


@needs_tracking
def test_search_on_tracking_data_writes_a_mask_that_fits(tmp_path):
    from backbones.cli import run_cli
    from backbones.mask import load_mask
    from mixbin import search
    from tracker.model import build_siamfc

    out = tmp_path / "trk.json"
    argv = ["--task", "tracking", "--data", str(TRACKING), "--backbone", "resnet", "--width", "0.25",
            "--budget", "0.3", "--iterations", "2", "--finetune-iterations", "1", "--batch-size", "2",
            "--limit", "4", "--threads", "1", "--out", str(out)]
    assert run_cli(search.main, argv) == 0
    mask = load_mask(out)
    assert mask.budget["achieved"] <= 0.3 and mask.search["task"] == "tracking"
    assert 0.0 <= mask.search["metrics"]["accuracy"] <= 1.0
    build_siamfc(mask)  # loads unchanged into the tracker


@pytest.mark.parametrize("option, value, expected", [
    ("--lr", "-1", "--lr: expected a finite number > 0"),
    ("--seed", "-1", "--seed: expected an integer from 0 to 4294967295"),
    ("--seed", "4294967296", "--seed: expected an integer from 0 to 4294967295"),
    ("--workers", "-2", "--workers: expected an integer from 0 to 256"),
    ("--workers", "100000", "--workers: expected an integer from 0 to 256"),
    ("--threads", "-1", "--threads: expected an integer from 0 to 1024"),
    ("--device", "banana", "unknown device 'banana'"),
    ("--width", "1e6", "--width: expected a finite number in (0, 4]"),
    ("--width", "nan", "--width: expected a finite number"),
    ("--input-size", "100000", "--input-size: expected an integer from 1 to 512"),
    ("--batch-size", "0", "--batch-size: expected an integer from 1 to 1024"),
    ("--budget", "nan", "--budget: expected a finite number"),
    ("--finetune-iterations", "-1", "--finetune-iterations: expected an integer >= 0"),
    ("--landing", "0", "--landing: expected a finite number in (0, 1]"),
])
def test_out_of_range_options_are_refused_not_clamped(tmp_path, capsys, option, value, expected):
    argv = ["--data", str(tmp_path), "--backbone", "resnet", "--budget", "0.5",
            "--out", str(tmp_path / "m.json")]
    assert run_cli(search.main, [*argv, option, value]) == 2
    assert expected in _one_line_error(capsys)
    assert not list(tmp_path.iterdir())


def test_init_from_another_width_or_backbone_is_one_line_before_work(tmp_path, capsys):
    model = build_classifier("resnet", 10, 0.25)
    save_checkpoint(tmp_path / "fp.safetensors", model, uniform_mask("resnet", 0.25, "fp"), {})
    ckpt = str(tmp_path / "fp.safetensors")
    common = ["--data", str(tmp_path / "no-data"), "--budget", "0.5", "--init-from", ckpt,
              "--out", str(tmp_path / "m.json")]
    assert run_cli(search.main, [*common, "--backbone", "resnet", "--width", "0.5"]) == 2
    assert "is a checkpoint of resnet width 0.25; this run needs resnet width 0.5" in _one_line_error(capsys)
    assert run_cli(baseline.main, [*common, "--method", "first", "--backbone", "alexnet",
                                   "--width", "0.25"]) == 2
    assert "not of alexnet" in _one_line_error(capsys)
    # pruning slices a checkpoint at least as wide as the reference width
    assert run_cli(baseline.main, [*common, "--method", "prune", "--backbone", "resnet",
                                   "--width", "0.5"]) == 2
    assert "needs resnet width >= 0.5" in _one_line_error(capsys)
    assert run_cli(train.main, ["--data", str(tmp_path / "no-data"), "--backbone", "resnet", "--width", "0.5",
                                "--init-from", ckpt, "--out", str(tmp_path / "run")]) == 2
    assert "this run needs resnet width 0.5" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp.json", "fp.safetensors"]


def test_out_under_a_file_is_refused_before_work(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    rc = run_cli(train.main, ["--data", str(tmp_path), "--backbone", "resnet",
                              "--out", str(tmp_path / "file" / "r")])
    assert rc == 2 and "is a file, not a folder" in _one_line_error(capsys)
    rc = run_cli(search.main, ["--data", str(tmp_path), "--backbone", "resnet", "--budget", "0.5",
                               "--out", str(tmp_path / "file" / "m.json")])
    assert rc == 2 and "is a file, not a folder" in _one_line_error(capsys)
    assert (tmp_path / "file").read_text() == "mine"


@needs_tracking
def test_tracking_probes_train_and_val_are_sequence_disjoint():
    from mixbin.tracking import TrackingTask

    task = TrackingTask(TRACKING, "resnet", 0.25, batch_size=2, limit=4)
    train, probe, val = ({s.name for s in d.sequences} for d in (task.train_pairs, task.probe_pairs, task.val_pairs))
    assert probe and train and val and not (train & probe) and not (train & val) and not (probe & val)
    from tracker.sequences import load_sequences

    listed = {s.name for s in load_sequences(TRACKING, TRACKING / "splits" / "train.txt")}
    assert train | probe == listed  # both come from the train split; val only scores
    z, x = task.heldout_batch()
    first = task.probe_pairs[0]
    assert torch.equal(z[0], first[0]) and torch.equal(x[0], first[1])  # the probes are probe-sequence pairs
