"""Tests of count_parameters: formulas per rule, PyTorch and torchinfo as oracles, golden tables.

Regenerate the golden tables with ``FMCLASSIFY_REGEN_GOLDEN=1 pytest tests/test_parameters.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from fmclassify import _rules
from fmclassify.exceptions import ParameterCountError
from fmclassify.parameters import (
    Formula,
    ParameterReport,
    ParameterRow,
    compare_parameters,
    count_parameters,
    register_parameter_rule,
)
from fmclassify.registry import build_model, list_models

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("FMCLASSIFY_REGEN_GOLDEN", "") not in ("", "0")

COURSE_TRAINABLE = {"base": 669_706, "deeper": 1_475_338, "wider": 1_557_330}


def unique_numel(model: nn.Module, *, trainable_only: bool = False) -> int:
    """The oracle: PyTorch's own unique parameters (named_parameters drops tied duplicates)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def evaluate(text: str) -> int:
    """A second, independent evaluation of a substituted formula (exact divisions only)."""
    return int(eval(text.replace("/", "//"), {"__builtins__": {}}))  # digits and + - * / ( )


@pytest.fixture
def private_rules(monkeypatch: pytest.MonkeyPatch) -> dict[type[nn.Module], Any]:
    """A copy of the rule registry, so a test's registrations do not leak into others."""
    rules = dict(_rules._RULES)
    monkeypatch.setattr(_rules, "_RULES", rules)
    return rules


# ----------------------------------------------------------------------------- course models


@pytest.mark.parametrize("spec", list_models(), ids=lambda spec: spec.name)
def test_every_registered_model_is_fully_checked(spec) -> None:
    model = build_model(spec.name)
    report = count_parameters(model)
    assert report.total == unique_numel(model)
    assert report.trainable == unique_numel(model, trainable_only=True)
    unchecked = [(r.name, r.layer_type, r.status) for r in report.rows if r.status != "checked"]
    assert unchecked == [], f"rows without a matching analytic rule in {spec.name}"
    assert report.all_checked


@pytest.mark.parametrize(("name", "expected"), sorted(COURSE_TRAINABLE.items()))
def test_course_models_have_the_course_counts(name: str, expected: int) -> None:
    report = count_parameters(build_model(name))
    assert (report.total, report.trainable, report.non_trainable) == (expected, expected, 0)
    assert report.model_name == name


def test_deeper_matches_the_hand_calculation_row_by_row() -> None:
    report = count_parameters(build_model("deeper"))
    assert [r.analytic for r in report.rows] == [320, 64, 18_496, 128, 1_383_000, 72_120, 1_210]
    assert [r.layer_type for r in report.rows] == [
        "Conv2d",
        "BatchNorm2d",
        "Conv2d",
        "BatchNorm2d",
        "Linear",
        "Linear",
        "Linear",
    ]
    assert [r.formula_text for r in report.rows[:3]] == [
        "((m*n*d)+1)*k = ((3*3*1)+1)*32 = 320",
        "2*C = 2*32 = 64",
        "((m*n*d)+1)*k = ((3*3*32)+1)*64 = 18,496",
    ]
    assert report.rows[4].formula_text == "(n+1)*m = (2304+1)*600 = 1,383,000"


def test_deeper_notes_buffers_batch_norm_and_parameter_free_layers_once() -> None:
    notes = count_parameters(build_model("deeper")).notes
    buffers = [n for n in notes if n.startswith("Buffers are not parameters")]
    assert buffers == [
        "Buffers are not parameters and are not counted: 6 buffers, 194 values "
        "(num_batches_tracked, running_mean, running_var)."
    ]
    assert sum("Keras" in n and "Batch norm" in n for n in notes) == 1
    assert "Layers without parameters count 0 and have no row: ReLU, MaxPool2d, Dropout." in notes


def test_mlp_has_no_buffer_or_batch_norm_note() -> None:
    notes = count_parameters(build_model("base")).notes
    assert not any("Buffers" in n or "Batch norm" in n for n in notes)


@pytest.mark.parametrize("name", sorted(COURSE_TRAINABLE))
def test_golden_tables(name: str) -> None:
    report = count_parameters(build_model(name))
    for suffix, text in ((".txt", str(report)), (".md", report.to_markdown())):
        path = GOLDEN / f"params_{name}{suffix}"
        if REGEN:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert text == path.read_text(encoding="utf-8"), f"{path} differs; regenerate?"


