"""MeshFreeConv2d's promise as a drop-in for nn.Conv2d: (in_channels, out_channels) positional, every
option by keyword, and each conv-style argument refused in one line that says what to write instead."""

import inspect

import pytest
import torch

from mfcbench.layers import MeshFreeConv2d


def _message(*args, **kwargs) -> str:
    with pytest.raises(TypeError) as error:
        MeshFreeConv2d(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_conv_call_says_what_to_write():
    message = _message(16, 32, 3, padding=1)
    assert "no kernel_size" in message and "no padding" in message and "tau/alpha" in message
    assert message.endswith("write MeshFreeConv2d(16, 32)")


@pytest.mark.parametrize("name,value,hint", [("kernel_size", 3, "tau/alpha"), ("stride", 2, "restrict"),
                                             ("padding", 1, "pad_width"), ("groups", 4, "mixing="),
                                             ("dilation", 2, "learned"), ("padding_mode", "circular", "boundary=")])
def test_each_conv_argument_names_what_an_mfc_has_instead(name, value, hint):
    message = _message(8, 8, mixing="full", **{name: value})
    assert f"no {name} (" in message and hint in message
    assert message.endswith("write MeshFreeConv2d(8, 8, mixing='full')")


def test_pixel_padding_never_means_a_physical_width():
    _message(4, 4, boundary="zero", padding=1)
    assert _message(4, 4, boundary="zero", padding=0.25).endswith(
        "write MeshFreeConv2d(4, 4, boundary='zero', pad_width=0.25)")
    layer = MeshFreeConv2d(1, 1, boundary="zero", pad_width=0.25)
    assert layer.pad_width == 0.25 and "pad_width=0.25" in repr(layer)


def test_options_are_keyword_only():
    assert _message(3, 4, "full").endswith("write MeshFreeConv2d(3, 4, mixing='full')")
    assert "keyword-only" in _message(3, 4, "reflect")
    assert _message(3, 4, 3, 1, 1, 1, 1, False).endswith("write MeshFreeConv2d(3, 4, bias=False)")
    parameters = list(inspect.signature(MeshFreeConv2d).parameters.values())
    assert [p.name for p in parameters[:2]] == ["in_channels", "out_channels"]
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters[2:])


def test_unknown_keyword_lists_the_options():
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['kernel'\\].*pad_width"):
        MeshFreeConv2d(2, 2, kernel=3)


def test_keyword_construction_still_works():
    layer = MeshFreeConv2d(3, 5, mixing="full", bias=False, boundary="reflect", init_resolution=16)
    assert layer(torch.randn(1, 3, 16, 16)).shape == (1, 5, 16, 16)
