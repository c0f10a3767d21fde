"""The command line as a user meets it: `train --help` lists the registered choices (built lazily),
`train --list-options`, a refused start leaves no folder behind, `models` lists without building."""

from __future__ import annotations

import pytest

from mfcbench.cli import main
from mfcbench.cli import models as models_cli
from mfcbench.cli import train as train_cli


def test_train_help_lists_every_registered_choice(capsys):
    from mfcbench.data import dataset_names
    from mfcbench.models import model_names
    from mfcbench.strategies import strategy_names
    from mfcbench.tasks import task_names

    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in [*task_names(), *dataset_names(), *model_names(), *strategy_names()]:
        assert f" {name}," in out or f" {name})" in out, name
    assert "package.module:function" in out and ".pt tensor file" in out
    assert "mfcbench/train/config.py" not in out and "--list-options" in out  # --config's help: docs, not a source file


def test_building_the_train_parser_builds_and_lists_nothing(monkeypatch):
    """The choices are read only when help is printed: parsing imports no registry listing."""
    import mfcbench.models

    def refuse():
        raise AssertionError("model_names() called while building or parsing")

    monkeypatch.setattr(mfcbench.models, "model_names", refuse)
    args = train_cli.build_parser().parse_args(["--task", "denoise", "--dataset", "digits", "--arch", "resnet",
                                                "--strategy", "sgd", "--out", "x"])
    assert args.arch == "resnet"


def test_list_options_prints_every_option_with_default_and_help(capsys):
    from mfcbench.train.config import all_options

    assert main(["train", "--list-options"]) == 0
    out = capsys.readouterr().out
    options = all_options()
    for name, option in options.items():
        assert f"\n{name} = " in f"\n{out}", name
        if option.help:
            assert option.help in out, name
    assert "levels = 4" in out and '"restriction" ' not in out and 'restriction = "pool"' in out


def test_train_without_its_required_arguments_names_them(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--task", "denoise"])
    assert exit_.value.code == 2
    assert "--dataset, --arch, --strategy, --out" in capsys.readouterr().err


@pytest.mark.parametrize("bad, words", [
    ({"--dataset": "nope"}, ["unknown dataset 'nope'", "digits", "prepare --dataset nope --path"]),
    ({"--dataset": "missing/file.pt"}, ["'missing/file.pt'", "no such file"]),
    ({"--arch": "nope"}, ["unknown model 'nope'", "mfc_resnet"]),
    ({"--arch": "no_such_pkg.nets:tiny"}, ["cannot import module 'no_such_pkg.nets'"]),
    ({"--strategy": "nope"}, ["unknown strategy 'nope'", "fmsgd"]),
    ({"--task": "nope"}, ["unknown task 'nope'", "denoise"]),
    ({"--set": "lr=-1"}, ["config error at lr"]),
    ({"--set": "levels=6 iterations=[1,1,1,1,1,1]"}, ["image_size 16 does not fit 6 levels"]),
])
def test_a_refused_start_leaves_no_folder(tmp_path, capsys, bad, words):
    """Every name, the config and the schedule are checked before the cell folder and its .lock exist."""
    out = tmp_path / "cell"
    args = {"--task": "denoise", "--dataset": "digits", "--arch": "resnet", "--strategy": "sgd", "--out": str(out)}
    bad = dict(bad)
    sets = ["image_size=16", *bad.pop("--set", "").split()]
    argv = ["train", *[x for kv in {**args, **bad}.items() for x in kv], "--set", *sets]
    assert main(argv) in (1, 2)
    err = capsys.readouterr().err
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    assert err.count("\n") == 1, err  # one line
    for word in words:
        assert word in err, err


def test_models_lists_names_without_building_any(monkeypatch, capsys):
    from mfcbench.models import model_names

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built to list names")

    monkeypatch.setattr(models_cli, "build_model", refuse)
    assert models_cli.main([]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} " in out for name in model_names())
    assert "Table 13 ResNet" in out and "--params" in out
    with pytest.raises(AssertionError, match="a model was built"):
        models_cli.main(["--params"])


def test_models_params_builds_the_table(capsys):
    assert models_cli.main(["--models", "espcn"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == list(models_cli.COLUMNS) and "espcn" in out


def test_table13s_commands_print_the_parameter_table():
    """The catalogue's and the workflow rule's Table 13 command ask for the counts (`models` alone lists names)."""
    import re
    import shlex
    from pathlib import Path

    from mfcbench.core import catalogue

    rule = (Path(__file__).resolve().parents[2] / "workflow" / "rules" / "measure.smk").read_text()
    commands = [catalogue.get("table13").command, *re.findall(r'"\{PY\} (models [^>]*)>', rule)]
    assert len(commands) == 2
    for command in commands:
        assert "--params" in shlex.split(command), command
