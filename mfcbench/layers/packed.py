"""The packed FFT path of a per-channel MFC filter: two real channel planes a, b as one complex plane
z = a + i b, so one complex fft2/ifft2 pair filters two channels.

`packed_filter(x, s_half)` applies the same filter as `irfft2(rfft2(x) * s_half)` to rounding;
`mesh_free_filter(..., fft_path="packed")` and `MeshFreeConv2d(..., fft_path="packed")` use it.
"""

from __future__ import annotations

import torch

__all__ = ["packed_filter"]


def _full_grid_symbol(s_half: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The full fft2-grid symbol (C, H, W) that irfft2(rfft2(x) * s_half) applies.

    irfft2 keeps only the Hermitian part of the self-conjugate columns (kx = 0 and, for even W,
    the Nyquist column), i.e. S_eff(l) = (S(l) + conj(S(-l))) / 2 there; the columns with kx < 0
    are conj(S(-l, -m)). The result is Hermitian, S(-k) = conj(S(k)): a real kernel.
    """
    rev_h = (-torch.arange(height, device=s_half.device)) % height
    last = width // 2

    def hermitian(col):
        return ((col + col[:, rev_h].conj()) / 2)[..., None]

    cols = [hermitian(s_half[..., 0]), s_half[..., 1:last + (width % 2)]]
    if width % 2 == 0:
        cols.append(hermitian(s_half[..., last]))
    cols.append(s_half[..., 1:width - last].flip(-1)[:, rev_h].conj())
    return torch.cat(cols, dim=-1)


def _reverse(z: torch.Tensor) -> torch.Tensor:
    """z(-k) on an fft grid (last two axes): index i -> (-i) mod n."""
    out = torch.empty_like(z)
    out[..., 1:, 1:] = z[..., 1:, 1:].flip(-2, -1)
    out[..., 0, 1:] = z[..., 0, 1:].flip(-1)
    out[..., 1:, 0] = z[..., 1:, 0].flip(-1)
    out[..., 0, 0] = z[..., 0, 0]
    return out


def _pack(y: torch.Tensor) -> torch.Tensor:
    b, c, height, width = y.shape
    return torch.view_as_complex(y.reshape(b, c // 2, 2, height, width).permute(0, 1, 3, 4, 2).contiguous())


def _unpack(z: torch.Tensor) -> torch.Tensor:
    b, pairs, height, width = z.shape
    return torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(b, 2 * pairs, height, width).contiguous()


def _packed_apply(zh: torch.Tensor, p: torch.Tensor, m: torch.Tensor):
    """ifft2(P Z + M conj(Z(-k))) and conj(Z(-k))."""
    zr = _reverse(zh).conj_physical_()
    w = zr * m
    w.addcmul_(zh, p)
    return torch.fft.ifft2(w), zr


class _PackedFilter(torch.autograd.Function):
    """out = per-channel filter of y (B, 2P, H, W) with full-grid Hermitian symbols s (2P, H, W).

    With Z = fft2(a + i b), A = (Z + conj(Z(-k)))/2 and B = (Z - conj(Z(-k)))/(2i), so
    S_a A + i S_b B = P Z + M conj(Z(-k)) with P = (S_a + S_b)/2, M = (S_a - S_b)/2, and one ifft2
    returns filtered a and b as its real and imaginary parts. Backward is the same map with
    (conj P, M(-k)) applied to fft2(g_a + i g_b); the symbol gradient is sum_b G conj(Z) / N split
    back by the same Hermitian identity. Four complex transforms of half the planes in all.
    """

    @staticmethod
    def forward(ctx, y, s):
        sa, sb = s[0::2], s[1::2]
        p, m = (sa + sb) / 2, (sa - sb) / 2
        zh = torch.fft.fft2(_pack(y))
        w, zr = _packed_apply(zh, p, m)
        ctx.save_for_backward(zh, zr, p, m)
        return _unpack(w)

    @staticmethod
    def backward(ctx, grad_out):
        zh, zr, p, m = ctx.saved_tensors
        gz = torch.fft.fft2(_pack(grad_out))
        grad_y = grad_s = None
        if ctx.needs_input_grad[0]:
            grad_y = _unpack(_packed_apply(gz, p.conj().resolve_conj(), _reverse(m))[0])
        if ctx.needs_input_grad[1]:
            scale = 2 * zh.shape[-1] * zh.shape[-2]
            gp = torch.linalg.vecdot(zh, gz, dim=0)  # sum_b G conj(Z)
            gm = torch.linalg.vecdot(zr, gz, dim=0)  # sum_b G Z(-k)
            grad_s = torch.stack(((gp + gm) / scale, (gp - gm) / scale), dim=1).reshape(-1, *gp.shape[1:])
        return grad_y, grad_s


def packed_filter(x: torch.Tensor, s_half: torch.Tensor) -> torch.Tensor:
    """The rfft path's filter computed with complex transforms of channel pairs (odd C: a zero plane)."""
    batch, channels, height, width = x.shape
    s = _full_grid_symbol(s_half, height, width)
    if channels % 2:
        x = torch.cat((x, x.new_zeros(batch, 1, height, width)), 1)
        s = torch.cat((s, s[-1:]), 0)
    out = _PackedFilter.apply(x, s)
    return out[:, :channels] if channels % 2 else out