def test_text_table_is_aligned_with_totals_at_the_bottom() -> None:
    lines = str(count_parameters(build_model("deeper"))).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Layer"))
    table = lines[header + 2 : header + 9]
    assert len({line.index("ok") for line in table}) == 1  # the Check column lines up
    assert len({len(line) - len(line.lstrip()) for line in table}) == 1
    assert lines[header + 10 : header + 13] == [
        "Total parameters: 1,475,338",
        "Trainable:        1,475,338",
        "Non-trainable:            0",
    ]


def test_to_dict_is_json_ready_and_sums_to_the_totals() -> None:
    report = count_parameters(build_model("deeper"))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["total"] == sum(row["counted"] for row in data["rows"]) == 1_475_338
    assert data["rows"][0]["formula"] == "((m*n*d)+1)*k = ((3*3*1)+1)*32 = 320"
    assert data["rows"][0]["symbolic"] == "((m*n*d)+1)*k"
    assert data["rows"][0]["params"] == ["layer1.0.weight", "layer1.0.bias"]
    assert data["all_checked"] is True


# ------------------------------------------------------------------ one formula per rule type


FORMULAS = [
    (nn.Linear(784, 512), "(n+1)*m = (784+1)*512 = 401,920"),
    (nn.Linear(3, 4, bias=False), "n*m = 3*4 = 12"),
    (nn.Bilinear(3, 4, 5), "(n1*n2+1)*m = (3*4+1)*5 = 65"),
    (nn.Conv1d(2, 6, 5), "((m*d)+1)*k = ((5*2)+1)*6 = 66"),
    (nn.Conv2d(1, 32, 3, padding=1), "((m*n*d)+1)*k = ((3*3*1)+1)*32 = 320"),
    (nn.Conv2d(8, 16, 3, groups=4), "((m*n*(d/g))+1)*k = ((3*3*(8/4))+1)*16 = 304"),
    (nn.Conv3d(2, 4, 3), "((t*m*n*d)+1)*k = ((3*3*3*2)+1)*4 = 220"),
    (nn.ConvTranspose1d(3, 6, 2), "((m*d)+1)*k = ((2*3)+1)*6 = 42"),
    (
        nn.ConvTranspose2d(8, 16, (3, 5), groups=2, bias=False),
        "(m*n*(d/g))*k = (3*5*(8/2))*16 = 960",
    ),
    (nn.ConvTranspose3d(2, 3, 2), "((t*m*n*d)+1)*k = ((2*2*2*2)+1)*3 = 51"),
    (nn.BatchNorm1d(10), "2*C = 2*10 = 20"),
    (nn.BatchNorm2d(32), "2*C = 2*32 = 64"),
    (nn.BatchNorm3d(4), "2*C = 2*4 = 8"),
    (nn.LayerNorm(768), "2*P = 2*768 = 1,536"),
    (nn.LayerNorm([4, 5]), "2*P = 2*(4*5) = 40"),
    (nn.LayerNorm(7, bias=False), "P = 7"),
    (nn.GroupNorm(2, 8), "2*C = 2*8 = 16"),
    (nn.InstanceNorm2d(4, affine=True), "2*C = 2*4 = 8"),
    (nn.Embedding(10, 3), "V*D = 10*3 = 30"),
    (nn.EmbeddingBag(12, 3), "V*D = 12*3 = 36"),
    (nn.PReLU(), "a = 1"),
    (nn.PReLU(5), "a = 5"),
    (nn.RNN(10, 20), "G*h*(n+h+2) = 1*20*(10+20+2) = 640"),
    (
        nn.GRU(10, 20, num_layers=2),
        "G*h*(n+h+2) + (L-1)*G*h*(h+h+2) = 3*20*(10+20+2) + (2-1)*3*20*(20+20+2) = 4,440",
    ),
    (
        nn.LSTM(10, 20, num_layers=3, bidirectional=True),
        "D*G*h*(n+h+2) + (L-1)*D*G*h*(D*h+h+2) = 2*4*20*(10+20+2) + (3-1)*2*4*20*(2*20+20+2)"
        " = 24,960",
    ),
    (nn.LSTM(10, 20, bias=False), "G*h*(n+h) = 4*20*(10+20) = 2,400"),
    (nn.LSTM(10, 20, proj_size=7), "G*h*(n+p+2)+p*h = 4*20*(10+7+2)+7*20 = 1,660"),
    (nn.MultiheadAttention(16, 4), "3*(E+1)*E = 3*(16+1)*16 = 816"),
    (nn.MultiheadAttention(16, 4, bias=False), "3*E*E = 3*16*16 = 768"),
    (
        nn.MultiheadAttention(16, 4, kdim=8, vdim=6, add_bias_kv=True),
        "E*(E+kdim+vdim)+3*E+2*E = 16*(16+8+6)+3*16+2*16 = 560",
    ),
]
if hasattr(nn, "RMSNorm"):
    FORMULAS.append((nn.RMSNorm(6), "P = 6"))


