"""mfcbench as a library: the public face, its one set of defaults, and the pieces checking each other."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import mfcbench as mfc


@pytest.mark.slow
def test_import_is_light():
    """`import mfcbench` loads no torch, pipeline or plotting; a public name loads its module on use."""
    code = ("import sys, mfcbench as m; heavy = [k for k in ('torch', 'pandas', 'matplotlib', 'snakemake', "
            "'mfcbench.pipeline', 'mfcbench.figures') if k in sys.modules]; assert not heavy, heavy; "
            "m.WorkCounter; assert 'torch' not in sys.modules; m.MeshFreeConv2d; assert 'torch' in sys.modules; "
            # the model listing imports the builder modules and builds no model
            "import torch; built = []; init = torch.nn.Module.__init__; "
            "torch.nn.Module.__init__ = lambda self, *a, **k: (built.append(type(self)), init(self, *a, **k))[1]; "
            "names = m.MODELS.names(); assert 'mfc_resnet' in names and len(names) > 10, names; "
            "assert not built, built")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_public_name_resolves_and_documents_its_arguments():
    missing = []
    for name in mfc.__all__:
        obj = getattr(mfc, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        target = obj.__init__ if inspect.isclass(obj) and "__init__" in vars(obj) else obj
        for arg in inspect.signature(target).parameters:
            if arg not in ("self", "args", "kwargs", "options") and arg not in doc:
                missing.append(f"{name}({arg})")
    assert not missing, f"public arguments without a word in the docstring: {missing}"


def test_unknown_public_name_lists_the_valid_ones():
    with pytest.raises(AttributeError, match="public names: .*MeshFreeConv2d"):
        _ = mfc.MeshFreeConv


def test_public_defaults_are_the_documented_ones():
    """One set of defaults: the layer, the converter, the loss and the schedule agree with DEFAULTS."""

    def default(fn, arg):
        return inspect.signature(fn).parameters[arg].default

    assert default(mfc.MeshFreeConv2d, "mixing") == default(mfc.to_mfc, "mixing") == mfc.DEFAULTS["mixing"]
    assert default(mfc.MeshFreeConv2d, "init_resolution") == default(mfc.to_mfc, "init_resolution") == 64
    assert default(mfc.MeshFreeConv2d, "boundary") == default(mfc.to_mfc, "boundary") == mfc.DEFAULTS["boundary"]
    assert default(mfc.mesh_free_filter, "boundary") == mfc.DEFAULTS["boundary"]
    assert default(mfc.multiscale_loss, "restriction") == mfc.DEFAULTS["restriction"]
    assert default(mfc.multiscale_loss, "levels") == default(mfc.fmsgd_schedule, "levels") == mfc.DEFAULTS["levels"]
    assert default(mfc.fit, "levels") == mfc.DEFAULTS["levels"]
    assert default(mfc.fit, "iterations") == default(mfc.fmsgd_schedule, "iterations") == mfc.DEFAULTS["iterations"]
    assert default(mfc.fmsgd_schedule, "batch_size") == mfc.DEFAULTS["batch_size"]
    assert default(mfc.fit, "batch_size") is None  # per strategy: 4 images a single-scale step, N0 = 1 multiscale
    from mfcbench.train.config import OPTIONS

    assert OPTIONS["batch_size"].default == mfc.DEFAULTS["batch_size"]  # the harness's N0 too


def test_paper_models_keep_their_own_documented_mixing():
    """The per-model choice mfcbench/__init__.py documents is what each builder really uses."""
    for name, mixing in (("mfc_resnet", "full"), ("mfc_unet", "full"), ("blur_mfc", "full"),
                         ("mfc_espcn", "pointwise"), ("mfc_srresnet", "pointwise"), ("mfc_resnet18", "pointwise")):
        params = inspect.signature(mfc.MODELS.get(name)).parameters
        got = params["mixing"].default if "mixing" in params else "full"  # blur_mfc: one full-mixing MFC
        assert got == mixing, name
        assert f"`{name}`" in mfc.__doc__


def test_register_model_decorator_and_lazy_listing():
    import torch

    assert "mfc_resnet" in mfc.MODELS.names()  # the registry fills itself on first use

    @mfc.register_model
    def my_tiny_net(in_channels, out_channels, *, cond=False, upscale=1):
        return torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)

    try:
        assert "my_tiny_net" in mfc.model_names()
        assert isinstance(mfc.build_model("my_tiny_net", 2, 2), torch.nn.Conv2d)
        with pytest.raises(ValueError, match="registered twice"):
            mfc.register_model("my_tiny_net")(my_tiny_net)
    finally:
        mfc.MODELS.unregister("my_tiny_net")
    assert "my_tiny_net" not in mfc.MODELS


# --- the functional multiscale loss and the Full-Multiscale schedule -------------------------------
SR_MODELS = {"espcn", "mfc_espcn", "fno_espcn", "srresnet", "mfc_srresnet"}


def _tiny_registered(name: str):
    """A registered model, tiny, float64, dropout off, and the task it trains on."""
    import torch
    from torch import nn

    from mfcbench.tasks import build_task

    task = build_task("superres" if name in SR_MODELS else "blur" if name.startswith("blur") else "denoise", {})
    params = inspect.signature(mfc.MODELS.get(name)).parameters
    options = {"width": 0.125} if "width" in params else {}
    options.update({"modes": 4} if name == "fno_espcn" else {"init_resolution": 16} if "init_resolution" in params else {})
    torch.manual_seed(0)
    model = mfc.build_model(name, **{**task.model_options(1 if name.startswith("blur") else 3), **options}).double()
    for param in model.parameters():
        if param.is_complex():
            param.data = param.data.to(torch.complex128)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model, task


class _FixedSampler:
    """Serves a fixed pool in order, with the task's corruption from one seeded generator."""

    def __init__(self, pool, task):
        import torch

        self.pool, self.task, self.pos = pool, task, 0
        self.noise = torch.Generator().manual_seed(3)

    def generator(self, purpose):
        return self.noise

    def images(self, n):
        out = self.pool[self.pos:self.pos + n]
        self.pos += n
        return out

    def batch(self, images):
        return self.task.make_batch(images, self.noise)


