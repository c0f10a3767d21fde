"""Full mixing: one MFC filter per (output, input) channel pair, and its step-scoped symbol cache.

`full_mixing(layer, x_hat, ky, kx)` is y_hat[b, o] = sum_i S[o, i] x_hat[b, i] per frequency, with
S the pair's symbol; `_PairwiseSymbolContraction` computes it and its gradients without storing the
(Cout, Cin, F) symbol. `symbol_cache()` shares the symbol tables of each layer between the model
calls of one optimizer step (built on the finest mesh, sliced for the coarser ones); this module
owns the stack of active caches.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["SymbolCache", "active_cache", "build_pair_symbol", "full_mixing", "join_wavenumbers", "symbol_cache"]

_CHUNK_ELEMENTS = 1 << 23  # pair-symbol entries built at once: bounds memory at ~100 MB
_ACTIVE_CACHES: list["SymbolCache"] = []  # innermost last; `symbol_cache()` pushes and pops


def join_wavenumbers(ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """ky (H, 1) and kx (1, W//2+1) as one vector (H + W//2+1,): the contraction's one wavenumber input
    (an input, not a captured tensor, so that a trace of the op, as fvcore's FLOP count makes, holds)."""
    return torch.cat((ky.reshape(-1), kx.reshape(-1)))


def _split_wavenumbers(k: torch.Tensor, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    return k[:height, None], k[None, height:]


def _frequency_basis(ky: torch.Tensor, kx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frequency monomials (F, 3) and (F, 2) the symbol and its parameter gradients are built from."""
    kyf = ky.expand(ky.shape[0], kx.shape[1]).reshape(-1)
    kxf = kx.expand(ky.shape[0], kx.shape[1]).reshape(-1)
    return {"quad": torch.stack((kxf * kxf, 2 * kxf * kyf, kyf * kyf), dim=1), "lin": torch.stack((kxf, kyf), dim=1)}


def _pair_symbol(tau, alpha, gamma, basis):
    """Frequency-major decay exp(-tau q) and odd factor gx kx + gy ky, each (F, P) for P pairs."""
    decay = torch.exp_((basis["quad"] @ alpha.T).mul_(-tau))
    odd = basis["lin"] @ gamma[:, 1:].T
    return decay, odd


def _complex_symbol(g0, decay, odd):
    """(g0 + i odd) * decay written straight into an interleaved buffer: one pass, no temporaries."""
    out = torch.empty(*decay.shape, 2, dtype=decay.dtype, device=decay.device)
    torch.mul(decay, g0, out=out[..., 0])
    torch.mul(decay, odd, out=out[..., 1])
    return torch.view_as_complex(out)


def _frequency_chunks(num_freqs: int, num_pairs: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, num_pairs))
    return [slice(start, min(start + step, num_freqs)) for start in range(0, num_freqs, step)]


def _chunk_basis(basis: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in basis.items()}


def _chunk_symbol(t, a, g, basis, rows, cached):
    """(decay, odd) for a chunk of frequencies: rows of the cached tables, else built now."""
    if cached is not None:
        return cached[0][rows], cached[1][rows]
    return _pair_symbol(t, a, g, _chunk_basis(basis, rows))


def build_pair_symbol(tau, alpha, gamma, ky, kx):
    """(decay, odd), each (F, P) frequency-major, for the whole mesh (built chunk by chunk)."""
    basis = _frequency_basis(ky, kx)
    t, a, g = tau.reshape(-1), alpha.reshape(-1, 3), gamma.reshape(-1, 3)
    num_freqs = basis["quad"].shape[0]
    decay = torch.empty(num_freqs, t.numel(), dtype=t.dtype, device=t.device)
    odd = torch.empty_like(decay)
    for rows in _frequency_chunks(num_freqs, t.numel()):
        decay[rows], odd[rows] = _pair_symbol(t, a, g, _chunk_basis(basis, rows))
    return decay, odd


def _match(coarse: torch.Tensor, fine: torch.Tensor):
    """Indices i with fine[i] == coarse[j] for every j (physical wavenumbers), or None."""
    coarse, fine = coarse.reshape(-1).double(), fine.reshape(-1).double()
    diff = (coarse[:, None] - fine[None, :]).abs()
    best = diff.min(dim=1)
    if bool((best.values > 1e-6 * (1.0 + coarse.abs())).any()):
        return None
    return best.indices


class SymbolCache:
    """Per layer: the full-mixing (decay, odd) tables of the meshes met inside one step.

    With physical wavenumbers a coarse mesh samples a subset of a finer mesh's frequencies
    (n/2 x n/2 inside n x n: modes |m| <= n/4, the rfft column kx = +n/4 included), so its
    tables are rows of the finer ones. A call first looks for a cached mesh containing its
    frequencies (any sizes, odd included: the match is on wavenumber values), slices the rows and
    keeps the slice; failing that it builds its own tables if they fit the byte budget, else
    returns None (the uncached chunked path). Tables are detached: gradients still come from
    _PairwiseSymbolContraction's own backward. A parameter change (version counter) drops the entry.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.used, self.entries = max_bytes, 0, {}

    def lookup(self, layer, tau, alpha, ky, kx):
        params = (layer.log_tau, layer.chol, layer.gamma)
        version = tuple((p._version, p.data_ptr()) for p in params)
        entry = self.entries.get(id(layer))
        if entry is None or entry["version"] != version:
            if entry is not None:
                self.used -= sum(d.numel() * 2 * d.element_size() for _, _, d, _ in entry["grids"])
            entry = self.entries[id(layer)] = {"version": version, "grids": [], "layer": layer}
        found = self._slice(entry, ky, kx)
        if found is not None:
            return found
        nbytes = ky.shape[0] * kx.shape[1] * tau.numel() * 2 * tau.element_size()
        if self.used + nbytes > self.max_bytes:
            return None
        with torch.no_grad():
            tables = build_pair_symbol(tau.detach(), alpha.detach(), layer.gamma.detach(), ky, kx)
        self._store(entry, ky, kx, tables)
        return tables

    def _slice(self, entry, ky, kx):
        for fky, fkx, decay, odd in sorted(entry["grids"], key=lambda grid: grid[2].shape[0]):
            same_size = fky.numel() == ky.numel() and fkx.numel() == kx.numel()
            if same_size and torch.equal(fky, ky) and torch.equal(fkx, kx):
                return decay, odd
            iy, ix = _match(ky, fky), _match(kx, fkx)
            if iy is None or ix is None:
                continue
            rows = (iy[:, None] * fkx.numel() + ix[None, :]).reshape(-1).to(decay.device)
            tables = decay.index_select(0, rows), odd.index_select(0, rows)
            if self.used + 2 * tables[0].numel() * tables[0].element_size() <= self.max_bytes:
                self._store(entry, ky, kx, tables)
            return tables
        return None

    def _store(self, entry, ky, kx, tables):
        entry["grids"].append((ky, kx, *tables))
        self.used += 2 * tables[0].numel() * tables[0].element_size()


@contextlib.contextmanager
def symbol_cache(max_bytes: int = 6 << 30):
    """Share full-mixing symbol tables between the model calls of one optimizer step.

    Enter it around forward *and* backward of one step (e.g. the telescoping Multiscale-SGD loss
    and its .backward()), and leave it before optimizer.step(). Outside it nothing is cached.
    `max_bytes` bounds the tables kept (8 bytes per (frequency, channel pair) in float32): at the
    Table 15 setting a 128x128-channel layer needs 1.09 GB at 128^2 and 4.3 GB at 256^2.
    """
    cache = SymbolCache(max_bytes)
    _ACTIVE_CACHES.append(cache)
    try:
        yield cache
    finally:
        _ACTIVE_CACHES.remove(cache)
        cache.entries.clear()


def active_cache() -> SymbolCache | None:
    """The innermost open `symbol_cache()`, or None outside every one."""
    return _ACTIVE_CACHES[-1] if _ACTIVE_CACHES else None


def full_mixing(layer, x_hat: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """y_hat (B, Co, H, W//2+1) of a full-mixing layer (its tau(), alpha(), gamma of shape (Co, Ci, ...))
    from x_hat = rfft2 of its input on the mesh of wavenumbers ky, kx; the open symbol cache's tables
    when there is one."""
    tau, alpha = layer.tau(), layer.alpha()
    cache = active_cache()
    cached = cache.lookup(layer, tau, alpha, ky, kx) if cache is not None else None
    return _PairwiseSymbolContraction.apply(x_hat, tau, alpha, layer.gamma, join_wavenumbers(ky, kx), cached)


# Its class name is the op name a trace records: measure/flops counts the op by it
# (prim::PythonOp._PairwiseSymbolContraction), as it does _PackedFilter.
class _PairwiseSymbolContraction(torch.autograd.Function):
    """y_hat[b, o, f] = sum_i S[o, i, f] x_hat[b, i, f] with S the MFC symbol of pair (o, i).

    Autograd through the symbol would keep half a dozen (Cout, Cin, F) temporaries and reduce
    each of them; here the symbol is never stored: it is built frequency-major, a chunk of
    frequencies at a time (bounded memory at any mesh), in forward and again in backward, and the
    7 parameter gradients come from one complex batched matmul plus small real matmuls against
    frequency monomials: dL/dp = sum_f Re(conj(G) dS/dp) with G = grad_y x_hat^H per frequency.
    `k` is the mesh's wavenumbers (`join_wavenumbers`), `cached` the open symbol cache's (decay, odd)
    tables on that mesh, or None (built chunk by chunk, in forward and again in backward).
    """

    @staticmethod
    def forward(x_hat, tau, alpha, gamma, k, cached):
        cout, cin = tau.shape
        batch, _, height, wr = x_hat.shape
        basis = _frequency_basis(*_split_wavenumbers(k, height))
        t, a, g = tau.reshape(-1), alpha.reshape(-1, 3), gamma.reshape(-1, 3)
        xf = x_hat.reshape(batch, cin, -1).permute(2, 1, 0).contiguous()  # (F, Ci, B)
        y = torch.empty(xf.shape[0], cout, batch, dtype=x_hat.dtype, device=x_hat.device)
        for rows in _frequency_chunks(xf.shape[0], t.numel()):
            decay, odd = _chunk_symbol(t, a, g, basis, rows, cached)
            symbol = _complex_symbol(g[:, 0], decay, odd).reshape(-1, cout, cin)  # (f, Co, Ci)
            torch.matmul(symbol, xf[rows], out=y[rows])
        return y.permute(2, 1, 0).reshape(batch, cout, height, wr)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x_hat, tau, alpha, gamma, k, cached = inputs
        ctx.save_for_backward(x_hat, tau, alpha, gamma, k)
        ctx.cached = cached

    @staticmethod
    def backward(ctx, grad_y):
        x_hat, tau, alpha, gamma, k = ctx.saved_tensors
        cout, cin = tau.shape
        batch, _, height, wr = x_hat.shape
        basis = _frequency_basis(*_split_wavenumbers(k, height))
        t, a, g = tau.reshape(-1), alpha.reshape(-1, 3), gamma.reshape(-1, 3)
        gy = grad_y.reshape(batch, cout, -1).permute(2, 1, 0).contiguous()  # (F, Co, B)
        # (F, B, Ci) contiguous per frequency: the grad_y x^H batched matmul below needs dense operands
        # (a strided x^H, stride F between channels, makes it several times slower at small batches)
        xh = x_hat.reshape(batch, cin, -1).permute(2, 0, 1).contiguous().conj_physical_()
        want_x = ctx.needs_input_grad[0]
        grad_x = torch.empty(gy.shape[0], cin, batch, dtype=gy.dtype, device=gy.device) if want_x else None
        sums = torch.zeros(6, t.numel(), dtype=t.dtype, device=t.device)  # gamma (3) and quadratic (3) moments
        for rows in _frequency_chunks(gy.shape[0], t.numel()):
            chunk = _chunk_basis(basis, rows)
            decay, odd = _chunk_symbol(t, a, g, basis, rows, ctx.cached)
            if want_x:
                symbol_h = _complex_symbol(g[:, 0], decay, odd.neg()).reshape(-1, cout, cin).transpose(1, 2)
                torch.matmul(symbol_h, gy[rows], out=grad_x[rows])  # conj(S)^T grad_y
            G = torch.matmul(gy[rows], xh[rows]).reshape(-1, cout * cin)  # grad_y x^H: (f, P)
            w_re = G.real * decay  # Re(conj(G) decay)
            w_im = G.imag.neg().mul_(decay)  # Im(conj(G) decay)
            sums[0] += w_re.sum(0)
            sums[1:3] -= chunk["lin"].T @ w_im
            r = w_re.mul_(g[:, 0]).sub_(w_im.mul_(odd))  # Re(conj(G) S)
            sums[3:] += chunk["quad"].T @ r  # sums of r kx^2, 2 r kx ky, r ky^2
        m = sums[3:].T
        grad_alpha = -t[:, None] * m
        grad_tau = -(a * m).sum(-1)
        if want_x:
            grad_x = grad_x.permute(2, 1, 0).reshape(batch, cin, height, wr)
        return (grad_x, grad_tau.reshape(cout, cin), grad_alpha.reshape(cout, cin, 3),
                sums[:3].T.reshape(cout, cin, 3), None, None)
