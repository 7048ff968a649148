"""Cost model figures, mask files and the two CLIs' error handling."""
import json

import pytest

from backbones.cli import UsageError
from backbones.cost import __main__ as cost_cli
from backbones.cost import cost_report, measure_layers, reference_costs
from backbones.mask import Mask, build_masked_backbone, load_mask, save_mask, uniform_mask
from backbones.mask import __main__ as mask_cli
from backbones.registry import build_backbone


def run_json(capsys, argv):
    assert cost_cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_alexnet_reference_figures(capsys):
    d = run_json(capsys, ["--backbone", "alexnet", "--json"])
    assert d["total_macs"] == pytest.approx(2.72e9, rel=0.01)
    assert d["params"] == pytest.approx(2.33e6, rel=0.01)
    assert 0.19 <= d["min_budget"] <= 0.22
    assert d["budget"] == 1.0 and d["ops"] == d["total_macs"]
    assert {"name", "kind", "macs", "ops", "params", "weight_bits"} <= set(d["layers"][0])
    assert [x["kind"] for x in d["layers"]] == ["fixed", "fp", "fp", "fp", "fp"]
    small = run_json(capsys, ["--backbone", "alexnet", "--json", "--input", "127"])
    assert small["total_macs"] == pytest.approx(0.46e9, rel=0.01)
    assert small["budget"] == d["budget"] and small["min_budget"] == d["min_budget"]


def test_resnet_reference_figures(capsys):
    d = run_json(capsys, ["--backbone", "resnet", "--json"])
    units = [x for x in d["layers"] if x["kind"] != "fixed"]
    assert len(units) >= 8
    assert d["total_macs"] <= 1.0e9
    assert d["min_budget"] <= 0.15


@pytest.mark.parametrize("name", ["alexnet", "resnet"])
def test_all_fp_and_all_binary_budgets(name):
    fp = cost_report(build_masked_backbone("fp", name))
    binary = cost_report(build_masked_backbone("binary", name))
    assert fp.budget == 1.0
    assert binary.budget == pytest.approx(binary.min_budget, abs=1e-12)
    assert binary.ops == pytest.approx(fp.ops * binary.min_budget, rel=1e-9)
    assert binary.weight_bits < fp.weight_bits / 10


def test_budget_is_measured_at_reference_input():
    costs = reference_costs("alexnet", 1.0)
    states = {n: "binary" for n in costs.unit_macs} | {"conv5": "fp"}
    net = build_backbone("alexnet")
    net.set_mask(states)
    assert cost_report(net, 127).budget == pytest.approx(costs.budget(states))
    # conv5 is about 8% of the MACs at 255 (docs/design.md section 3)
    assert 0.07 < costs.unit_macs["conv5"] / costs.fp_ops < 0.09


def test_mask_round_trips_through_file(tmp_path):
    states = {n: ("fp" if i % 2 else "binary") for i, n in enumerate(build_backbone("resnet").units())}
    mask = Mask("resnet", 1.0, states, search={"method": "hand"})
    saved = save_mask(mask, tmp_path / "m.json")
    loaded = load_mask(tmp_path / "m.json")
    assert loaded == saved and loaded.units == states
    assert loaded.budget["achieved"] == pytest.approx(reference_costs("resnet", 1.0).budget(states), abs=1e-6)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.json"]