def _grads(model):
    import torch

    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("name", mfc.model_names())
def test_multiscale_loss_equals_the_harness_strategy_loss(name):
    """Same images (a fixed sampler replayed draw by draw), same value and gradient as Strategy.loss."""
    import torch

    from mfcbench.strategies import build_strategy
    from mfcbench.tasks.base import Batch
    from mfcbench.train.config import resolve

    model, task = _tiny_registered(name)
    channels = 1 if name.startswith("blur") else 3
    pool = torch.rand(7, channels, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    strategy = build_strategy("msgd", resolve({"levels": 3, "batch_size": 1, "iterations": [0, 0, 1],
                                               "image_size": 16}))
    (phase,) = strategy.phases()
    model.zero_grad(set_to_none=True)
    with mfc.symbol_cache():
        ref = strategy.loss(model, task, phase, _FixedSampler(pool, task), mfc.WorkCounter(16 * 16))
        ref.backward()
    ref_grad = _grads(model)

    replay = _FixedSampler(pool, task)
    batches = [replay.batch(replay.images(d.batch)) for d in phase.draws]
    inputs, targets = torch.cat([b.inputs for b in batches]), torch.cat([b.targets for b in batches])
    cond = None if batches[0].cond is None else torch.cat([b.cond for b in batches])
    model.zero_grad(set_to_none=True)
    with mfc.symbol_cache():
        loss, wu = mfc.multiscale_loss(model, inputs, targets, lambda p, t: task.loss(p, Batch(None, t)), levels=3,
                                       batch_sizes=[d.batch for d in phase.draws], cond=cond)
        loss.backward()
    assert [d.batch for d in phase.draws] == [1, 2, 4]
    assert abs(float((loss - ref).detach())) <= 1e-10 * max(abs(float(ref.detach())), 1e-30)
    assert float((_grads(model) - ref_grad).norm()) <= 1e-10 * float(ref_grad.norm())
    assert float(ref_grad.norm()) > 0
    assert wu == float(phase.wu_per_iteration)  # relative to the finest input mesh (8x8 for SR)


def test_split_batch_and_explicit_sizes():
    assert mfc.split_batch(15, 4) == [1, 2, 4, 8]
    assert mfc.split_batch(32, 4) == [2, 4, 8, 18]  # leftovers to the coarsest (cheapest) term
    assert mfc.split_batch(5, 1) == [5]
    with pytest.raises(ValueError, match="at least 15"):
        mfc.split_batch(14, 4)


def test_multiscale_loss_is_algorithm_1_on_plain_tensors():
    import torch
    from torch.nn import functional as F

    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    x, y = torch.rand(7, 1, 8, 8), torch.rand(7, 1, 8, 8)
    loss, wu = mfc.multiscale_loss(model, x, y, F.mse_loss, levels=3)
    pool = F.avg_pool2d
    expected = (F.mse_loss(model(x[:1]), y[:1]) - F.mse_loss(model(pool(x[:1], 2)), pool(y[:1], 2))
                + F.mse_loss(model(pool(x[1:3], 2)), pool(y[1:3], 2))
                - F.mse_loss(model(pool(x[1:3], 4)), pool(y[1:3], 4))
                + F.mse_loss(model(pool(x[3:], 4)), pool(y[3:], 4)))
    torch.testing.assert_close(loss, expected)
    assert wu == 1 * (1 + 1 / 4) + 2 * (1 / 4 + 1 / 16) + 4 / 16  # eq. 39
    counter = mfc.WorkCounter(64)
    mfc.multiscale_loss(model, x, y, F.mse_loss, levels=3, counter=counter)
    mfc.multiscale_loss(model, x[:4], y[:4], F.mse_loss, levels=3, first_level=1, counter=counter)
    assert counter.value == pytest.approx(wu + 1 * (1 / 4 + 1 / 16) + 3 / 16)  # split_batch(4, 2) = [1, 3]


def test_the_pieces_check_each_others_sizes():
    """30x30 images for 4 levels, or a counter built for 32x32, fail with one clear line (they gave a wrong #WU)."""
    import torch
    from torch.nn import functional as F

    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match="30x30.*divisible by 8"):
        mfc.multiscale_loss(model, torch.rand(15, 1, 30, 30), torch.rand(15, 1, 30, 30), F.mse_loss, levels=4)
    with pytest.raises(ValueError, match=r"reference_pixels 1024 .* WorkCounter\(576\)"):
        mfc.multiscale_loss(model, torch.rand(15, 1, 24, 24), torch.rand(15, 1, 24, 24), F.mse_loss, levels=4,
                            counter=mfc.WorkCounter(32 * 32))
    with pytest.raises(ValueError, match="batch_sizes"):
        mfc.multiscale_loss(model, torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8), F.mse_loss, levels=2,
                            batch_sizes=[2, 2])
    with pytest.raises(ValueError, match="6 inputs but 5 targets"):
        mfc.multiscale_loss(model, torch.rand(6, 1, 8, 8), torch.rand(5, 1, 8, 8), F.mse_loss, levels=2)
    with pytest.raises(ValueError, match="valid choices"):
        mfc.multiscale_loss(model, torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8), F.mse_loss, levels=2,
                            restriction="cubic")