@pytest.mark.parametrize(("layer", "text"), FORMULAS, ids=lambda x: type(x).__name__)
def test_formula_text_per_rule(layer: nn.Module, text: str) -> None:
    row = count_parameters(layer).rows[0]
    assert row.formula_text == text
    assert row.status == "checked"
    assert row.analytic == row.numel == sum(p.numel() for p in layer.parameters(recurse=False))
    assert evaluate(row.formula.substituted) == row.analytic


def test_affine_free_norm_layers_have_no_row() -> None:
    model = nn.Sequential(
        nn.BatchNorm2d(3, affine=False), nn.LayerNorm(4, elementwise_affine=False)
    )
    report = count_parameters(model)
    assert report.rows == () and report.total == 0
    assert "(no parameters)" in str(report) and "(no parameters)" in report.to_markdown()


# ------------------------------------------------------------- torchvision and torchinfo


TORCHVISION = ["resnet18", "mobilenet_v3_small", "vgg11_bn", "vit_b_16"]


@pytest.fixture(scope="module")
def torchvision_models() -> dict[str, nn.Module]:
    # Built on the meta device: shapes only, no memory and no initialisation (vgg11_bn has
    # 133M parameters, vit_b_16 87M); counts depend on shapes alone. weights=None: no download.
    with torch.device("meta"):
        return {name: getattr(torchvision.models, name)(weights=None) for name in TORCHVISION}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_totals_agree_with_numel_and_torchinfo(torchvision_models, name) -> None:
    torchinfo = pytest.importorskip("torchinfo")
    model = torchvision_models[name]
    report = count_parameters(model)
    stats = torchinfo.summary(model, verbose=0)  # counts need no input (no forward pass)
    assert report.total == unique_numel(model) == stats.total_params
    assert report.trainable == unique_numel(model, trainable_only=True) == stats.trainable_params
    for row in report.rows:
        assert row.status in ("checked", "tensor"), row
        assert evaluate(row.formula.substituted) == row.analytic == row.numel


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vgg11_bn"])
def test_convnets_are_covered_by_rules(torchvision_models, name) -> None:
    assert count_parameters(torchvision_models[name]).all_checked


def test_vit_free_tensors_get_their_own_rows(torchvision_models) -> None:
    rows = {r.name: r for r in count_parameters(torchvision_models["vit_b_16"]).rows}
    assert rows["class_token"].layer_type == "Parameter"
    assert rows["class_token"].formula_text == "1*1*768 = 768"
    assert rows["encoder.pos_embedding"].formula_text == "1*197*768 = 151,296"
    assert rows["encoder.pos_embedding"].status == "tensor"
    attention = rows["encoder.layers.encoder_layer_0.self_attention"]
    assert attention.formula_text == "3*(E+1)*E = 3*(768+1)*768 = 1,771,776"
    out_proj = rows["encoder.layers.encoder_layer_0.self_attention.out_proj"]
    assert out_proj.layer_type == "NonDynamicallyQuantizableLinear"  # Linear's rule, by MRO
    assert out_proj.status == "checked"


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_layers": 3, "bidirectional": True},
        {"num_layers": 2, "bias": False},
        {"num_layers": 4, "bidirectional": True, "batch_first": True},
    ],
)
def test_recurrent_layers_agree_with_numel_and_torchinfo(cls, kwargs) -> None:
    torchinfo = pytest.importorskip("torchinfo")
    model = cls(13, 17, **kwargs)
    report = count_parameters(model)
    stats = torchinfo.summary(model, verbose=0)
    assert report.total == report.trainable == unique_numel(model) == stats.total_params
    assert report.rows[0].status == "checked"
    assert any("two bias vectors per gate" in n for n in report.notes) == kwargs.get("bias", True)