def test_mask_cli_writes_and_cost_cli_reads(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert mask_cli.main(["--backbone", "alexnet", "--all", "binary", "--out", str(out)]) == 0
    assert "budget" in capsys.readouterr().out
    d = run_json(capsys, ["--mask", str(out), "--json"])
    assert d["budget"] == pytest.approx(d["min_budget"])


def error_line(capsys, main, argv):
    from backbones.cli import run_cli

    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def write_json(path, data):
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert "alexnet, resnet" in error_line(capsys, cost_cli.main, ["--backbone", "vgg"])
    assert "width" in error_line(capsys, cost_cli.main, ["--backbone", "alexnet", "--width", "0"])
    assert "width" in error_line(capsys, cost_cli.main, ["--backbone", "alexnet", "--width", "-1"])
    good = uniform_mask("resnet", 1.0, "fp").to_json()
    other = write_json(tmp_path / "other.json", good)
    line = error_line(capsys, cost_cli.main, ["--mask", other, "--backbone", "alexnet"])
    assert "'resnet', not 'alexnet'" in line
    assert "width 1, not 0.5" in error_line(capsys, cost_cli.main, ["--mask", other, "--width", "0.5"])
    unknown = write_json(tmp_path / "unknown.json", good | {"units": good["units"] | {"fc9": "fp"}})
    assert "unknown unit(s) fc9" in error_line(capsys, cost_cli.main, ["--mask", unknown])
    units = dict(good["units"])
    units.pop("layer2.3.conv")
    missing = write_json(tmp_path / "missing.json", good | {"units": units})
    assert "missing unit(s) layer2.3.conv" in error_line(capsys, cost_cli.main, ["--mask", missing])
    malformed = write_json(tmp_path / "bad.json", '{"format": "b2nn-mask/1", ')
    assert "bad.json: malformed JSON" in error_line(capsys, cost_cli.main, ["--mask", malformed])
    wrong_budget = write_json(tmp_path / "budget.json", good | {"budget": {"target": 1, "achieved": 0.5}})
    assert "disagrees" in error_line(capsys, cost_cli.main, ["--mask", wrong_budget])
    assert "not found" in error_line(capsys, cost_cli.main, ["--mask", str(tmp_path / "nope.json")])
    out = tmp_path / "never.json"
    assert "alexnet, resnet" in error_line(capsys, mask_cli.main, ["--backbone", "vgg", "--all", "fp",
                                                                   "--out", str(out)])
    assert not out.exists()


def test_absurd_sizes_and_malformed_budgets_exit_2_with_one_line(tmp_path, capsys):
    assert "(0, 4]" in error_line(capsys, cost_cli.main, ["--backbone", "resnet", "--width", "1e9"])
    argv = ["--backbone", "resnet", "--width", "1e9", "--all", "fp", "--out", str(tmp_path / "w.json")]
    assert "(0, 4]" in error_line(capsys, mask_cli.main, argv)
    assert "[87, 1024]" in error_line(capsys, cost_cli.main, ["--backbone", "resnet", "--input", "100000"])
    assert "--input" in error_line(capsys, cost_cli.main, ["--backbone", "alexnet", "--input", "40"])
    assert "--width" in error_line(capsys, cost_cli.main, ["--backbone", "alexnet", "--width", "wide"])
    assert "--out" in error_line(capsys, mask_cli.main, ["--backbone", "alexnet", "--all", "fp"])
    good = uniform_mask("alexnet", 1.0, "fp").to_json()
    for budget in ([0.3], 0.3, "0.3", {"target": "0.3"}, {"achieved": None, "target": 7}, {"target": True}):
        bad = write_json(tmp_path / "budget.json", good | {"budget": budget})
        line = error_line(capsys, cost_cli.main, ["--mask", bad])
        assert line.startswith(f"error: {bad}: ") and "budget" in line
    for data in (good | {"width": 1e400}, good | {"backbone": ["resnet"]}, good | {"search": 3}, [good]):
        bad = write_json(tmp_path / "bad.json", data)
        assert error_line(capsys, cost_cli.main, ["--mask", bad]).startswith(f"error: {bad}:")
    assert not (tmp_path / "w.json").exists()
    from mixbin.task import check_input_size  # mixbin --input-size: the same range, before allocating

    with pytest.raises(UsageError, match=r"--input-size: .*\[87, 1024\]"):
        check_input_size("resnet", 1.0, 10**5)


def test_reference_costs_are_cached_copies_of_the_measurement():
    first = reference_costs("resnet", 0.25)
    first.unit_macs.clear()  # a caller's copy: the cache must not see this
    again = reference_costs("resnet", 0.25)
    net = build_backbone("resnet", 0.25)
    measured = {x.name: x.macs for x in measure_layers(net) if x.name in net.units()}
    assert again.unit_macs == measured and list(again.unit_macs) == list(net.units())
    with pytest.raises(UsageError, match="unknown backbone"):
        reference_costs("vgg", 1.0)