def test_fmsgd_schedule_is_the_strategy_and_prices_as_app_c():
    from fractions import Fraction

    phases = list(mfc.fmsgd_schedule(levels=4, iterations=8, batch_size=1))
    assert phases == [(3, 8, [8]), (2, 4, [4, 8]), (1, 2, [2, 4, 8]), (0, 1, [1, 2, 4, 8])]
    wu = sum(its * sum(Fraction(n, 4**j) * (1 + (Fraction(1, 4) if j < 3 else 0))
                       for j, n in enumerate(sizes, start=level)) for level, its, sizes in phases)
    assert wu == mfc.wu_fmsgd(1, 8)
    assert [p[:2] for p in mfc.fmsgd_schedule(levels=2, iterations=[0, 5], batch_size=2)] == [(0, 5)]


# --- fit: the runner's loop for a model object and tensors -------------------------------------------
def _fit_problem():
    import torch
    from torch.nn import functional as F

    gen = torch.Generator().manual_seed(5)
    x = torch.rand(24, 1, 8, 8, generator=gen)
    y = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="circular"), 3, 1)  # a 3x3 blur to learn
    return (x[:18], y[:18]), (x[18:], y[18:])


def _fit_net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(mfc.MeshFreeConv2d(1, 4, init_resolution=8), torch.nn.Tanh(),
                               mfc.MeshFreeConv2d(4, 1, init_resolution=8))


