"""The gpt cell: a decoder-only transformer (GPT-2's layout, pre-norm) over windows of at most ``context`` ids,
its fast pass for a whole batch of windows, its sampling step (a rolling window), its held-out scoring (a
sliding window), and its readable reference.

Per window of T ids x_1..x_T (rows are tokens, widths m = ``hidden``, H heads of d = m / H, K ids):
    z^0_t = E[x_t] + P[t]                                          token and learned position embeddings
    block l = 1..L:
        a = LN(z; g1, b1),   [q | k | v] = a Wqkv + [bq | 0 | bv]  one product for all heads
        S_ts = q_t · k_s / sqrt(d)  for s <= t,  -inf for s > t    causal, per head
        A_t = softmax_s(S_t),   y_t = sum_s A_ts v_s               heads side by side in y
        z' = z + y Wo + bo                                          residual
        u = LN(z'; g2, b2),   f = u W1 + b1',   z'' = z' + GELU(f) W2 + b2'   MLP four times as wide
    h = LN(z^L; g, b),   o_t = h_t V^T + c,   p_t = softmax(o_t),   loss = sum_t -ln p_t[y_t]
The key has no bias: it would add the same q_t · b_k to every score of row t, which the softmax cancels (its
gradient is exactly zero, so it would never move from its start). LN(z; g, b) = g ⊙ (z - μ) / sqrt(σ² + ε) + b
over each row's m numbers; GELU(f) = f (1 + tanh(√(2/π)(f +
0.044715 f³))) / 2 (the tanh approximation GPT-2 uses). V is a matrix of its own (or E itself when the
read-out is tied: see `TIED`). Dropout (while training) multiplies z^0 and each block's two branch outputs (y Wo + bo, GELU(f)
W2 + b2') by masks of 0 or 1/(1-p).

Backwards, each line is the chain rule through the line above (ô = dL/do and so on):
    softmax with cross-entropy:  ô_t = p_t - onehot(y_t);  V̂ = Σ_t ô_t h_t^T,  ĉ = Σ_t ô_t,  ĥ_t = ô_t V
    a product r = a W + b:       Ŵ = a^T r̂,  b̂ = Σ rows r̂,  â = r̂ W^T
    layer norm, x̂ = (z - μ) r with r = 1 / sqrt(σ² + ε):  ĝ = Σ rows ŷ ⊙ x̂,  b̂ = Σ rows ŷ,
        ẑ = r (ŷg - mean(ŷg) - x̂ mean(ŷg ⊙ x̂))       (ŷg = ŷ ⊙ g; means over the row's m numbers)
    GELU with t = tanh(u), u = √(2/π)(f + 0.044715 f³):
        f̂ = ĝelu (½(1 + t) + ½ f (1 - t²) √(2/π)(1 + 3 · 0.044715 f²))
        (the fast pass keeps s = ½(1 + t), so that ½(1 - t²) = 2 s (1 - s): f̂ = ĝelu (s + s (1 - s) f 2√(2/π)(…)))
    attention, per head:  v̂_s = Σ_t A_ts ŷ_t,  Â_ts = ŷ_t · v_s,  Ŝ_ts = A_ts (Â_ts - Σ_s' A_ts' Â_ts'),
        q̂_t = Σ_s Ŝ_ts k_s / sqrt(d),  k̂_s = Σ_t Ŝ_ts q_t / sqrt(d)
    residual:  ẑ = ẑ' + (the branch's â);  embeddings: Ê[x] += ẑ^0_t for each t with x_t = x,  P̂[t] = Σ ẑ^0_t

The fast pass (`GPTWorkspace`) computes the same for B windows at once: every product is one over all B·T
rows, each linear layer's bias rides in its product (its input carries a column of ones and its bias lies
right after its weight in the flat buffer, so [W; b] is one matrix), the attention is a batched np.matmul
over (window, head), and every buffer is allocated once. The reference (`reference_*`) is the same
arithmetic written plainly, a window, a head and a position at a time; the tests hold the one to the other.
"""

from __future__ import annotations

import math

import numpy as np

from textgen.models.base import (
    Cell,
    DropoutMasks,
    LossAndGrads,
    Params,
    ThreadedWorkspace,
    default_threads,
    row_product,
)

EPS = 1e-5  # inside the layer norm's square root (GPT-2's)
MIN_ROWS_PER_THREAD = 256  # ids of windows a training thread needs at least, by default (batch 12 at context 64: 2)
GELU_A = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715
# Whether the read-out reuses the token embedding (V = E). Measured on tinyshakespeare (2 × 64, 4 heads,
# context 64, batch 12, AdamW 1e-3 with warm-up and cosine, 600 updates, two seeds): untied reached 2.344 and
# 2.340 nats per character held out, tied 2.376 and 2.383. For characters the read-out is small (K·m numbers),
# so the default is a read-out of its own.
TIED = False


def block_names(layer: int) -> tuple[str, ...]:
    """The parameters of block ``layer`` (from 1), in buffer order: the first norm, the attention's [W; b]
    pairs, the second norm and the MLP's pairs."""
    return tuple(f"{name}_{layer}" for name in
                 ("ln1_g", "ln1_b", "Wqkv", "bq", "bv", "Wo", "bo", "ln2_g", "ln2_b", "W1", "b1", "W2", "b2"))