def test_lstm_with_projection_several_layers_both_directions() -> None:
    model = nn.LSTM(10, 20, num_layers=3, bidirectional=True, proj_size=7)
    row = count_parameters(model).rows[0]
    assert row.formula.symbolic == "D*(G*h*(n+p+2)+p*h) + (L-1)*D*(G*h*(D*p+p+2)+p*h)"
    assert row.analytic == row.numel == unique_numel(model) == 11_240


# -------------------------------------------------------------- frozen, tied, custom, errors


def test_frozen_layers_count_in_total_not_trainable() -> None:
    model = build_model("base")
    first = model.linear_relu_stack[0]
    first.requires_grad_(False)
    model.linear_relu_stack[2].bias.requires_grad_(False)
    report = count_parameters(model)
    assert report.total == 669_706
    assert report.non_trainable == 401_920 + 512
    assert report.trainable == 669_706 - 401_920 - 512 == unique_numel(model, trainable_only=True)
    rows = report.rows
    assert (rows[0].requires_grad, rows[0].trainable, rows[0].check) == ("no", 0, "ok; frozen")
    assert rows[1].requires_grad == "partial"
    assert rows[1].check == "ok; partial: bias frozen"
    assert rows[1].trainable == 512 * 512


def test_tied_weights_are_counted_once() -> None:
    embed = nn.Embedding(100, 16)
    decode = nn.Linear(16, 100)
    decode.weight = embed.weight  # weight tying, as in language models
    model = nn.Sequential(embed, nn.Tanh(), decode)
    report = count_parameters(model)
    # PyTorch's parameters() is the oracle here: torchinfo 1.8 counts the tied matrix twice.
    assert report.total == 100 * 16 + 100 == unique_numel(model)
    row = report.rows[1]
    assert row.shared == (("2.weight", "0.weight"),)
    assert (row.analytic, row.numel, row.counted) == (1_700, 1_700, 100)
    assert row.check == "ok; weight shared with 0.weight"


def test_a_module_registered_twice_is_counted_once() -> None:
    block = nn.Linear(4, 4)
    model = nn.Sequential(block, nn.ReLU(), block)
    report = count_parameters(model)
    assert [r.name for r in report.rows] == ["0", "2"]
    assert report.total == 20 == unique_numel(model)
    assert report.rows[1].counted == 0
    assert report.rows[1].shared == (("2.weight", "0.weight"), ("2.bias", "0.bias"))


