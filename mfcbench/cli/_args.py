"""Argument types shared by the commands: numbers are range-checked as the profile schema checks them."""

from __future__ import annotations

import argparse


def _bounded(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


non_negative_int = _bounded(0)
positive_int = _bounded(1)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


class ChoicesHelpFormatter(argparse.HelpFormatter):
    """Appends an argument's choices to its help only when help is printed: an action with a
    `choices_from` callable (e.g. `model_names`) lists them, so building the parser imports no registry."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = super()._get_help_string(action) or ""
        choices_from = getattr(action, "choices_from", None)
        if choices_from is None:
            return text
        listed = ", ".join(choices_from()).replace("%", "%%")
        return f"{text} (choices: {listed})" if text else f"choices: {listed}"


def with_choices(action: argparse.Action, choices_from) -> argparse.Action:
    """Mark `action` to list `choices_from()` in --help (ChoicesHelpFormatter); returns the action."""
    action.choices_from = choices_from
    return action