FIT = {"levels": 2, "iterations": [4, 4], "batch_size": 1, "lr": 3e-3, "val_every": 2}


def test_fit_trains_a_model_object_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, val = _fit_problem()
    net = _fit_net()
    start = [p.detach().clone() for p in net.parameters()]
    trained, result = mfc.fit(net, train, val, strategy="fmsgd", **FIT)
    assert trained is net and any(not torch_equal(a, b) for a, b in zip(start, net.parameters()))
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert result["status"] == "ok" and result["iterations"] == 8
    assert [row["level"] for row in result["curve"]] == [1] * 4 + [0] * 4
    assert result["wu_executed"] == result["wu_closed_form"] == 4 * 2 / 4 + 4 * (1 + 1 / 4 + 2 / 4)
    first_val = next(r["val_metric"] for r in result["curve"] if r["val_metric"] is not None)
    assert result["metrics"]["val_loss"] < first_val  # it learned
    with pytest.raises(ValueError, match="unknown strategy 'fmsdg'"):
        mfc.fit(net, train, val, strategy="fmsdg", **FIT)
    with pytest.raises(ValueError, match="image_size 8 does not fit 5 levels"):
        mfc.fit(net, train, val, **{**FIT, "levels": 5, "iterations": [1] * 5})


def test_fit_takes_clean_images_and_a_harness_task():
    import torch

    images = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    _, result = mfc.fit(_fit_net(), images[:9], images[9:], task="blur", **FIT)
    assert {"val_loss", "val_mse"} <= set(result["metrics"]) and result["headline_metric"] == "val_loss"
    with pytest.raises(ValueError, match="pairs for train and val, or tensors of clean images and a task"):
        mfc.fit(_fit_net(), images[:9], images[9:], **FIT)


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)


def test_fit_resumes_a_killed_run_to_the_same_metrics(tmp_path):
    from mfcbench.train.runner import SimulatedCrash

    train, val = _fit_problem()
    _, straight = mfc.fit(_fit_net(), train, val, **FIT, checkpoint_every=2)
    with pytest.raises(SimulatedCrash):
        mfc.fit(_fit_net(), train, val, **FIT, checkpoint_every=2, out_dir=tmp_path, stop_after=5)
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.json").exists()
    lines = []
    _, resumed = mfc.fit(_fit_net(), train, val, **FIT, checkpoint_every=2, out_dir=tmp_path, log=lines.append)
    assert any("resuming" in line and "at iteration 4" in line for line in lines), lines
    assert resumed["metrics"] == straight["metrics"]
    assert [r["train_loss"] for r in resumed["curve"]] == [r["train_loss"] for r in straight["curve"]]
    assert resumed["wu_executed"] == straight["wu_executed"]
    assert {"checkpoint.pt", "metrics.json", "curve.csv"} <= {p.name for p in tmp_path.iterdir()}


def test_docs_library_code_runs_as_written(capsys):
    """docs/library.md's code blocks, executed in order in one namespace: the page cannot rot."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "library.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 8
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/library.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "'mixing': 'pointwise'" in out and "120 37/2 115/16" in out
    assert "batch statistics" in out and "max pooling" in out  # the converter's warnings, printed
    assert "training step" in out and "mfc symbol contraction" not in out  # pointwise model: no full mixing


def test_the_namespace_shows_the_public_names_only():
    """`dir(mfcbench)` (tab completion, `help`) lists the public names and the module's dunders, not the
    helpers the package itself imports."""
    names = set(dir(mfc))
    assert set(mfc.__all__) <= names
    assert not names & {"Any", "annotations", "importlib", "_importlib", "_Any", "_LAZY"}, sorted(names)
    assert {n for n in names if n.startswith("_")} <= {n for n in names if n.startswith("__") and n.endswith("__")}


def test_the_package_docstring_unpacks_fit_as_it_returns():
    """help(mfcbench) shows `fit` returning (model, result), as it does."""
    import re

    doc = mfc.__doc__
    assert "net, result = mfc.fit(" in doc and "net, metrics = mfc.fit(" not in doc
    for line in re.findall(r"^\s*(\w+), (\w+) = mfc\.fit\(", doc, flags=re.M):
        assert line == ("net", "result")


def test_the_version_is_pyprojects():
    from pathlib import Path

    import tomllib

    spec = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert mfc.__version__ == spec["project"]["version"]