class GPTNetwork:
    """A `Network`: ``layers`` pre-norm transformer blocks of width ``hidden`` with ``heads`` heads over windows
    of at most ``context`` ids of a vocabulary of ``vocab_size``. It carries no state from window to window."""

    carries_state = False
    state_size = 0

    def __init__(self, layers: int, hidden: int, vocab_size: int, sigma: float = 0.02, dtype: str = "float64",
                 heads: int = 4, context: int = 64, tied: bool = TIED):
        assert hidden % heads == 0, "the heads must divide the width (ModelConfig checks it)"
        self.layers, self.hidden, self.vocab_size, self.heads, self.context = layers, hidden, vocab_size, heads, context
        self.sigma, self.dtype, self.tied = sigma, dtype, tied
        self.shapes = self.layout()
        sizes = [int(np.prod(shape)) for shape in self.shapes.values()]
        self.param_count = sum(sizes)
        self.offsets = dict(zip(self.shapes, np.cumsum([0] + sizes[:-1]).tolist()))  # where each starts in the buffer
        # weight decay (AdamW) shrinks the matrices that mix features, not biases, norms or embeddings
        self.decayed = tuple(name for layer in range(1, layers + 1) for name in block_names(layer)
                             if name.startswith("W")) + (() if tied else ("V",))

    def layout(self) -> dict[str, tuple[int, ...]]:
        """E (K, m), P (context, m), each block's parameters (`block_names`), the final norm, V (K, m) unless
        tied, and c (K,). A weight is (inputs, outputs), its bias right after it: [W; b] is one view."""
        m, K = self.hidden, self.vocab_size
        shapes = {"E": (K, m), "P": (self.context, m)}
        for layer in range(1, self.layers + 1):
            widths = ((m,), (m,), (m, 3 * m), (m,), (m,), (m, m), (m,), (m,), (m,), (m, 4 * m), (4 * m,),
                      (4 * m, m), (m,))
            shapes.update(zip(block_names(layer), widths))
        shapes.update({"lnf_g": (m,), "lnf_b": (m,)})
        if not self.tied:
            shapes["V"] = (K, m)
        shapes["c"] = (K,)
        return shapes

    def describe(self) -> str:
        """E.g. ``gpt, 4 layers of 128, 4 heads, context 64``."""
        return (f"gpt, {self.layers} layer{'s' if self.layers > 1 else ''} of {self.hidden}, {self.heads} "
                f"head{'s' if self.heads > 1 else ''}, context {self.context}")

    # ------------------------------------------------------------------ parameters

    def zeros(self, dtype=None) -> Params:
        """All-zero parameters (also the gradient and optimizer buffers)."""
        return Params(np.zeros(self.param_count, dtype=dtype or self.dtype), self)

    def init(self, rng: np.random.Generator) -> Params:
        """Every matrix ~ N(0, sigma²), drawn in buffer order from ``rng``, the residual branches' last ones
        (Wo, W2) scaled by 1 / sqrt(2L) so the residual stream's variance does not grow with depth (GPT-2);
        norm gains 1, biases 0."""
        params = self.zeros()
        with np.errstate(over="ignore"):
            for name, shape in self.shapes.items():
                if len(shape) == 2:
                    scale = self.sigma / math.sqrt(2 * self.layers) if name.startswith(("Wo_", "W2_")) else self.sigma
                    params[name][...] = scale * rng.standard_normal(shape)
                elif "_g" in name:
                    params[name][...] = 1.0
        return params

    def readout(self, params: Params) -> np.ndarray:
        """V (K, m): the token embedding itself when tied."""
        return params["E"] if self.tied else params["V"]

    # ------------------------------------------------------------------ windows, texts and steps

    def workspace(self, seq_length: int, batch: int = 1, dtype=None, threads: int | None = None,
                  dropout: float = 0.0, average: bool = True) -> GPTWorkspace:
        """Buffers and the fast pass for ``batch`` windows of ``seq_length`` ids (at most ``context``), split
        over ``threads`` threads (None: `default_threads`), each taking a share of the windows on buffers of its
        own."""
        threads = self.default_threads(batch) if threads is None else max(1, min(int(threads), batch))
        if threads > 1:
            return GPTParallelWorkspace(self, seq_length, batch, dtype or self.dtype, threads, dropout, average)
        return GPTWorkspace(self, seq_length, batch, dtype or self.dtype, dropout, average)

    def default_threads(self, batch: int) -> int:
        """One per CPU, at most one per MIN_ROWS_PER_THREAD ids of windows (a thread's products must be large
        enough to be worth handing over)."""
        return default_threads(batch, max(1, -(-MIN_ROWS_PER_THREAD // self.context)))

    def text_loss(self, params: Params, ids: np.ndarray, state: np.ndarray, chunk: int) -> float:
        """Summed -ln p of ids[1:] by a sliding window: every id is scored with at least half the context before
        it (all there is, within the first window).

        The first window reads ids[0:T] (T = the context, or fewer ids) and scores all its T predictions.
        Each next window ends T // 2 ids further on, reads the T ids before its end and scores only its last
        T // 2 predictions, those not yet scored, each of which sees at least T - T // 2 ids before it. So the
        text is read about twice, ``chunk`` // T windows to a pass. ``state`` is unused: nothing is carried.
        """
        predicted = ids.size - 1
        T = min(self.context, predicted)
        stride = max(1, T // 2)
        starts, firsts = [0], [0]  # where each window starts, and the first of its positions scored
        scored = T
        while scored < predicted:
            end = min(scored + stride, predicted)
            starts.append(end - T)
            firsts.append(T - (end - scored))
            scored = end
        starts, firsts = np.asarray(starts), np.asarray(firsts)
        per_pass = max(1, chunk // T)
        positions = np.arange(T)
        total, workspaces = 0.0, {}
        for first in range(0, starts.size, per_pass):
            window_starts = starts[first : first + per_pass]
            B = window_starts.size
            work = workspaces.get(B)
            if work is None:
                work = workspaces[B] = self.workspace(T, B, params.flat.dtype, threads=1)
            where = window_starts[:, None] + positions  # (B, T)
            work.forward(params, ids[where].T, state)
            log_p = work.target_log_probs(ids[where + 1].T)  # (B, T)
            keep = positions[None, :] >= firsts[first : first + per_pass, None]
            total -= float(log_p[keep].sum(dtype=np.float64))
        return total

    def sampling_state(self, state: np.ndarray) -> np.ndarray:
        """(B, 1 + context) int64: per stream, how many ids it has read (at most the context) and then the ids
        themselves, the latest last; every stream starts having read nothing."""
        return np.zeros((state.shape[0], 1 + self.context), dtype=np.int64)

    def step(self, params: Params, state: np.ndarray, x: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Read ids ``x`` (B,) into the rolling windows ``state`` (B, 1 + context) (the oldest id falls out of a
        full one) and return (the new windows, p (B, K) of the next id after each). The whole window is read
        again each step: with learned absolute positions every id moves to a new position as the window rolls,
        so nothing computed before could be kept. Each stream is computed on its own (np.matmul makes one
        product per stream), so a sample does not depend on the others drawn beside it."""
        single = state.ndim == 1
        state = state.reshape(1, -1) if single else state
        x = np.broadcast_to(np.asarray(x, dtype=np.int64).reshape(-1), (state.shape[0],))
        window = np.empty_like(state)
        window[:, 1:-1] = state[:, 2:]
        window[:, -1] = x
        window[:, 0] = np.minimum(state[:, 0] + 1, self.context)
        p = np.empty((state.shape[0], self.vocab_size), dtype=params.flat.dtype)
        for count in np.unique(window[:, 0]).tolist():
            rows = np.flatnonzero(window[:, 0] == count)
            p[rows] = next_probabilities(self, params, window[rows, -count:])
        return (window[0], p[0]) if single else (window, p)

    # ------------------------------------------------------------------ memory, before any of it is allocated

    def training_bytes(self, seq_length: int, batch: int, dtype=None, dropout: float = 0.0, threads: int = 1) -> int:
        """θ, its best copy, gradients, AdamW's two moments and its scratch (at most 7 × the parameters), the
        activations every block keeps for the backward pass (about 23 numbers of m per row and its
        attention weights), the backward pass's scratch, the read-out's rows, dropout's masks, and each further
        thread's own gradients and embedding scratch."""
        size = np.dtype(dtype or self.dtype).itemsize
        N, T, m, K, L = batch * seq_length, seq_length, self.hidden, self.vocab_size, self.layers
        kept_per_row = L * (23 * m + 6) + 3 * m + 3 * K  # per block: z', norms, q k v, y, f, s, gelu
        scratch_per_row = 19 * m + 2 * K
        attention = (L + 2) * batch * self.heads * T * T  # each block's weights, and two for the backward pass
        masks = (2 * L + 1) * N * m * 2 if dropout else 0
        extra = (max(1, min(threads, batch)) - 1) * (2 * self.param_count + K * m)
        return size * (7 * self.param_count + extra + N * (kept_per_row + scratch_per_row) + attention + masks) \
            + 16 * N

    def sampling_bytes(self, streams: int) -> int:
        """A step reads each stream's whole window: its activations (about 30 numbers of m per id) and
        attention weights, beside the parameters."""
        size = np.dtype(self.dtype).itemsize
        T, m = self.context, self.hidden
        return size * (self.param_count + streams * (T * (30 * m + self.vocab_size) + 2 * self.heads * T * T)) \
            + 8 * streams * (T + 1)


class GPTCell(Cell):
    """The transformer, as ``--cell gpt`` names it."""

    name = "gpt"

    def network(self, layers: int, hidden: int, vocab_size: int, sigma: float = 0.02, dtype: str = "float64",
                heads: int = 4, context: int = 64) -> GPTNetwork:
        """A `GPTNetwork` of ``layers`` blocks."""
        return GPTNetwork(layers, hidden, vocab_size, sigma, dtype, heads, context)


CELL = GPTCell()


# ---------------------------------------------------------------------- the fast pass's pieces

def layer_norm(z: np.ndarray, g: np.ndarray, b: np.ndarray, xhat: np.ndarray, rstd: np.ndarray, out: np.ndarray,
               mean_weights: np.ndarray, scratch: np.ndarray) -> None:
    """``out`` = LN(``z``) of rows (N, m); keeps x̂ in ``xhat`` (N, m) and 1 / sqrt(σ² + ε) in ``rstd`` (N, 1).
    ``mean_weights`` is (m,) of 1/m: a row's mean is one matrix-vector product for all rows; ``scratch`` (N, m)."""
    mean = rstd[:, 0]  # (the mean, then σ², then 1 / sqrt(σ² + ε), in one column)
    np.dot(z, mean_weights, mean)
    np.subtract(z, rstd, xhat)
    np.multiply(xhat, xhat, scratch)
    np.dot(scratch, mean_weights, mean)
    np.add(mean, EPS, mean)
    np.sqrt(mean, mean)
    np.divide(1.0, mean, mean)
    np.multiply(xhat, rstd, xhat)
    np.multiply(xhat, g, out)
    np.add(out, b, out)


def layer_norm_backward(dy: np.ndarray, g: np.ndarray, xhat: np.ndarray, rstd: np.ndarray, dg: np.ndarray,
                        db: np.ndarray, dz: np.ndarray, ones_rows: np.ndarray, mean_weights: np.ndarray,
                        scratch: np.ndarray, columns: tuple[np.ndarray, np.ndarray]) -> None:
    """From dL/d(output) ``dy`` (N, m): ``dg``, ``db`` (m,) and dL/dz into ``dz`` (N, m) (overwritten):
    ẑ = r (ŷg - mean(ŷg) - x̂ mean(ŷg ⊙ x̂)). ``scratch`` (N, m), ``columns`` two (N, 1)."""
    mean_dy, mean_dy_xhat = columns
    np.dot(ones_rows, dy, db)
    np.multiply(dy, xhat, scratch)
    np.dot(ones_rows, scratch, dg)
    np.multiply(dy, g, dz)  # ŷg
    np.dot(dz, mean_weights, mean_dy[:, 0])
    np.multiply(dz, xhat, scratch)
    np.dot(scratch, mean_weights, mean_dy_xhat[:, 0])
    np.multiply(xhat, mean_dy_xhat, scratch)
    np.subtract(dz, scratch, dz)
    np.subtract(dz, mean_dy, dz)
    np.multiply(dz, rstd, dz)


ROW_NUMBERS = 1 << 16  # elementwise passes over a large (N, w) array go this many numbers' worth of rows at a time


def row_spans(rows: int, width: int) -> list[slice]:
    """Row blocks of about ROW_NUMBERS numbers of an array (rows, width): a function's several passes over one
    block read what the pass before wrote from cache, not memory (the same arithmetic, so the same bits)."""
    step = max(1, ROW_NUMBERS // max(1, width))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def gelu(f: np.ndarray, s: np.ndarray, out: np.ndarray) -> None:
    """``out`` = GELU(``f``) = f s with s = (1 + tanh(√(2/π)(f + 0.044715 f³))) / 2, keeping s in ``s`` for the
    backward pass. Rows (N, w), or contiguous arrays of any shape (taken as rows of their last axis)."""
    if f.ndim != 2:
        f, s, out = (x.reshape(-1, x.shape[-1]) for x in (f, s, out))  # views: contiguous
    for r in row_spans(*f.shape):
        fr, sr, o = f[r], s[r], out[r]
        np.multiply(fr, fr, sr)
        np.multiply(sr, GELU_A * GELU_C, sr)
        np.add(sr, GELU_A, sr)
        np.multiply(sr, fr, sr)
        np.tanh(sr, sr)
        np.multiply(sr, 0.5, sr)
        np.add(sr, 0.5, sr)
        np.multiply(fr, sr, o)


def gelu_backward(df: np.ndarray, f: np.ndarray, s: np.ndarray, scratch: np.ndarray, scratch2: np.ndarray) -> None:
    """``df`` (dL/dGELU(f) in, dL/df out) times GELU'(f) = s + f s' with s as `gelu` keeps it: since
    s = (1 + tanh u) / 2, s' = 2 s (1 - s) u' and u' = √(2/π)(1 + 3 · 0.044715 f²), so
    GELU'(f) = s + s (1 - s) · f · 2√(2/π)(1 + 3 · 0.044715 f²) (the tanh form's derivative, rewritten)."""
    for r in row_spans(*f.shape):
        fr, sr, dr = f[r], s[r], df[r]
        a, b = scratch[: fr.shape[0]], scratch2[: fr.shape[0]]
        np.multiply(fr, fr, a)
        np.multiply(a, 6 * GELU_C * GELU_A, a)
        np.add(a, 2 * GELU_A, a)
        np.multiply(a, fr, a)  # f · 2√(2/π)(1 + 3c f²)
        np.subtract(1.0, sr, b)
        np.multiply(b, sr, b)  # s (1 - s)
        np.multiply(a, b, a)
        np.add(a, sr, a)
        np.multiply(dr, a, dr)


def head_views(qkv: np.ndarray, B: int, T: int, H: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q, k, v as (B, H, T, d) views of the rows [q | k | v] (B·T, 3m) (no copy: BLAS reads the strides)."""
    d = qkv.shape[1] // (3 * H)
    parts = qkv.reshape(B, T, 3, H, d)
    return tuple(parts[:, :, part].transpose(0, 2, 1, 3) for part in range(3))


def row_max(x: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """``out`` (..., 1) = the max of each row of ``x`` (..., T), by halving the rows elementwise (a reduction
    along a short last axis is several times slower in NumPy); ``scratch`` (..., ceil(T / 2))."""
    current, width = x, x.shape[-1]
    while width > 1:
        half = width // 2
        np.maximum(current[..., :half], current[..., half : 2 * half], out=scratch[..., :half])
        if width % 2:  # the odd one out joins the first
            np.maximum(scratch[..., :1], current[..., 2 * half : width], out=scratch[..., :1])
        current, width = scratch, half
    np.copyto(out, current[..., :1])


SMALLEST_ROW_SUM = math.exp(-60)  # a softmax row's sum of exponentials below this is made again from its own max
QUERY_ROWS = 64  # a window's queries are taken this many at a time (at least), each block reading only the keys
# at or before its last one: with 4 blocks of a context of 256, the attention does 10/16 of the full square's work
CACHE_NUMBERS = 1 << 18  # windows are taken together while their weights (H × T × T each) fit in about this much


def attention_blocks(T: int, H: int, B: int) -> tuple[int, int]:
    """(windows taken together, query rows per block) for B windows of T ids and H heads: as many windows as keep
    their weights within CACHE_NUMBERS (so that the softmax's passes read what the product before wrote from
    cache), and blocks of at least QUERY_ROWS queries, four to a window at most."""
    return max(1, min(B, CACHE_NUMBERS // (H * T * T))), max(QUERY_ROWS, -(-T // 4))


def causal_spans(T: int, rows: int) -> list[tuple[int, int]]:
    """The query blocks [i0, i1) of a window of T positions, ``rows`` at a time: block [i0, i1) attends to keys
    [0, i1) only, since no query in it may look past i1 - 1."""
    return [(i0, min(i0 + rows, T)) for i0 in range(0, T, rows)]


def attention(qkv: np.ndarray, weights: np.ndarray, y: np.ndarray, mask: np.ndarray, row: np.ndarray,
              scratch: np.ndarray, ones: np.ndarray, blocks: tuple[int, int] | None = None) -> None:
    """Causal attention of B windows: ``qkv`` (B·T, 3m) with q already divided by sqrt(d), the weights A into
    ``weights`` (B, H, T, T), the heads' outputs side by side into ``y`` (B·T, m) (it may be a view with a
    wider row). ``mask`` (T, T) is 0 on and below the diagonal, -inf above; ``row`` (B, H, T, 1), ``scratch``
    (B, H, T, ceil(T / 2)) scratch, ``ones`` (T, 1) ones (a row's sum as a product).

    Windows go ``blocks[0]`` at a time and their queries ``blocks[1]`` rows at a time (`attention_blocks`): a
    block of queries [i0, i1) is scored against keys [0, i1) only. The weights right of that (keys i1 and
    after, all -inf before the softmax) are never written: they keep the zeros the buffer starts with, which is
    what the softmax gives them, and the backward pass never reads them.
    """
    B, H, T, _ = weights.shape
    group, rows = blocks or attention_blocks(T, H, B)
    q, k, v = head_views(qkv, B, T, H)
    d = q.shape[3]
    heads_y = y.reshape(B, T, H, d).transpose(0, 2, 1, 3)
    for b0 in range(0, B, group):
        w_ = slice(b0, min(b0 + group, B))
        for i0, i1 in causal_spans(T, rows):
            A, r, spare = weights[w_, :, i0:i1, :i1], row[w_, :, i0:i1], scratch[w_, :, i0:i1]
            queries, keys, block_mask = q[w_, :, i0:i1], k[w_, :, :i1].transpose(0, 1, 3, 2), mask[i0:i1, :i1]
            # The softmax may subtract any number at least each row's largest score; the largest of the block's
            # (per window and head) is one reduction where each row's is a slow one along short rows. It is
            # exact unless a row's own largest lies so far below it that its exponentials lose precision: then
            # (or for scores that are not finite) the block is done again, row by row.
            np.matmul(queries, keys, A)
            np.add(A, block_mask, A)
            peak = spare[:, :, :1, :1]
            np.maximum.reduce(A, axis=(2, 3), keepdims=True, out=peak)
            np.subtract(A, peak, A)
            np.exp(A, A)
            np.matmul(A, ones[:i1], r)
            if not r.min() >= SMALLEST_ROW_SUM:
                np.matmul(queries, keys, A)
                np.add(A, block_mask, A)
                row_max(A, r, spare)
                np.subtract(A, r, A)
                np.exp(A, A)
                np.matmul(A, ones[:i1], r)
            np.divide(A, r, A)
            np.matmul(A, v[w_, :, :i1], heads_y[w_, :, i0:i1])


def attention_backward(dy: np.ndarray, y: np.ndarray, qkv: np.ndarray, weights: np.ndarray, dqkv: np.ndarray,
                       dweights: np.ndarray, scratch: np.ndarray, row: np.ndarray, scale: float,
                       blocks: tuple[int, int] | None = None) -> None:
    """From dL/dy ``dy`` (B·T, m), y the forward's output (B·T, m): dL/d[q | k | v] into ``dqkv`` (B·T, 3m), for
    q before its division by sqrt(d) (``scale`` is 1 / sqrt(d)). ``dweights`` (B, H, T, T), ``scratch`` (B·T, m)
    and ``row`` (B, T, H) scratch; ``blocks`` as the forward pass took them.

    q̂ is made a block of queries at a time (each against the keys it saw); k̂ and v̂ a block of keys [j0, j1) at
    a time, summed over the queries from j0 on (those before j0 never saw these keys)."""
    B, H, T, _ = weights.shape
    group, rows = blocks or attention_blocks(T, H, B)
    q, k, v = head_views(qkv, B, T, H)
    dq, dk, dv = head_views(dqkv, B, T, H)
    d = q.shape[3]
    # Σ_s A_ts Â_ts = ŷ_t · Σ_s A_ts v_s = ŷ_t · y_t per head: from the (B·T, m) rows, not the (T, T) weights
    np.multiply(dy, y, scratch)
    np.matmul(scratch.reshape(B, T, H, d), np.ones(d, dtype=scratch.dtype), row)
    dy = dy.reshape(B, T, H, d).transpose(0, 2, 1, 3)
    sums = row.transpose(0, 2, 1)[..., None]  # (B, H, T, 1)
    spans = causal_spans(T, rows)
    for b0 in range(0, B, group):
        w_ = slice(b0, min(b0 + group, B))
        for i0, i1 in spans:  # Ŝ = A ⊙ (Â - Σ A ⊙ Â) with Â_ts = ŷ_t · v_s, and q̂_t = Σ_s Ŝ_ts k_s
            A, dA = weights[w_, :, i0:i1, :i1], dweights[w_, :, i0:i1, :i1]
            np.matmul(dy[w_, :, i0:i1], v[w_, :, :i1].transpose(0, 1, 3, 2), dA)
            np.subtract(dA, sums[w_, :, i0:i1], dA)
            np.multiply(dA, A, dA)
            np.matmul(dA, k[w_, :, :i1], dq[w_, :, i0:i1])  # (for the q that was divided: scaled once more below)
        for j0, j1 in spans:  # v̂_s = Σ_{t >= s} A_ts ŷ_t,  k̂_s = Σ_{t >= s} Ŝ_ts q_t / sqrt(d) (q divided already)
            np.matmul(weights[w_, :, j0:, j0:j1].transpose(0, 1, 3, 2), dy[w_, :, j0:], dv[w_, :, j0:j1])
            np.matmul(dweights[w_, :, j0:, j0:j1].transpose(0, 1, 3, 2), q[w_, :, j0:], dk[w_, :, j0:j1])
    m = dqkv.shape[1] // 3
    np.multiply(dqkv[:, :m], scale, dqkv[:, :m])


def causal_mask(T: int, dtype) -> np.ndarray:
    """(T, T): 0 where a position may look (itself and before), -inf after."""
    return np.triu(np.full((T, T), -np.inf, dtype=dtype), 1)


class BlockBuffers:
    """One block's activations for B windows of T ids (N = B·T rows), kept for the backward pass. The inputs of
    Wo, W1 and W2 carry a last column of ones, so that [W; b] multiplies them in one product."""

    def __init__(self, N: int, B: int, T: int, m: int, H: int, dtype):
        self.a = np.zeros((N, m), dtype=dtype)  # LN1(z)
        self.xhat1, self.rstd1 = np.zeros((N, m), dtype=dtype), np.zeros((N, 1), dtype=dtype)
        self.qkv = np.zeros((N, 3 * m), dtype=dtype)  # [q / sqrt(d) | k | v]
        self.weights = np.zeros((B, H, T, T), dtype=dtype)  # A per window and head
        self.y = np.ones((N, m + 1), dtype=dtype)  # [heads' outputs | 1]
        self.u = np.ones((N, m + 1), dtype=dtype)  # [LN2(z') | 1]
        self.xhat2, self.rstd2 = np.zeros((N, m), dtype=dtype), np.zeros((N, 1), dtype=dtype)
        self.f = np.zeros((N, 4 * m), dtype=dtype)  # u W1 + b1
        self.s = np.zeros((N, 4 * m), dtype=dtype)  # GELU's (1 + tanh(...)) / 2
        self.gelu = np.ones((N, 4 * m + 1), dtype=dtype)  # [GELU(f) | 1]


def stacked(params: Params, weight: str) -> np.ndarray:
    """[W; b] (inputs + 1, outputs) as one view of ``params``' buffer: the bias lies right after its weight."""
    rows, columns = params.network.shapes[weight]
    start = params.network.offsets[weight]
    return params.flat[start : start + (rows + 1) * columns].reshape(rows + 1, columns)


class GPTWorkspace:
    """Preallocated buffers and the fast pass for B windows of n ids, all in this thread (see the module's
    docstring). ``inputs``/``targets`` are (n, B) as for every cell; rows here are window-major (b·n + t)."""

    threads = 1

    def __init__(self, network: GPTNetwork, seq_length: int, batch: int, dtype, dropout: float = 0.0,
                 average: bool = True):
        assert seq_length <= network.context, "a window is at most the context"
        T, B, m, K, H, L = seq_length, batch, network.hidden, network.vocab_size, network.heads, network.layers
        N = B * T
        self.network, self.shape = network, (T, B)
        self._divisor = B if average else 1
        self._scale = 1.0 / math.sqrt(m // H)
        self._mask = causal_mask(T, dtype)
        self._ids = np.zeros((B, T), dtype=np.intp)
        # The residual stream: the backward pass reads none of it (the norms keep x̂), so one buffer holds z^0,
        # then each block's output in turn, and one more the stream between a block's two halves.
        self.z = np.zeros((N, m), dtype=dtype)
        self._mid = np.zeros((N, m), dtype=dtype)  # z' = z + attention, the MLP's input
        self.blocks = [BlockBuffers(N, B, T, m, H, dtype) for _ in range(L)]
        self._xhat, self._rstd = np.zeros((N, m), dtype=dtype), np.zeros((N, 1), dtype=dtype)
        self._h = np.zeros((N, m), dtype=dtype)  # LN(z^L)
        self._P = np.zeros((N, K), dtype=dtype)  # p_t, then dL/do_t
        self._row_K = np.zeros((N, 1), dtype=dtype)
        self._row = np.zeros((B, H, T, 1), dtype=dtype)
        self._row_scratch = np.zeros((B, H, T, (T + 1) // 2), dtype=dtype)
        self._ones_T = np.ones((T, 1), dtype=dtype)
        self._row_heads = np.zeros((B, T, H), dtype=dtype)
        self._mean_weights = np.full(m, 1.0 / m, dtype=dtype)
        self._ones_rows = np.ones(N, dtype=dtype)
        self._target_rows = np.arange(N) * K
        self._onehot = np.zeros((N, K), dtype=dtype)  # x_t as rows, for dL/dE
        self._hot = np.zeros(0, dtype=np.intp)
        # the backward pass's scratch, shared by the blocks
        self._dz = np.zeros((N, m), dtype=dtype)  # dL/d(residual stream)
        self._da = np.zeros((N, m), dtype=dtype)  # dL/d(a norm's output), then dL/dy
        self._dn = np.zeros((N, m), dtype=dtype)  # dL/d(a norm's input)
        self._dbranch = np.zeros((N, m), dtype=dtype)  # dL/d(a branch's output), after its dropout mask
        self._scratch = np.zeros((N, m), dtype=dtype)
        self._columns = (np.zeros((N, 1), dtype=dtype), np.zeros((N, 1), dtype=dtype))
        self._df = np.zeros((N, 4 * m), dtype=dtype)
        self._scratch4 = (np.zeros((N, 4 * m), dtype=dtype), np.zeros((N, 4 * m), dtype=dtype))
        self._dqkv = np.zeros((N, 3 * m), dtype=dtype)
        self._dweights = np.zeros((B, H, T, T), dtype=dtype)
        self._dE = np.zeros((K, m), dtype=dtype)
        self._masks = DropoutMasks((2 * L + 1, B, T, m), dtype, dropout) if dropout else None
        self.grads = network.zeros(dtype)
        self.last_state = np.zeros((B, 0), dtype=dtype)

    def draw_masks(self, rng: np.random.Generator) -> np.ndarray | None:
        """Inverted-dropout masks (2L + 1, B, n, m) for the embeddings and each block's two branches; None
        without dropout."""
        return None if self._masks is None else self._masks.draw(rng)

    @staticmethod
    def _rows(masks, index: int) -> np.ndarray | None:
        return None if masks is None else masks[index].reshape(-1, masks.shape[3])

    def forward(self, params: Params, inputs: np.ndarray, state: np.ndarray, masks: np.ndarray | None = None) -> None:
        """p_t for every window and position of ``inputs`` (n, B); ``state`` (B, 0) carries nothing."""
        assert inputs.shape == self.shape, "inputs must be (seq_length, batch)"
        net, (T, B) = self.network, self.shape
        np.copyto(self._ids, inputs.T)
        z = self.z
        np.take(params["E"], self._ids.reshape(-1), axis=0, out=z)
        np.add(z.reshape(B, T, -1), params["P"][:T], z.reshape(B, T, -1))
        if masks is not None:
            np.multiply(z, self._rows(masks, 0), z)
        for index, block in enumerate(self.blocks):
            self._block_forward(params, index + 1, block, masks)
        layer_norm(z, params["lnf_g"], params["lnf_b"], self._xhat, self._rstd, self._h, self._mean_weights,
                   self._scratch)
        logits = self._P
        np.dot(self._h, net.readout(params).T, logits)
        np.add(logits, params["c"], logits)
        np.maximum.reduce(logits, axis=1, keepdims=True, out=self._row_K)
        np.subtract(logits, self._row_K, logits)
        np.exp(logits, logits)
        np.add.reduce(logits, axis=1, keepdims=True, out=self._row_K)
        np.divide(logits, self._row_K, logits)

    def _block_forward(self, params: Params, layer: int, block: BlockBuffers, masks) -> None:
        """The residual stream ``z`` through block ``layer``, in place; the block keeps what its backward pass
        reads."""
        ln1_g, ln1_b, Wqkv, bq, bv, Wo, _, ln2_g, ln2_b, W1, _, W2, _ = block_names(layer)
        z, mid, qkv = self.z, self._mid, block.qkv
        m = z.shape[1]
        layer_norm(z, params[ln1_g], params[ln1_b], block.xhat1, block.rstd1, block.a, self._mean_weights,
                   self._scratch)
        np.dot(block.a, params[Wqkv], qkv)
        np.add(qkv[:, :m], params[bq], qkv[:, :m])
        np.add(qkv[:, 2 * m :], params[bv], qkv[:, 2 * m :])
        np.multiply(qkv[:, :m], self._scale, qkv[:, :m])  # q / sqrt(d), once for every score
        attention(block.qkv, block.weights, block.y[:, :m], self._mask, self._row, self._row_scratch, self._ones_T)
        self._branch(block.y, stacked(params, Wo), z, mid, self._rows(masks, 2 * layer - 1))
        layer_norm(mid, params[ln2_g], params[ln2_b], block.xhat2, block.rstd2, block.u[:, :m], self._mean_weights,
                   self._scratch)
        np.dot(block.u, stacked(params, W1), block.f)
        gelu(block.f, block.s, block.gelu[:, :-1])
        self._branch(block.gelu, stacked(params, W2), mid, z, self._rows(masks, 2 * layer))  # z is free again

    @staticmethod
    def _branch(inputs: np.ndarray, weight: np.ndarray, residual: np.ndarray, out: np.ndarray, mask) -> None:
        """``out`` = ``residual`` + (mask ⊙) [inputs | 1] [W; b]."""
        np.dot(inputs, weight, out)
        if mask is not None:
            np.multiply(out, mask, out)
        np.add(out, residual, out)

    def target_log_probs(self, targets: np.ndarray) -> np.ndarray:
        """After `forward`: ln p_t[y_t] of ``targets`` (n, B), as (B, n) in the pass's dtype."""
        T, B = self.shape
        return np.log(self._P.reshape(-1).take(self._target_rows + targets.T.reshape(-1))).reshape(B, T)

    def loss(self, targets: np.ndarray) -> np.floating:
        """Summed cross-entropy of the filled probabilities against ``targets`` (n, B), over the divisor."""
        return -self.target_log_probs(targets).sum() / self._divisor

    def backward(self, params: Params, inputs: np.ndarray, targets: np.ndarray, masks=None) -> Params:
        """Gradients of the loss after `forward` into ``self.grads``; returns them."""
        net, g, (T, B) = self.network, self.grads, self.shape
        dO = self._P
        dO.reshape(-1)[self._target_rows + targets.T.reshape(-1)] -= 1.0  # ô = p - y
        if self._divisor != 1:
            np.multiply(dO, 1.0 / self._divisor, dO)  # the mean over windows, from here on through every product
        V = net.readout(params)
        dV = self._dE if net.tied else g["V"]
        np.dot(dO.T, self._h, dV)
        np.dot(self._ones_rows, dO, g["c"])
        np.dot(dO, V, self._da)  # ĥ
        dz = self._dz
        layer_norm_backward(self._da, params["lnf_g"], self._xhat, self._rstd, g["lnf_g"], g["lnf_b"], dz,
                            self._ones_rows, self._mean_weights, self._scratch, self._columns)
        for index in range(len(self.blocks) - 1, -1, -1):
            self._block_backward(params, index + 1, self.blocks[index], masks)
        if masks is not None:
            np.multiply(dz, self._rows(masks, 0), dz)
        np.add.reduce(dz.reshape(B, T, -1), axis=0, out=g["P"][:T])
        g["P"][T:] = 0.0
        # Ê = Σ_t onehot(x_t) ẑ^0_t^T, one product with the one-hot rows (clear the last window's ones, set these)
        onehot = self._onehot.reshape(-1)
        onehot[self._hot] = 0.0
        self._hot = self._target_rows + self._ids.reshape(-1)
        onehot[self._hot] = 1.0
        np.dot(self._onehot.T, dz, g["E"])
        if net.tied:
            np.add(g["E"], self._dE, g["E"])
        return g

    def _block_backward(self, params: Params, layer: int, block: BlockBuffers, masks) -> None:
        """From dL/d(block output) in ``_dz`` to dL/d(block input) in ``_dz``; the block's gradients."""
        g, dz, da, dn = self.grads, self._dz, self._da, self._dn
        ln1_g, ln1_b, Wqkv, bq, bv, Wo, _, ln2_g, ln2_b, W1, _, W2, _ = block_names(layer)
        m = dz.shape[1]
        # the MLP: out = mid + mask ⊙ [GELU(f) | 1] [W2; b2]
        dbranch = self._masked(dz, self._rows(masks, 2 * layer))
        np.dot(block.gelu.T, dbranch, stacked(g, W2))
        np.dot(dbranch, params[W2].T, self._df)
        gelu_backward(self._df, block.f, block.s, *self._scratch4)
        np.dot(block.u.T, self._df, stacked(g, W1))
        np.dot(self._df, params[W1].T, da)
        layer_norm_backward(da, params[ln2_g], block.xhat2, block.rstd2, g[ln2_g], g[ln2_b], dn, self._ones_rows,
                            self._mean_weights, self._scratch, self._columns)
        np.add(dz, dn, dz)  # ẑ' = ẑ (the residual) + the MLP's
        # the attention: mid = z + mask ⊙ [y | 1] [Wo; bo]
        dbranch = self._masked(dz, self._rows(masks, 2 * layer - 1))
        np.dot(block.y.T, dbranch, stacked(g, Wo))
        np.dot(dbranch, params[Wo].T, da)  # ŷ
        attention_backward(da, block.y[:, :m], block.qkv, block.weights, self._dqkv, self._dweights, self._scratch,
                           self._row_heads, self._scale)
        dqkv = self._dqkv
        np.dot(block.a.T, dqkv, g[Wqkv])
        np.dot(self._ones_rows, dqkv[:, :m], g[bq])
        np.dot(self._ones_rows, dqkv[:, 2 * m :], g[bv])
        np.dot(dqkv, params[Wqkv].T, da)
        layer_norm_backward(da, params[ln1_g], block.xhat1, block.rstd1, g[ln1_g], g[ln1_b], dn, self._ones_rows,
                            self._mean_weights, self._scratch, self._columns)
        np.add(dz, dn, dz)

    def _masked(self, dz: np.ndarray, mask) -> np.ndarray:
        """dL/d(a branch's output): ``dz`` itself, or through its dropout mask."""
        if mask is None:
            return dz
        np.multiply(dz, mask, self._dbranch)
        return self._dbranch

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, state: np.ndarray,
                       masks=None) -> float:
        """Forward and backward over the windows; gradients land in ``grads``."""
        self.forward(params, inputs, state, masks)
        loss = self.loss(targets)
        self.backward(params, inputs, targets, masks)
        return float(loss)


class GPTParallelWorkspace(ThreadedWorkspace):
    """B windows split into ``threads`` groups, each group's pass run in a thread of its own on a `GPTWorkspace`
    of its own (see `ThreadedWorkspace`); dropout's masks (2L + 1, B, n, m) are drawn for the whole batch. The
    sums of the gradients depend on the split in their last bits: config.json records a run's threads, and a
    resumed run splits alike."""

    mask_axis = 1

    def __init__(self, network: GPTNetwork, seq_length: int, batch: int, dtype, threads: int, dropout: float = 0.0,
                 average: bool = True):
        windows = self.split(batch, threads)
        parts = [GPTWorkspace(network, seq_length, w.stop - w.start, dtype, 0.0, average=False) for w in windows]
        masks = DropoutMasks((2 * network.layers + 1, batch, seq_length, network.hidden), dtype, dropout) \
            if dropout else None
        super().__init__(parts, windows, masks, seq_length, batch, 0, dtype, average)

    def target_log_probs(self, targets: np.ndarray) -> np.ndarray:
        """As `GPTWorkspace.target_log_probs`: (B, n)."""
        return np.concatenate([part.target_log_probs(targets[:, w]) for part, w in zip(self._parts, self._streams)])


def next_probabilities(network: GPTNetwork, params: Params, ids: np.ndarray) -> np.ndarray:
    """p (G, K) of the id after each of G windows ``ids`` (G, t), t <= context: the forward pass with
    np.matmul over the windows, so each window's numbers are its own whatever G is (for sampling)."""
    G, T = ids.shape
    m, H = network.hidden, network.heads
    d = m // H
    z = params["E"][ids] + params["P"][:T]  # (G, T, m)
    mask = causal_mask(T, z.dtype)
    for layer in range(1, network.layers + 1):
        ln1_g, ln1_b, Wqkv, bq, bv, Wo, bo, ln2_g, ln2_b, W1, b1, W2, b2 = (params[n] for n in block_names(layer))
        qkv = np.matmul(reference_layer_norm(z, ln1_g, ln1_b)[0], Wqkv) + np.concatenate([bq, 0 * bq, bv])
        q, k, v = (qkv[..., i * m : (i + 1) * m].reshape(G, T, H, d).transpose(0, 2, 1, 3) for i in range(3))
        scores = np.matmul(q / math.sqrt(d), k.transpose(0, 1, 3, 2)) + mask
        weights = np.exp(scores - scores.max(axis=3, keepdims=True))
        weights /= weights.sum(axis=3, keepdims=True)
        y = np.matmul(weights, v).transpose(0, 2, 1, 3).reshape(G, T, m)
        z = z + np.matmul(y, Wo) + bo
        f = np.matmul(reference_layer_norm(z, ln2_g, ln2_b)[0], W1) + b1
        s, g = np.empty_like(f), np.empty_like(f)
        gelu(f, s, g)  # the fast pass's GELU (the reference's f**3 is a slow power in float32)
        z = z + np.matmul(g, W2) + b2
    h = reference_layer_norm(z[:, -1], params["lnf_g"], params["lnf_b"])[0]  # (G, m): the last position only
    logits = row_product(h, network.readout(params).T) + params["c"]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------- the reference pass

def reference_layer_norm(z: np.ndarray, g: np.ndarray, b: np.ndarray):
    """LN over the last axis, written out: (output, cache)."""
    mu = z.mean(axis=-1, keepdims=True)
    var = ((z - mu) ** 2).mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(var + EPS)
    xhat = (z - mu) * r
    return g * xhat + b, (xhat, r, g)


def reference_layer_norm_backward(dy: np.ndarray, cache):
    """(dz, dg, db) of a row-wise layer norm (rows (N, m)), following its derivation term by term."""
    xhat, r, g = cache
    m = xhat.shape[-1]
    dxhat = dy * g
    # x̂ = (z - μ) r: through z directly, through μ (mean of z) and through r (which depends on σ²)
    dvar = (dxhat * xhat).sum(axis=-1, keepdims=True) * (-0.5) * r**2  # dL/dσ²: z - μ = x̂ / r, dr/dσ² = -r³ / 2
    dmu = -(dxhat * r).sum(axis=-1, keepdims=True)
    dz = dxhat * r + dvar * 2 * xhat / r / m + dmu / m
    return dz, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def reference_gelu(f: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation."""
    return 0.5 * f * (1.0 + np.tanh(GELU_A * (f + GELU_C * f**3)))


def reference_gelu_backward(dout: np.ndarray, f: np.ndarray) -> np.ndarray:
    """dL/df from dL/dGELU(f)."""
    t = np.tanh(GELU_A * (f + GELU_C * f**3))
    return dout * (0.5 * (1.0 + t) + 0.5 * f * (1.0 - t**2) * GELU_A * (1.0 + 3.0 * GELU_C * f**2))


def reference_attention(qkv: np.ndarray, heads: int):
    """Causal attention of one window, a head and a position at a time: ``qkv`` (T, 3m) -> (y (T, m), weights
    (H, T, T))."""
    T, m = qkv.shape[0], qkv.shape[1] // 3
    d = m // heads
    y, weights = np.zeros((T, m), dtype=qkv.dtype), np.zeros((heads, T, T), dtype=qkv.dtype)
    for h in range(heads):
        q, k, v = (qkv[:, part * m + h * d : part * m + (h + 1) * d] for part in range(3))
        for t in range(T):
            scores = k[: t + 1] @ q[t] / math.sqrt(d)  # position t sees 0..t
            a = np.exp(scores - scores.max())
            a /= a.sum()
            weights[h, t, : t + 1] = a
            y[t, h * d : (h + 1) * d] = a @ v[: t + 1]
    return y, weights


def reference_attention_backward(dy: np.ndarray, qkv: np.ndarray, weights: np.ndarray, heads: int) -> np.ndarray:
    """dL/d[q | k | v] (T, 3m) of one window from dL/dy ``dy`` (T, m), a head and a position at a time."""
    T, m = qkv.shape[0], qkv.shape[1] // 3
    d = m // heads
    dqkv = np.zeros_like(qkv)
    for h in range(heads):
        q, k, v = (qkv[:, part * m + h * d : part * m + (h + 1) * d] for part in range(3))
        dq, dk, dv = (dqkv[:, part * m + h * d : part * m + (h + 1) * d] for part in range(3))
        for t in range(T):
            a, dy_t = weights[h, t, : t + 1], dy[t, h * d : (h + 1) * d]
            dv[: t + 1] += np.outer(a, dy_t)  # y_t = Σ_s a_s v_s
            da = v[: t + 1] @ dy_t
            ds = a * (da - a @ da)  # through the softmax
            dq[t] += ds @ k[: t + 1] / math.sqrt(d)
            dk[: t + 1] += np.outer(ds, q[t]) / math.sqrt(d)
    return dqkv


def reference_block(params: Params, layer: int, z: np.ndarray, heads: int, masks=None):
    """One block over one window ``z`` (T, m) -> (output, cache); ``masks`` (2, T, m) for its two branches."""
    ln1_g, ln1_b, Wqkv, bq, bv, Wo, bo, ln2_g, ln2_b, W1, b1, W2, b2 = (params[n] for n in block_names(layer))
    a, ln1 = reference_layer_norm(z, ln1_g, ln1_b)
    qkv = a @ Wqkv + np.concatenate([bq, np.zeros_like(bq), bv])  # the key has no bias
    y, weights = reference_attention(qkv, heads)
    branch = y @ Wo + bo
    mid = z + (branch if masks is None else branch * masks[0])
    u, ln2 = reference_layer_norm(mid, ln2_g, ln2_b)
    f = u @ W1 + b1
    branch = reference_gelu(f) @ W2 + b2
    out = mid + (branch if masks is None else branch * masks[1])
    return out, (a, ln1, qkv, y, weights, u, ln2, f)


def reference_block_backward(params: Params, layer: int, dout: np.ndarray, cache, heads: int, masks=None):
    """(dL/dz (T, m), {name: gradient}) of one block over one window from dL/d(output) ``dout``."""
    _, _, Wqkv, _, _, Wo, _, _, _, W1, _, W2, _ = (params[n] for n in block_names(layer))
    ln1_g, ln1_b, Wqkv_name, bq, bv, Wo_name, bo, ln2_g, ln2_b, W1_name, b1, W2_name, b2 = block_names(layer)
    a, ln1, qkv, y, weights, u, ln2, f = cache
    m = a.shape[1]
    grads = {}
    dbranch = dout if masks is None else dout * masks[1]
    grads[W2_name], grads[b2] = reference_gelu(f).T @ dbranch, dbranch.sum(axis=0)
    df = reference_gelu_backward(dbranch @ W2.T, f)
    grads[W1_name], grads[b1] = u.T @ df, df.sum(axis=0)
    dmid, grads[ln2_g], grads[ln2_b] = reference_layer_norm_backward(df @ W1.T, ln2)
    dmid = dmid + dout
    dbranch = dmid if masks is None else dmid * masks[0]
    grads[Wo_name], grads[bo] = y.T @ dbranch, dbranch.sum(axis=0)
    dqkv = reference_attention_backward(dbranch @ Wo.T, qkv, weights, heads)
    grads[Wqkv_name], grads[bq], grads[bv] = a.T @ dqkv, dqkv[:, :m].sum(axis=0), dqkv[:, 2 * m :].sum(axis=0)
    dz, grads[ln1_g], grads[ln1_b] = reference_layer_norm_backward(dqkv @ Wqkv.T, ln1)
    return dz + dmid, grads


def reference_loss_and_grads(network: GPTNetwork, params: Params, inputs, targets, masks=None) -> LossAndGrads:
    """The whole model written out plainly, one window at a time: ``inputs``/``targets`` (n, B) ids, ``masks``
    (2L + 1, B, n, m) or None. Returns the loss and gradients as means over the windows."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    T, B = inputs.shape
    L, H, K = network.layers, network.heads, network.vocab_size
    grads = network.zeros(params.flat.dtype)
    V = network.readout(params)
    loss = 0.0
    for b in range(B):
        x, window_masks = inputs[:, b], None if masks is None else masks[:, b]
        z = params["E"][x] + params["P"][:T]
        if window_masks is not None:
            z = z * window_masks[0]
        caches = []
        for layer in range(1, L + 1):
            z, cache = reference_block(params, layer, z, H, None if masks is None else window_masks[2 * layer - 1 :
                                                                                                    2 * layer + 1])
            caches.append(cache)
        h, lnf = reference_layer_norm(z, params["lnf_g"], params["lnf_b"])
        logits = h @ V.T + params["c"]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        loss -= np.log(p[np.arange(T), targets[:, b]]).sum()
        do = p - np.eye(K, dtype=p.dtype)[targets[:, b]]
        grads["E" if network.tied else "V"][...] += do.T @ h
        grads["c"][...] += do.sum(axis=0)
        dz, dg, db = reference_layer_norm_backward(do @ V, lnf)
        grads["lnf_g"][...] += dg
        grads["lnf_b"][...] += db
        for layer in range(L, 0, -1):
            dz, block_grads = reference_block_backward(
                params, layer, dz, caches[layer - 1], H,
                None if masks is None else window_masks[2 * layer - 1 : 2 * layer + 1])
            for name, value in block_grads.items():
                grads[name][...] += value
        if window_masks is not None:
            dz = dz * window_masks[0]
        grads["P"][:T] += dz
        for t in range(T):
            grads["E"][x[t]] += dz[t]
    grads.flat[...] /= B
    return LossAndGrads(float(loss / B), grads, np.zeros((B, 0), dtype=params.flat.dtype))
