from __future__ import annotations

import sys
import textwrap
import warnings

import pytest
import torch

import fmclassify as fmc
from fmclassify import registry
from fmclassify.exceptions import ConfigError, UnknownModelError

COURSE_COUNTS = {"base": 669_706, "deeper": 1_475_338, "wider": 1_557_330}


@pytest.fixture
def clean_registry(monkeypatch):
    """Let a test register names without leaking them into other tests."""
    monkeypatch.setattr(registry, "_models", dict(registry._models))
    monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))


@pytest.mark.parametrize("name", [s.name for s in fmc.list_models()])
def test_every_registered_model_builds_and_runs(name):
    for shape in ({"in_channels": 1, "image_size": 28}, {"in_channels": 3, "image_size": 32}):
        model = fmc.build_model(name, num_classes=10, **shape)
        x = torch.zeros(2, shape["in_channels"], shape["image_size"], shape["image_size"])
        model.eval()
        assert model(x).shape == (2, 10)


@pytest.mark.parametrize(("name", "count"), COURSE_COUNTS.items())
def test_course_parameter_counts(name, count):
    model = fmc.build_model(name)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == count


def test_course_cnn_layers_match_the_course():
    m = fmc.build_model("deeper")
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (0, 0))]
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [
        (2304, 600), (600, 120), (120, 10)]
    assert any(isinstance(mod, torch.nn.Dropout) and mod.p == 0.25 for mod in m.modules())




@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_course_cnn_pools_before_relu_with_the_same_numbers(memory_format):
    """forward pools before the ReLU; outputs and gradients equal the course's block order.

    After batch norm about half the values are negative, so many pooling windows hold no
    positive value: the case where the two orders could differ if either were wrong.
    """
    def course_order(m, x):
        x = m.layer2(m.layer1(x)).flatten(1)  # Sequential: conv, bn, relu, pool
        return m.fc3(m.fc2(m.drop(m.fc1(x))))

    ours = fmc.build_model("deeper", seed=0).to(memory_format=memory_format)
    theirs = fmc.build_model("deeper", seed=0).to(memory_format=memory_format)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 28, 28, generator=g).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (16,), generator=g)
    for model, forward in ((ours, lambda m, t: m(t)), (theirs, course_order)):
        torch.manual_seed(1)  # the same dropout mask
        torch.nn.functional.cross_entropy(forward(model, x), y).backward()
    torch.manual_seed(1)
    out = ours(x)
    torch.manual_seed(1)
    assert torch.equal(out, course_order(theirs, x))
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name
def test_course_cnn_runs_pool_first_unless_its_block_has_hooks():
    model = fmc.build_model("deeper", seed=0).eval()  # no dropout: two calls compare
    calls = []
    for name in ("2", "3"):  # layer1's ReLU and MaxPool2d
        model.layer1[int(name)].register_forward_hook(
            lambda m, args, out: calls.append(type(m).__name__))
    x = torch.rand(2, 1, 28, 28)
    plain = model(x)
    assert calls == ["MaxPool2d", "ReLU"]
    seen = []
    model.layer1.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    calls.clear()
    assert torch.equal(model(x), plain)  # the course's order gives the same numbers
    assert seen == [torch.Size([2, 32, 14, 14])] and calls == ["ReLU", "MaxPool2d"]


def test_seed_makes_weights_repeatable_without_touching_global_rng():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = fmc.build_model("base", seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = fmc.build_model("base", seed=7)
    c = fmc.build_model("base", seed=8)
    for pa, pb, _pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=False):
        assert torch.equal(pa, pb)
    pairs = zip(a.parameters(), c.parameters(), strict=True)
    assert not all(torch.equal(pa, pc) for pa, pc in pairs)


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match=r"unknown model 'bse'; did you mean 'base'.*"
                                                r"registered: base, deeper, wider"):
        fmc.build_model("bse")


def test_an_alias_is_offered_with_the_name_it_stands_for():
    """`fmclassify models` lists names (aliases in their own column): a bare 'cnn' in the
    suggestion named a model no list showed."""
    with pytest.raises(UnknownModelError, match=r"unknown model 'cnm'; did you mean 'cnn' "
                                                r"\(another name for 'deeper'\)\? registered: "
                                                r"base, deeper, wider"):
        fmc.build_model("cnm")
    with pytest.raises(UnknownModelError, match=r"did you mean 'quickstart' \(another name "
                                                r"for 'base'\)"):
        fmc.build_model("quickstat")


def test_aliases_resolve():
    assert fmc.build_model("quickstart").fmclassify_name == "base"


@pytest.mark.parametrize(("arg", "value"), [("num_classes", 0), ("in_channels", -1),
                                            ("image_size", 2.5), ("num_classes", 1)])
