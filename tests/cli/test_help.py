"""Each command's --help lists each option once: option help lives in the parser, not again in the
description."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from mfcbench.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_lists_each_option_once(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    after_usage = capsys.readouterr().out.split("\n\n", 1)[1]
    listed = Counter(re.findall(r"^\s+(--[\w-]+)", after_usage, flags=re.MULTILINE))
    twice = sorted(option for option, n in listed.items() if n > 1)
    assert not twice, f"`{command} --help` lists {twice} more than once: keep the text in the option's help"