class Scale(nn.Module):
    """A layer-scale leaf: one learned factor per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def test_layer_without_rule_is_counted_from_numel_and_marked(private_rules) -> None:
    report = count_parameters(nn.Sequential(nn.Linear(3, 8), Scale(8)))
    row = report.rows[1]
    assert (row.layer_type, row.status, row.analytic, row.numel) == ("Scale", "no rule", None, 8)
    assert row.formula_text == "(no analytic rule)"
    assert report.total == 40 and not report.all_checked
    assert any("@register_parameter_rule(Scale)" in n for n in report.notes)


def test_custom_rule_is_used_and_shown(private_rules) -> None:
    @register_parameter_rule(Scale)
    def scale_rule(module: Scale) -> Formula:
        """Scale: C, one factor per channel."""
        return Formula.build("{C}", {"C": module.channels})

    report = count_parameters(nn.Sequential(nn.Linear(3, 8), Scale(8)))
    assert report.rows[1].formula_text == "C = 8"
    assert report.all_checked
    assert "Scale: C, one factor per channel." in report.symbols


def test_duplicate_rule_raises_unless_override(private_rules) -> None:
    with pytest.raises(ValueError, match=r"rule for Linear is already registered.*override=True"):
        register_parameter_rule(nn.Linear)(lambda module: Formula("n", "1", 1))

    @register_parameter_rule(nn.Linear, override=True)
    def wrong(module: nn.Linear) -> Formula:
        return Formula.build("{n}*{m}", {"n": module.in_features, "m": module.out_features})

    assert private_rules[nn.Linear] is wrong


def test_wrong_rule_is_an_error_naming_layer_and_both_numbers(private_rules) -> None:
    @register_parameter_rule(nn.Linear, override=True)
    def forgets_bias(module: nn.Linear) -> Formula:
        return Formula.build("{n}*{m}", {"n": module.in_features, "m": module.out_features})

    model = build_model("base")
    with pytest.raises(
        ParameterCountError,
        match=r"layer 'linear_relu_stack\.0' \(Linear\): rule n\*m = 784\*512 = 401,408 but "
        r"numel 401,920.*strict=False",
    ):
        count_parameters(model)
    report = count_parameters(model, strict=False)
    assert report.rows[0].status == "mismatch"
    assert report.rows[0].check == "MISMATCH: rule 401408 != numel 401920"
    assert report.total == 669_706  # the totals still come from what PyTorch allocated
    assert any("MISMATCH in layer 'linear_relu_stack.0'" in n for n in report.notes)


def test_rules_are_inherited_and_extra_tensors_get_rows() -> None:
    class ScaledLinear(nn.Linear):
        def __init__(self) -> None:
            super().__init__(4, 3)
            self.scale = nn.Parameter(torch.ones(3))

    report = count_parameters(nn.Sequential(ScaledLinear()))
    assert [(r.name, r.layer_type, r.formula_text) for r in report.rows] == [
        ("0", "ScaledLinear", "(n+1)*m = (4+1)*3 = 15"),
        ("0.scale", "Parameter", "3"),
    ]
    assert report.total == 18


def test_broken_rule_says_which_rule_and_layer(private_rules) -> None:
    @register_parameter_rule(Scale)
    def broken(module: Scale) -> Formula:
        return Formula.build("{C}", {"C": module.width})  # no such attribute

    with pytest.raises(ParameterCountError, match=r"failed on layer '1' \(Scale\): AttributeError"):
        count_parameters(nn.Sequential(nn.ReLU(), Scale(2)))

    @register_parameter_rule(Scale, override=True)
    def not_a_formula(module: Scale) -> int:
        return 2

    with pytest.raises(ParameterCountError, match="returned int, not a Formula"):
        count_parameters(Scale(2))


def test_uninitialized_lazy_module_asks_for_a_forward_pass() -> None:
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(ParameterCountError, match=r"layer '1' \(LazyLinear\).*forward pass"):
        count_parameters(model)
    model(torch.zeros(2, 1, 28, 28))
    assert count_parameters(model).total == 785 * 10


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match=r"needs a torch\.nn\.Module, got str"):
        count_parameters("base")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"needs a torch\.nn\.Module subclass"):
        register_parameter_rule(int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not exact integer arithmetic"):
        Formula.build("{d}/{g}", {"d": 5, "g": 2})
    with pytest.raises(TypeError, match="non-negative int"):
        Formula("n", "1", -1)


def test_public_types() -> None:
    report = count_parameters(nn.Linear(2, 2), name="tiny")
    assert isinstance(report, ParameterReport) and isinstance(report.rows[0], ParameterRow)
    assert report.model_name == "tiny"
    assert report.rows[0].name == ""
    assert str(report).splitlines()[4].startswith("(model)")
    with pytest.raises(AttributeError):
        report.rows[0].numel = 3  # type: ignore[misc]


def test_reparametrized_layers_fall_back_to_their_tensors() -> None:
    from torch.nn.utils.parametrizations import spectral_norm, weight_norm

    model = nn.Sequential(weight_norm(nn.Linear(4, 3)), nn.ReLU(), spectral_norm(nn.Linear(3, 2)))
    report = count_parameters(model)  # the Linear rule would count a 'weight' that is gone
    assert report.total == unique_numel(model) == 26
    assert {r.status for r in report.rows} == {"tensor"}
    assert [r.name for r in report.rows][:3] == [
        "0.bias",
        "0.parametrizations.weight.original0",
        "0.parametrizations.weight.original1",
    ]
    assert report.notes[0] == (
        "Layer '0' (ParametrizedLinear) is reparametrized (e.g. by weight_norm): it holds no "
        "parameter weight, so its rule does not apply and its tensors are counted from numel."
    )
    assert not any("add one with" in n for n in report.notes)


# ------------------------------------------------------- input_size: shapes and multiply-adds


def conv_mult_adds(conv: nn.Conv2d, h_out: int, w_out: int) -> int:
    """The hand formula: Cout * Hout * Wout * (Cin / groups) * kh * kw, per sample."""
    kh, kw = conv.kernel_size
    return conv.out_channels * h_out * w_out * (conv.in_channels // conv.groups) * kh * kw


def test_input_size_adds_shapes_and_multiply_adds_by_hand_formula() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),  # (B, 8, 28, 28)
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, stride=2, groups=4),  # (B, 16, 12, 12)
        nn.Flatten(),
        nn.Linear(16 * 12 * 12, 10, bias=False),
    )
    report = count_parameters(model, input_size=(3, 1, 28, 28))
    shapes = [r.output_shape for r in report.rows]
    assert shapes == [(3, 8, 28, 28), (3, 16, 12, 12), (3, 10)]
    batch = 3
    expected = [
        batch * conv_mult_adds(model[0], 28, 28),
        batch * conv_mult_adds(model[2], 12, 12),
        batch * (16 * 12 * 12) * 10,  # Linear: in * out per sample
    ]
    assert [r.mult_adds for r in report.rows] == expected
    assert report.total_mult_adds == sum(expected)  # ReLU and Flatten add nothing
    assert report.input_size == (3, 1, 28, 28)


@pytest.mark.parametrize(
    ("name", "mult_adds"),
    [
        ("base", [784 * 512, 512 * 512, 512 * 10]),
        ("deeper", [32 * 28 * 28 * 1 * 9, 0, 64 * 12 * 12 * 32 * 9, 0, 2304 * 600, 600 * 120,
                    120 * 10]),
    ],
)
def test_course_models_multiply_adds(name: str, mult_adds: list[int]) -> None:
    report = count_parameters(build_model(name), input_size=(1, 1, 28, 28))
    assert [r.mult_adds for r in report.rows] == mult_adds  # batch norm counts 0
    assert report.total_mult_adds == sum(mult_adds)
    assert report.total == COURSE_TRAINABLE[name]


def test_input_size_shows_two_more_columns_and_a_total() -> None:
    report = count_parameters(build_model("base"), input_size=(1, 1, 28, 28))
    lines = str(report).splitlines()
    assert lines[0] == "Parameters of base (MLP), input (1, 1, 28, 28)"
    assert lines[2].split() == ["Layer", "Type", "Formula", "Analytic", "numel", "Trainable",
                                "Output", "shape", "Mult-adds", "Check"]
    assert "(1, 512)" in lines[4] and "401,408" in lines[4]
    assert "Total mult-adds:  668,672" in lines
    md = report.to_markdown().splitlines()
    assert md[2] == ("| Layer | Type | Formula | Analytic | numel | Trainable | Output shape | "
                     "Mult-adds | Check |")
    assert md[3] == "|---|---|---|---:|---:|---:|---|---:|---|"
    assert md[4].endswith("| (1, 512) | 401,408 | ok |")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["input_size"] == [1, 1, 28, 28] and data["total_mult_adds"] == 668_672
    assert data["rows"][2]["output_shape"] == [1, 10] and data["rows"][2]["mult_adds"] == 5_120


def test_without_input_size_there_is_no_forward_pass_and_no_new_key() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("forward must not run")

    report = count_parameters(Broken())
    assert report.total == 8 and report.input_size is None and report.total_mult_adds is None
    assert "input_size" not in report.to_dict()
    assert set(report.to_dict()["rows"][0]) == set(count_parameters(nn.Linear(3, 2)).to_dict()
                                                   ["rows"][0])
    with pytest.raises(ParameterCountError, match=r"forward pass of Broken on zeros of "
                       r"input_size \(1, 3\) failed: RuntimeError: forward must not run; pass"):
        count_parameters(Broken(), input_size=(1, 3))


def test_the_forward_pass_restores_every_training_flag() -> None:
    model = build_model("deeper")
    model.train()
    model.layer1[1].eval()  # a frozen batch norm inside a training model
    flags = [m.training for m in model.modules()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_parameters(model, input_size=(2, 1, 28, 28))
    assert [m.training for m in model.modules()] == flags
    after = model.state_dict()  # eval mode: batch-norm running statistics untouched
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_tied_module_and_tensor_rows_under_input_size() -> None:
    block = nn.Linear(4, 4)
    model = nn.Sequential(block, nn.ReLU(), block)
    rows = count_parameters(model, input_size=(1, 4)).rows
    assert [(r.output_shape, r.mult_adds) for r in rows] == [((1, 4), 2 * 16), (None, None)]

    class WithToken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token = nn.Parameter(torch.zeros(4))
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x + self.token)

    rows = count_parameters(WithToken(), input_size=(5, 4)).rows
    assert [(r.name, r.output_shape, r.mult_adds) for r in rows] == [
        ("token", None, None), ("fc", (5, 2), 5 * 4 * 2)]


@pytest.mark.parametrize("bad", [(), (1, 0, 28), (1, 1.5), "1x28x28", 28, (1, True)])
def test_invalid_input_size_is_rejected(bad) -> None:
    from fmclassify.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"input_size must be a non-empty sequence of integers "
                                          r">= 1, batch first, e\.g\. \(1, 1, 28, 28\)"):
        count_parameters(nn.Linear(2, 2), input_size=bad)


def test_notebook_displays() -> None:
    report = count_parameters(build_model("deeper"))
    html = report._repr_html_()
    assert html.count("<tr>") == 1 + len(report.rows)
    assert "((m*n*d)+1)*k = ((3*3*1)+1)*32 = 320" in html  # the formula column
    assert "<th" in html and "Total parameters: 1,475,338" in html

    class Printer:
        def __init__(self) -> None:
            self.out = ""

        def text(self, s: str) -> None:
            self.out += s

    printer = Printer()
    report._repr_pretty_(printer, False)
    assert printer.out + "\n" == str(report)
    escaped = count_parameters(nn.Linear(2, 2), name="<b>x</b>")._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;" in escaped and "<b>x</b>" not in escaped


def test_compare_parameters_puts_models_side_by_side() -> None:
    table = compare_parameters(["base", "deeper", "wider"])
    assert list(table.reports) == ["base", "deeper", "wider"]
    assert {n: r.trainable for n, r in table.reports.items()} == COURSE_TRAINABLE
    assert str(table).splitlines() == [
        "Parameters per model",
        "Model   Trainable      Total",
        "base      669,706    669,706",
        "deeper  1,475,338  1,475,338",
        "wider   1,557,330  1,557,330",
    ]
    assert table.to_markdown().splitlines()[2:4] == ["| Model | Trainable | Total |",
                                                     "|---|---:|---:|"]
    html = table._repr_html_()
    assert html.count("<tr>") == 4 and "1,475,338" in html

    frozen = nn.Linear(4, 2)
    frozen.bias.requires_grad_(False)
    shaped = compare_parameters({"<b>mine</b>": frozen}, input_size=(3, 4))
    assert str(shaped).splitlines()[0] == "Parameters per model, input (3, 4)"
    assert str(shaped).splitlines()[2].split() == ["<b>mine</b>", "8", "10", "24"]
    assert "&lt;b&gt;mine&lt;/b&gt;" in shaped._repr_html_()
    assert shaped.reports["<b>mine</b>"].model_name == "<b>mine</b>"


def test_compare_parameters_as_a_dataframe() -> None:
    pytest.importorskip("pandas")
    frame = compare_parameters(["base", "wider"]).to_dataframe()
    assert list(frame.columns) == ["model", "trainable", "total"]
    assert frame["trainable"].tolist() == [669_706, 1_557_330]
    shaped = compare_parameters({"a": nn.Linear(2, 3)}, input_size=(1, 2)).to_dataframe()
    assert list(shaped.columns) == ["model", "trainable", "total", "mult_adds"]
    assert shaped["mult_adds"].tolist() == [6] and str(shaped["mult_adds"].dtype) == "int64"


def test_compare_parameters_rejects_what_it_cannot_count() -> None:
    from fmclassify.exceptions import ConfigError, UnknownModelError

    with pytest.raises(TypeError, match=r"a list of registered model names such as "
                                        r"\['base', 'deeper'\]; got 'base'"):
        compare_parameters("base")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"str keys and torch.nn.Module values; got 'a': int"):
        compare_parameters({"a": 3})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="at least one model"):
        compare_parameters([])
    with pytest.raises(ConfigError, match=r"a model name twice: \['base', 'base'\]"):
        compare_parameters(["base", "base"])
    with pytest.raises(UnknownModelError, match="bse"):
        compare_parameters(["bse"])
    with pytest.raises(ConfigError, match="input_size must be"):
        compare_parameters(["bse"], input_size=(0,))  # checked before any model is built