def test_bad_shape_arguments(arg, value):
    with pytest.raises(ConfigError, match=arg):
        fmc.build_model("base", **{arg: value})


def test_deeper_rejects_too_small_images():
    with pytest.raises(ConfigError, match="image_size 6 is too small"):
        fmc.build_model("deeper", image_size=6)


def test_register_function_and_class(clean_registry):
    @fmc.register_model("tiny-fn", aliases=("tf",), description="a tiny one")
    def tiny(*, num_classes=10, in_channels=1, image_size=28):
        return torch.nn.Sequential(torch.nn.Flatten(),
                                   torch.nn.Linear(in_channels * image_size**2, num_classes))

    @fmc.register_model("tiny-cls")
    class Tiny(torch.nn.Module):
        """A class-registered model."""

        def __init__(self, *, num_classes=10, in_channels=1, image_size=28):
            super().__init__()
            self.fc = torch.nn.Linear(in_channels * image_size**2, num_classes)

        def forward(self, x):
            return self.fc(x.flatten(1))

    assert isinstance(fmc.build_model("tf"), torch.nn.Sequential)
    assert isinstance(fmc.build_model("tiny-cls", num_classes=3), Tiny)
    specs = {s.name: s for s in fmc.list_models("tiny-*")}
    assert set(specs) == {"tiny-fn", "tiny-cls"}
    assert specs["tiny-fn"].description == "a tiny one"
    assert specs["tiny-cls"].description == "A class-registered model."
    assert specs["tiny-fn"].source == "built-in"


def test_duplicate_names_raise_unless_override(clean_registry):
    with pytest.raises(ValueError, match=r"'base' is already registered.*override=True"):
        fmc.register_model("base")(lambda **kw: torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="'cnn' is already registered"):
        fmc.register_model("new", aliases=("cnn",))(lambda **kw: torch.nn.Linear(1, 1))
    fmc.register_model("base", override=True)(lambda **kw: torch.nn.Linear(1, 1))
    assert isinstance(fmc.build_model("base"), torch.nn.Linear)


def test_builder_must_return_a_module(clean_registry):
    fmc.register_model("not-a-model")(lambda **kw: 42)
    with pytest.raises(TypeError, match=r"returned int, not a torch\.nn\.Module"):
        fmc.build_model("not-a-model")


def test_list_models_pattern():
    assert [s.name for s in fmc.list_models("w*")] == ["wider"]
    assert fmc.list_models("nothing*") == []


# -- plugins through entry points ------------------------------------------------------------

def _install_fake_plugin(tmp_path, monkeypatch, dist: str, module: str, body: str,
                         ep_name: str = "plugin"):
    """A real distribution on sys.path: a module plus dist-info with an entry point."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(body))
    info = tmp_path / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[fmclassify.models]\n{ep_name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", False)


def test_plugin_models_load_lazily_and_name_their_source(tmp_path, monkeypatch, clean_registry):
    _install_fake_plugin(tmp_path, monkeypatch, "course-extras", "course_extras_mod", """
        import torch
        import fmclassify as fmc

        @fmc.register_model("plugin-mlp", description="from a plugin")
        def plugin_mlp(*, num_classes=10, in_channels=1, image_size=28):
            return torch.nn.Sequential(torch.nn.Flatten(),
                                       torch.nn.Linear(in_channels * image_size**2, num_classes))
    """)
    monkeypatch.delenv("FMCLASSIFY_NO_PLUGINS", raising=False)
    assert "course_extras_mod" not in sys.modules
    spec = registry.get_model_spec("plugin-mlp")
    assert spec.source == "course-extras"
    assert fmc.build_model("plugin-mlp")(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    sys.modules.pop("course_extras_mod", None)


def test_broken_plugin_warns_and_registry_keeps_working(tmp_path, monkeypatch, clean_registry):
    _install_fake_plugin(tmp_path, monkeypatch, "broken-plugin", "broken_plugin_mod",
                         "raise ImportError('needs a package that is not installed')\n",
                         ep_name="broken")
    monkeypatch.delenv("FMCLASSIFY_NO_PLUGINS", raising=False)
    with pytest.warns(RuntimeWarning, match="plugin 'broken' from 'broken-plugin' failed to load"):
        names = [s.name for s in fmc.list_models()]
    assert {"base", "deeper", "wider"} <= set(names)


def test_no_plugins_env_switches_autoload_off(tmp_path, monkeypatch, clean_registry):
    _install_fake_plugin(tmp_path, monkeypatch, "off-plugin", "off_plugin_mod",
                         "raise RuntimeError('must not be imported')\n")
    monkeypatch.setenv("FMCLASSIFY_NO_PLUGINS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        names = [s.name for s in fmc.list_models()]
    assert "base" in names
    assert "off_plugin_mod" not in sys.modules
