"""The contract of a model and what the recurrent cells share.

`Cell`, `Network` and `Workspace` are all that code outside models/ relies on: a module in models/ exports a
`Cell` as ``CELL``; the package registers it by name (`textgen.models.CELLS`, chosen by ``--cell``); its
`Network` is one model's layout and numerics, its `Workspace` one window's fast pass. `RecurrentCell` and
`Layer` are what a cell offers to be stacked by `RecurrentNetwork`, which the rnn, lstm and gru cells share.

Also here: `Params` (named views into one flat buffer), the stacked fast workspace, the threaded one, and the
readable reference pass every fast one is tested against.

A recurrent network is `layers` layers of one cell under a softmax. Layer 1 reads the one-hot character,
layer l reads layer l-1's output h (after dropout while training), the softmax reads the top layer's:
    a_t^l = W_l h_{t-1}^l + U_l x_t^l + b_l      (G·m pre-activations: G = 1 for rnn, 4 for lstm, 3 for gru)
    o_t = V h_t^L + c,   p_t = softmax(o_t),   loss = sum_t -log p_t[y_t]
Each stream's recurrent state is one row of S numbers: every layer's h (and, for lstm, c) side by side.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol, runtime_checkable

import numpy as np

from textgen.config import BLAS_THREAD_VARIABLES

MIN_STREAMS_PER_THREAD = 32  # with fewer streams per thread, handing work over costs what it saves


# ---------------------------------------------------------------------- the contract

@runtime_checkable
class Cell(Protocol):
    """A kind of model, chosen by ``--cell``: what a module in models/ exports as ``CELL``."""

    name: str  # what ``--cell`` (`RNNConfig.cell`) names it by; the package registers it under this name

    def network(self, layers: int, hidden: int, vocab_size: int, sigma: float = 0.01,
                dtype: str = "float64", heads: int = 1, context: int = 0) -> Network:
        """The network of ``layers`` layers of width ``hidden`` over ``vocab_size`` ids, initialised at scale
        ``sigma``, computing in ``dtype``; an attention model splits the width into ``heads`` heads and sees
        ``context`` ids (a recurrent one ignores both). The cell chooses its fast path here (the rnn cell
        returns the assignment's own layout and pass for one layer)."""


@runtime_checkable
class Network(Protocol):
    """One model's layout and numerics: everything the trainer, sampler, evaluator, gradient check and
    checkpoint use, and all they may rely on. A `Params` carries its network, so they need only parameters.

    The state: a model that carries state from one training window to the next (``carries_state``, a
    recurrent one) has S = ``state_size`` numbers per stream. The trainer keeps them (B, S), carries them
    across windows and zeroes them at each epoch's start; the checkpoint stores them, with stream 0's as
    where sampling and evaluation start. A model that carries none has S = 0, every window starting afresh.
    """

    hidden: int  # the width of a layer
    vocab_size: int  # K, the ids the model reads and predicts
    shapes: dict[str, tuple[int, ...]]  # every parameter's shape, in the order they lie in the flat buffer
    param_count: int  # the numbers in all of them
    state_size: int  # S: the numbers of state one stream carries from a window to the next (0: none)
    carries_state: bool  # True: trained on each stream's windows in order, its state carried across them;
    # False: trained on windows at random positions, each from no state, evaluated with a sliding window
    decayed: tuple[str, ...]  # the parameters AdamW's weight decay shrinks (weight matrices)

    def describe(self) -> str:
        """The model in a few words for messages and headers, e.g. ``lstm, 2 layers of 128``."""

    def zeros(self, dtype=None) -> Params:
        """All-zero parameters in this layout (also gradient and optimizer buffers); ``dtype`` or the model's."""

    def init(self, rng: np.random.Generator) -> Params:
        """Initial parameters, every random number drawn from ``rng`` in a fixed order."""

    def workspace(self, seq_length: int, batch: int = 1, dtype=None, threads: int | None = None,
                  dropout: float = 0.0) -> Workspace:
        """Buffers and the fast pass for windows of ``seq_length`` ids over ``batch`` streams, split over up to
        ``threads`` threads (None: `default_threads`). With ``dropout`` > 0 its passes apply dropout masks:
        drawn at that rate by `Workspace.draw_masks`, or given (the gradient check's); with 0 they take none."""

    def default_threads(self, batch: int) -> int:
        """The threads a workspace of ``batch`` streams gets unless told (`textgen.models.default_threads`, with
        the streams a thread needs to be worth its hand-over)."""

    def text_loss(self, params: Params, ids: np.ndarray, state: np.ndarray, chunk: int) -> float:
        """Summed -ln p of ids[1:] reading ids[:-1] (1-D, at least 2 ids), one stream from ``state`` (1, S): how
        the model scores held-out text (a recurrent one carries its state through the whole text). ``chunk``
        is about how many ids one pass reads: it sets speed and memory, not what is scored."""

    def sampling_state(self, state: np.ndarray) -> np.ndarray:
        """What `step` starts from for streams whose carried state is ``state`` (B, S): a recurrent model's is
        that state itself; one that carries none keeps the ids it has read. A 2-D array whose row b is stream
        b's, so a sampler may keep or replace rows."""

    def step(self, params: Params, state: np.ndarray, x: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """One sampling step: read ids ``x`` (B,) from sampling states ``state`` (B, ·); returns (the next
        states, p (B, K)). A single stream may be given as one row and one id: then p is (K,). Each row is
        computed on its own, so a sample does not depend on the others drawn beside it."""

    def training_bytes(self, seq_length: int, batch: int, dtype=None, dropout: float = 0.0, threads: int = 1) -> int:
        """Memory training allocates for the model (parameters and their copies, workspace split over ``threads``
        threads, each with gradients of its own), before any is."""

    def sampling_bytes(self, streams: int) -> int:
        """Memory of sampling ``streams`` streams side by side, beside the parameters."""


class Workspace(Protocol):
    """Preallocated buffers and the fast pass for windows of n ids over B streams (a `Network.workspace`).

    ``inputs`` and ``targets`` are (n, B) ids, ``state`` (B, S) the streams' states before the window,
    ``masks`` what `draw_masks` returned (or None). Reused across windows: nothing is allocated per window.
    """

    grads: Params  # dL/dθ of the last `loss_and_grads`, means over the streams
    last_state: np.ndarray  # (B, S): each stream's state after the last window's last step

    def draw_masks(self, rng: np.random.Generator) -> np.ndarray | None:
        """Dropout's masks for the next window, drawn from ``rng``; None, drawing nothing, without dropout."""

    def forward(self, params: Params, inputs: np.ndarray, state: np.ndarray, masks=None) -> None:
        """The forward pass over one window: the probabilities `loss` scores, and ``last_state``."""

    def loss(self, targets: np.ndarray) -> np.floating:
        """After `forward`: summed cross-entropy against ``targets``, mean over streams, in the pass's dtype."""

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, state: np.ndarray,
                       masks=None) -> float:
        """Forward and backward over one window: returns its loss; gradients in ``grads``, state in ``last_state``."""


class Layer(Protocol):
    """One layer of a `RecurrentCell` in a stack: buffers for windows of n steps over B streams (m units)."""

    A: np.ndarray  # (n, B, G·m): the stack fills it with the input side U x_t + b before `forward`
    H: np.ndarray  # (n + 1, B, m): h_0 .. h_n (what dL/dW reads)
    output: np.ndarray  # (n, B, m): h_1 .. h_n, what the layer above or the softmax reads

    def forward(self, W: np.ndarray, state: np.ndarray, last_state: np.ndarray) -> None:
        """The window from this layer's ``state`` (B, state_parts·m); its state after step n into ``last_state``."""

    def backward(self, W: np.ndarray, dH: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """From dL/d(output) ``dH`` (n, B, m): (dL/d(input side) (n, B, G·m), dL/d(W h_{t-1}) (n, B, G·m))."""


class RecurrentCell(Cell, Protocol):
    """A cell `RecurrentNetwork` stacks (rnn, lstm, gru): its pre-activations per unit, its state, a layer's
    fast pass, one sampling step and the readable reference. Subclass it to get `network`."""

    gates: int  # G: pre-activations per unit, so U is (G·m, input) and W (G·m, m)
    state_parts: int  # vectors of m a layer's state holds (h; h and c for lstm)

    def network(self, layers: int, hidden: int, vocab_size: int, sigma: float = 0.01,
                dtype: str = "float64", heads: int = 1, context: int = 0) -> Network:
        """A `RecurrentNetwork` of this cell (``heads`` and ``context`` are an attention model's)."""
        return RecurrentNetwork(self, layers, hidden, vocab_size, sigma, dtype)

    def layer_buffers(self, n: int, B: int, m: int, dtype) -> Layer:
        """A layer's buffers and fast pass for windows of n steps over B streams."""

    def init_bias(self, b: np.ndarray, m: int) -> None:
        """Set a layer's initial bias ``b`` (G·m,) in place (it starts at zero)."""

    def step(self, a: np.ndarray, W: np.ndarray, state: np.ndarray, next_state: np.ndarray) -> np.ndarray:
        """One sampling step of a layer from ``state`` (B, state_parts·m), ``a`` (B, G·m) the input side: writes
        ``next_state`` and returns the layer's output h (B, m), each row computed on its own (`row_product`)."""

    def reference_forward(self, U, W, b, X, state):
        """Textbook forward over X (n, B, d) from ``state`` (B, state_parts·m): (outputs (n, B, m), the state
        after step n, a cache for `reference_backward`)."""

    def reference_backward(self, U, W, b, X, cache, dH):
        """Textbook backward from dL/d(outputs) ``dH`` (n, B, m): (dU, dW, db, dX)."""


def row_product(a: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``a`` (B, n) times ``matrix`` (n, k), each row a product of its own: (B, k).

    For sampling. BLAS computes a row of one (B, n) product with different rounding for different B, so a
    sampled text would change with how many are drawn beside it; one (1, n) product per row gives every
    row the numbers it gets alone (``a[i:i+1].dot(matrix)``), whatever B is.
    """
    if a.shape[0] == 1:
        return a.dot(matrix)  # the same numbers, with less overhead
    return np.matmul(a[:, None, :], matrix)[:, 0, :]


def blas_may_run_threads() -> bool:
    """Whether BLAS may run threads of its own beside a workspace's: none of the variables that ask it for one
    thread says 1. (They act when NumPy loads; the command line sets them before that.) A run whose streams are
    split over threads while BLAS splits each product as well is about half as fast on two CPUs."""
    return not any(os.environ.get(name, "").strip() == "1" for name in BLAS_THREAD_VARIABLES)


def default_threads(batch: int, per_thread: int = MIN_STREAMS_PER_THREAD) -> int:
    """How many threads a workspace gives ``batch`` streams: one per CPU this process may run on,
    but at most one per ``per_thread`` streams, so a single stream always runs in one thread."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, batch // per_thread))


@dataclass
class Params:
    """Every parameter as a view into one flat buffer, so clipping and the optimizer are whole-array calls."""

    flat: np.ndarray  # (n_params,) every parameter, in ``network.shapes`` order
    network: Network  # the network whose layout this is
    arrays: dict[str, np.ndarray] = field(init=False, repr=False)  # name -> view into ``flat``

    def __post_init__(self):
        self.arrays = {}
        offset = 0
        for name, shape in self.network.shapes.items():
            size = int(np.prod(shape))
            self.arrays[name] = self.flat[offset : offset + size].reshape(shape)
            offset += size
        assert offset == self.flat.size, "flat buffer does not match the parameter shapes"

    @property
    def hidden(self) -> int:
        """m, the hidden units of each layer."""
        return self.network.hidden

    @property
    def vocab_size(self) -> int:
        """K, the characters in the vocabulary."""
        return self.network.vocab_size

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def copy(self) -> Params:
        """An independent copy."""
        return Params(self.flat.copy(), self.network)


@dataclass
class LossAndGrads:
    """What one forward and backward pass over a window returns."""

    loss: float  # summed cross-entropy over the window (mean over streams when batched)
    grads: Params  # dL/dθ keyed like the parameters (mean over streams when batched)
    last_state: np.ndarray  # recurrent state after the last step, (S,) or (B, S)


def sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) as 0.5 tanh(x / 2) + 0.5: the same function, and it cannot overflow."""
    np.multiply(x, 0.5, out)
    np.tanh(out, out)
    np.multiply(out, 0.5, out)
    np.add(out, 0.5, out)
    return out


def softmax_rows(logits: np.ndarray, out: np.ndarray, row: np.ndarray) -> None:
    """``out`` = softmax of each row of ``logits`` (R, K), shifted by the row's max; ``logits`` is overwritten."""
    np.maximum.reduce(logits, axis=1, keepdims=True, out=row)
    np.subtract(logits, row, logits)
    np.exp(logits, logits)
    np.add.reduce(logits, axis=1, keepdims=True, out=row)
    np.divide(logits, row, out)


class RecurrentNetwork:
    """A `Network` of ``layers`` layers of one `RecurrentCell` ``cell`` (hidden size m, vocabulary K) under a
    softmax, with its state carried across windows: the rnn, lstm and gru cells' networks."""

    carries_state = True

    def __init__(self, cell: RecurrentCell, layers: int, hidden: int, vocab_size: int, sigma: float = 0.01,
                 dtype: str = "float64"):
        self.cell, self.layers, self.hidden, self.vocab_size = cell, layers, hidden, vocab_size
        self.sigma, self.dtype = sigma, dtype
        self.state_size = layers * cell.state_parts * hidden  # S: per stream, every layer's h (and c) side by side
        self.shapes = self.layout()
        self.param_count = sum(int(np.prod(shape)) for shape in self.shapes.values())
        self.decayed = tuple(name for name, shape in self.shapes.items() if len(shape) == 2)  # U, W, V

    def layout(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's shape in buffer order: the softmax's c and V, then each layer's U, W and b."""
        m, K, G = self.hidden, self.vocab_size, self.cell.gates
        shapes = {"c": (K,), "V": (K, m)}
        for layer in range(1, self.layers + 1):
            U, W, b = self.layer_names(layer)
            shapes.update({U: (G * m, K if layer == 1 else m), W: (G * m, m), b: (G * m,)})
        return shapes

    def layer_names(self, layer: int) -> tuple[str, str, str]:
        """(U, W, b) of layer ``layer`` (from 1): plain for one layer, ``U_2`` and so on for a stack."""
        if self.layers == 1:
            return "U", "W", "b"
        return f"U_{layer}", f"W_{layer}", f"b_{layer}"

    def state_slice(self, layer: int) -> slice:
        """Where layer ``layer`` (from 1) keeps its state in a stream's row of S numbers."""
        width = self.cell.state_parts * self.hidden
        return slice((layer - 1) * width, layer * width)

    def describe(self) -> str:
        """E.g. ``lstm, 2 layers of 128`` or ``rnn, 1 layer of 100``."""
        return f"{self.cell.name}, {self.layers} layer{'s' if self.layers > 1 else ''} of {self.hidden}"

    # ------------------------------------------------------------------ parameters

    def zeros(self, dtype=None) -> Params:
        """All-zero parameters (also the gradient and optimizer buffers)."""
        return Params(np.zeros(self.param_count, dtype=dtype or self.dtype), self)

    def init(self, rng: np.random.Generator) -> Params:
        """U, W of each layer, then V, ~ N(0, sigma^2) drawn in that order from ``rng``; the biases as the cell
        sets them (zero, except the lstm's forget gate). For one layer that is U, W, V, as the assignment draws."""
        params = self.zeros()
        names = [name for layer in range(1, self.layers + 1) for name in self.layer_names(layer)[:2]] + ["V"]
        with np.errstate(over="ignore"):  # an absurd sigma gives inf, which training then names as a non-finite loss
            for name in names:
                params[name][...] = self.sigma * rng.standard_normal(params[name].shape)
        for layer in range(1, self.layers + 1):
            self.cell.init_bias(params[self.layer_names(layer)[2]], self.hidden)
        return params

    # ------------------------------------------------------------------ windows, texts and steps

    def workspace(self, seq_length: int, batch: int = 1, dtype=None, threads: int | None = None,
                  dropout: float = 0.0, average: bool = True):
        """Preallocated buffers for windows of ``seq_length`` steps over ``batch`` streams, split over
        ``threads`` threads (by default `default_threads`); ``dropout`` > 0 only while training (or for
        masks given). Without ``average`` (one thread only), the loss and gradients are sums over the streams."""
        dtype = dtype or self.dtype
        threads = self.default_threads(batch) if threads is None else max(1, min(int(threads), batch))
        if threads > 1:
            return ParallelWorkspace(self, seq_length, batch, dtype, threads, dropout)
        return self.single_workspace(seq_length, batch, dtype, dropout, average)

    def default_threads(self, batch: int) -> int:
        """One per CPU, at most one per MIN_STREAMS_PER_THREAD streams."""
        return default_threads(batch)

    def single_workspace(self, seq_length: int, batch: int, dtype, dropout: float = 0.0, average: bool = True):
        """A workspace that runs every stream in the calling thread (a cell's network may have a faster one)."""
        return StackWorkspace(self, seq_length, batch, dtype, dropout, average)

    def text_loss(self, params: Params, ids: np.ndarray, state: np.ndarray, chunk: int) -> float:
        """Read ``ids`` as one stream from ``state`` (1, S), ``chunk`` ids a pass, the state carried from each
        pass to the next; returns the summed loss of predicting ids[1:]."""
        total = 0.0
        workspaces: dict = {}
        predicted = ids.size - 1
        for start in range(0, predicted, chunk):
            length = min(chunk, predicted - start)
            work = workspaces.get(length)
            if work is None:
                work = workspaces[length] = self.workspace(length, 1, params.flat.dtype, threads=1)
            inputs = ids[start : start + length].reshape(-1, 1)
            targets = ids[start + 1 : start + length + 1].reshape(-1, 1)
            work.forward(params, inputs, state)
            total += float(work.loss(targets))
            state = work.last_state.copy()
        return total

    def sampling_state(self, state: np.ndarray) -> np.ndarray:
        """The recurrent state itself: sampling steps from where the streams stand."""
        return state

    def step(self, params: Params, state: np.ndarray, x: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """One step for sampling from ``state`` (B, S) or (S,) reading ids ``x``: (next state, p (B, K) or (K,))."""
        single = state.ndim == 1
        state = state.reshape(1, -1) if single else state
        x = np.atleast_1d(np.asarray(x))
        next_state = np.empty_like(state)
        inputs = None
        for layer in range(1, self.layers + 1):
            U, W, b = (params[name] for name in self.layer_names(layer))
            a = U.T[x] + b if layer == 1 else row_product(inputs, U.T) + b  # (B, G·m) input side
            where = self.state_slice(layer)
            inputs = self.cell.step(a, W, state[:, where], next_state[:, where])
        p = row_product(inputs, params["V"].T)
        np.add(p, params["c"], p)
        np.subtract(p, np.maximum.reduce(p, axis=-1, keepdims=True), p)
        np.exp(p, p)
        np.divide(p, np.add.reduce(p, axis=-1, keepdims=True), p)
        return (next_state[0], p[0]) if single else (next_state, p)

    # ------------------------------------------------------------------ memory, before any of it is allocated

    def training_bytes(self, seq_length: int, batch: int, dtype=None, dropout: float = 0.0, threads: int = 1) -> int:
        """Memory a training run allocates for the model: θ, its best copy, gradients, optimizer state
        and its scratch (at most 7 × the parameters), plus a workspace for ``batch`` streams (and dropout's masks),
        and gradients for each thread beyond the first."""
        size = np.dtype(dtype or self.dtype).itemsize
        n, B, m, K, G, L = seq_length, batch, self.hidden, self.vocab_size, self.cell.gates, self.layers
        per_row = L * (6 * G * m + 6 * m) + 3 * K + m  # a layer's pre-activations, gates, grads and states
        if dropout:
            per_row += L * m * 3  # masks, dropped outputs and the uniforms they are drawn from (up to 8 bytes)
        extra = (max(1, min(threads, B)) - 1) * 2 * self.param_count  # each further thread's gradients and copies
        return size * (7 * self.param_count + extra + (n + 1) * B * per_row + 4 * B * self.state_size) + 8 * 3 * n * B

    def sampling_bytes(self, streams: int) -> int:
        """Memory of one step of ``streams`` sampling streams beside the parameters (states, probabilities, draws)."""
        size = np.dtype(self.dtype).itemsize
        return size * (self.param_count + 8 * streams * (self.state_size + self.cell.gates * self.hidden
                                                         + self.vocab_size))


class DropoutMasks:
    """Inverted-dropout masks of one ``shape``, drawn from a Generator in one call: a recurrent stack's
    (L, n, B, m) for every layer, step and stream, a gpt's (2L + 1, B, n, m) for its embeddings and branches."""

    def __init__(self, shape: tuple[int, ...], dtype, p: float):
        self.p = p
        self.masks = np.zeros(shape, dtype=dtype)
        # uniforms in the workspace's precision where the Generator has it (float32 draws are cheaper)
        self._uniform = np.zeros(self.masks.shape, dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Masks for the next window: 0 with probability p, else 1/(1-p)."""
        rng.random(dtype=self._uniform.dtype, out=self._uniform)
        np.greater_equal(self._uniform, self.p, out=self.masks, casting="unsafe")
        np.multiply(self.masks, 1.0 / (1.0 - self.p), out=self.masks)
        return self.masks


class StackWorkspace:
    """Buffers and the fast pass for any cell and any depth, for ``batch`` streams in this thread.

    Layer by layer, the input side of every step is one product for the whole window (a gather of U's
    columns for the one-hot layer 1); only the recurrent product W h_{t-1} runs step by step, inside the
    cell. Backwards, the softmax's gradient reaches the top layer in one product, each cell runs its loop
    back in time, and dL/dU, dL/dW, dL/db and the gradient for the layer below are one product each.

    With ``average`` the loss and gradients are means over the streams, without, sums. With ``dropout`` it
    draws masks itself (`draw_masks`); masks drawn elsewhere (a `ParallelWorkspace`'s, the gradient
    check's) work either way.
    """

    threads = 1

    def __init__(self, network: RecurrentNetwork, seq_length: int, batch: int, dtype, dropout: float = 0.0,
                 average: bool = True):
        n, B, m, K = seq_length, batch, network.hidden, network.vocab_size
        self.network, self.shape = network, (n, B)
        self._divisor = B if average else 1
        self.layers = [network.cell.layer_buffers(n, B, m, dtype) for _ in range(network.layers)]
        self._dropped = None  # each layer's output after dropout, (n, B, m), allocated with the first masks
        self._masks = DropoutMasks((network.layers, n, B, m), dtype, dropout) if dropout else None
        self._logits = np.zeros((n * B, K), dtype=dtype)
        self._P = np.zeros((n * B, K), dtype=dtype)  # p_t, then dL/do_t
        self._row = np.zeros((n * B, 1), dtype=dtype)
        self._ones_rows = np.ones(n * B, dtype=dtype)
        self._onehot = np.zeros((n * B, K), dtype=dtype)  # layer 1's x_t as rows, for dL/dU_1
        self._hot = np.zeros(0, dtype=np.intp)  # where the last window's ones are
        self._dX = np.zeros((n * B, m), dtype=dtype)  # dL/d(a layer's output), from the layer above
        self._target_rows = np.arange(n * B) * K
        self.grads = network.zeros(dtype)
        self.last_state = np.zeros((B, network.state_size), dtype=dtype)
        self._top = None  # the softmax's input, (n·B, m)

    def draw_masks(self, rng: np.random.Generator) -> np.ndarray | None:
        """Inverted-dropout masks (L, n, B, m) for the next window, from ``rng``: 0 or 1/(1-p); None without dropout."""
        return self._masks.draw(rng) if self._masks is not None else None

    def forward(self, params: Params, inputs: np.ndarray, state: np.ndarray, masks: np.ndarray | None = None) -> None:
        """p_1..p_n for ``inputs`` (n, B) from ``state`` (B, S); the state after step n lands in ``last_state``."""
        assert inputs.shape == self.shape, "inputs must be (seq_length, batch)"
        net, (n, B) = self.network, self.shape
        if masks is not None and self._dropped is None:
            self._dropped = [np.zeros_like(layer.output) for layer in self.layers]
        below = None  # the layer below's output (after dropout), (n·B, m)
        for index, layer in enumerate(self.layers):
            U, W, b = (params[name] for name in net.layer_names(index + 1))
            A = layer.A.reshape(n * B, -1)  # the input side of every step's pre-activations
            if index == 0:
                np.take(U.T, inputs.reshape(-1), axis=0, out=A)  # U x_t is column x_t of U
            else:
                np.dot(below, U.T, A)
            np.add(A, b, A)
            where = net.state_slice(index + 1)
            layer.forward(W, state[:, where], self.last_state[:, where])
            below = layer.output.reshape(n * B, -1)
            if masks is not None:
                np.multiply(below, masks[index].reshape(n * B, -1), self._dropped[index].reshape(n * B, -1))
                below = self._dropped[index].reshape(n * B, -1)
        self._top = below
        np.dot(below, params["V"].T, self._logits)
        np.add(self._logits, params["c"], self._logits)
        softmax_rows(self._logits, self._P, self._row)

    def loss(self, targets: np.ndarray) -> np.floating:
        """Summed cross-entropy of the filled probabilities against ``targets`` (n, B), over the divisor."""
        return -np.log(self._P.reshape(-1).take(self._target_rows + targets.reshape(-1))).sum() / self._divisor

    def backward(self, params: Params, inputs: np.ndarray, targets: np.ndarray,
                 masks: np.ndarray | None = None) -> Params:
        """Backprop through time after ``forward``; returns ``self.grads``."""
        net, g, (n, B) = self.network, self.grads, self.shape
        dO = self._P
        dO.reshape(-1)[self._target_rows + targets.reshape(-1)] -= 1.0  # dL/do_t = p_t - y_t
        np.dot(dO.T, self._top, g["V"])  # dL/dV = sum_t dL/do_t (h_t^L)^T
        np.dot(self._ones_rows, dO, g["c"])
        dX = self._dX
        np.dot(dO, params["V"], dX)  # dL/dh_t^L from the softmax, every step at once
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            U, W = (params[name] for name in net.layer_names(index + 1)[:2])
            gU, gW, gb = (g[name] for name in net.layer_names(index + 1))
            if masks is not None:
                np.multiply(dX, masks[index].reshape(n * B, -1), dX)  # through the dropout of this layer's output
            dA_in, dA_rec = layer.backward(W, dX.reshape(n, B, -1))
            dA_in, dA_rec = dA_in.reshape(n * B, -1), dA_rec.reshape(n * B, -1)
            np.dot(dA_rec.T, layer.H[:-1].reshape(n * B, -1), gW)  # dL/dW = sum_t dL/da_t h_{t-1}^T
            np.dot(self._ones_rows, dA_in, gb)
            if index == 0:
                # dL/dU_1 = sum_t dL/da_t x_t^T as one product with the one-hot rows (clear the last window's
                # ones, set this one's). Summing rows per character after a sort (np.add.reduceat) is exact
                # too, but measured 1.2-2x slower here from 25 to 1,600 rows of 512.
                onehot = self._onehot.reshape(-1)
                onehot[self._hot] = 0.0
                self._hot = self._target_rows + inputs.reshape(-1)
                onehot[self._hot] = 1.0
                np.dot(dA_in.T, self._onehot, gU)
            else:
                below = self._dropped[index - 1] if masks is not None else self.layers[index - 1].output
                np.dot(dA_in.T, below.reshape(n * B, -1), gU)
                np.dot(dA_in, U, dX)  # dL/d(the output of the layer below)
        if self._divisor != 1:
            np.divide(g.flat, self._divisor, g.flat)
        return g

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, state: np.ndarray,
                       masks: np.ndarray | None = None) -> float:
        """Forward and backward over one window; gradients land in ``self.grads``, the last state in ``last_state``."""
        self.forward(params, inputs, state, masks)
        loss = self.loss(targets)
        self.backward(params, inputs, targets, masks)
        return float(loss)


class ThreadedWorkspace:
    """What a workspace whose streams are split into groups, each group's pass run in a thread of its own on a
    workspace of its own (a part), shares: the threads meet once per window, to add up their gradients. NumPy
    releases the GIL inside BLAS and elementwise loops on more than a few hundred numbers, so the groups really
    run in parallel. Each thread makes its own BLAS calls, so such a process is best run with one BLAS thread
    (the CLI sets that up before NumPy loads; see `textgen.cli.use_one_blas_thread`). Dropout masks are drawn
    once for the whole batch (``masks``), so a run's masks do not depend on how its streams are split; the
    parts apply the slices of them that are theirs (along ``mask_axis``)."""

    mask_axis = 2  # the axis of a window's masks that runs over its streams

    def __init__(self, parts: list, streams: list[slice], masks, seq_length: int, batch: int, state_size: int,
                 dtype, average: bool = True):
        self.shape = (seq_length, batch)
        self.threads = len(parts)
        self._parts, self._streams, self._masks = parts, streams, masks
        self._divisor = batch if average else 1
        self.grads = parts[0].grads  # the other parts' sums are added into the first's
        self.last_state = np.zeros((batch, state_size), dtype=dtype)
        self._pool = ThreadPoolExecutor(len(parts) - 1, "textgen-workspace")

    @staticmethod
    def split(batch: int, threads: int) -> list[slice]:
        """``batch`` streams in ``threads`` groups as even as can be, in order."""
        assert 2 <= threads <= batch, "a parallel workspace needs 2 to batch threads"
        bounds = np.linspace(0, batch, threads + 1).astype(int)
        return [slice(int(a), int(b)) for a, b in pairwise(bounds)]

    def draw_masks(self, rng: np.random.Generator) -> np.ndarray | None:
        """Dropout's masks for the whole batch, as one workspace draws them (None without dropout)."""
        return None if self._masks is None else self._masks.draw(rng)

    def _run(self, task, *args) -> list:
        """[task(part, streams, *args) for each part]: the first in this thread, the others in the pool."""
        pending = [self._pool.submit(task, part, s, *args) for part, s in zip(self._parts[1:], self._streams[1:])]
        first = task(self._parts[0], self._streams[0], *args)
        return [first] + [future.result() for future in pending]

    def _mean_grads(self) -> Params:
        g = self.grads
        for part in self._parts[1:]:
            np.add(g.flat, part.grads.flat, g.flat)
        if self._divisor != 1:
            np.divide(g.flat, self._divisor, g.flat)
        return g

    def _slice(self, masks, s):
        """The masks of streams ``s`` (None without dropout)."""
        return None if masks is None else masks[(slice(None),) * self.mask_axis + (s,)]

    def forward(self, params: Params, inputs: np.ndarray, state: np.ndarray, masks=None) -> None:
        """As the parts' ``forward``, for the whole batch."""
        def task(part, s):
            part.forward(params, inputs[:, s], state[s], self._slice(masks, s))
            self.last_state[s] = part.last_state

        self._run(task)

    def loss(self, targets: np.ndarray) -> np.floating:
        """As the parts' ``loss``, for the whole batch."""
        return sum(part.loss(targets[:, s]) for part, s in zip(self._parts, self._streams)) / self._divisor

    def backward(self, params: Params, inputs: np.ndarray, targets: np.ndarray, masks=None) -> Params:
        """As the parts' ``backward``, for the whole batch."""
        self._run(lambda part, s: part.backward(params, inputs[:, s], targets[:, s], self._slice(masks, s)))
        return self._mean_grads()

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, state: np.ndarray,
                       masks=None) -> float:
        """As the parts' ``loss_and_grads``, for the whole batch."""
        assert inputs.shape == self.shape, "inputs must be (seq_length, batch)"

        def task(part, s):
            loss = part.loss_and_grads(params, inputs[:, s], targets[:, s], state[s], self._slice(masks, s))
            self.last_state[s] = part.last_state
            return loss

        loss = sum(self._run(task)) / self._divisor
        self._mean_grads()
        return loss


class ParallelWorkspace(ThreadedWorkspace):
    """A recurrent network's streams split into ``threads`` groups, each run by a stack workspace of its own
    (see `ThreadedWorkspace`); the masks are (L, n, B, m)."""

    def __init__(self, network: RecurrentNetwork, seq_length: int, batch: int, dtype="float64", threads: int = 2,
                 dropout: float = 0.0):
        streams = self.split(batch, threads)
        # the parts take the masks drawn here, so with dropout they are stack workspaces without masks of their own
        parts = [StackWorkspace(network, seq_length, s.stop - s.start, dtype, average=False) if dropout
                 else network.single_workspace(seq_length, s.stop - s.start, dtype, average=False)
                 for s in streams]
        masks = DropoutMasks((network.layers, seq_length, batch, network.hidden), dtype, dropout) if dropout else None
        super().__init__(parts, streams, masks, seq_length, batch, network.state_size, dtype)


# ---------------------------------------------------------------------- the reference pass

def reference_loss_and_grads(network: RecurrentNetwork, params: Params, inputs, targets, state,
                             masks=None) -> LossAndGrads:
    """The whole window written out plainly, for the tests to hold every fast pass against.

    ``inputs``/``targets`` (n, B) ids, ``state`` (B, S), ``masks`` (L, n, B, m) or None. Layer 1 reads
    real one-hot vectors; each cell's ``reference_forward``/``reference_backward`` is its textbook form,
    step by step. Returns the loss and gradients as means over the streams, and the last state (B, S).
    """
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    n, B = inputs.shape
    K, cell = network.vocab_size, network.cell
    X = np.eye(K, dtype=params.flat.dtype)[inputs]  # (n, B, K) one-hot
    caches, last_state = [], np.zeros_like(state)
    for layer in range(1, network.layers + 1):
        U, W, b = (params[name] for name in network.layer_names(layer))
        where = network.state_slice(layer)
        H, last_state[:, where], cache = cell.reference_forward(U, W, b, X, state[:, where])
        caches.append((X, cache))
        X = H if masks is None else H * masks[layer - 1]
    logits = X @ params["V"].T + params["c"]  # (n, B, K)
    P = np.exp(logits - logits.max(axis=2, keepdims=True))
    P /= P.sum(axis=2, keepdims=True)
    steps, streams = np.meshgrid(np.arange(n), np.arange(B), indexing="ij")
    loss = -np.log(P[steps, streams, targets]).sum() / B
    grads = network.zeros(params.flat.dtype)
    dO = P.copy()
    dO[steps, streams, targets] -= 1.0
    grads["V"][...] = np.einsum("tbk,tbm->km", dO, X)
    grads["c"][...] = dO.sum(axis=(0, 1))
    dX = dO @ params["V"]
    for layer in range(network.layers, 0, -1):
        U, W, b = (params[name] for name in network.layer_names(layer))
        if masks is not None:
            dX = dX * masks[layer - 1]
        X_in, cache = caches[layer - 1]
        dU, dW, db, dX = cell.reference_backward(U, W, b, X_in, cache, dX)
        for name, value in zip(network.layer_names(layer), (dU, dW, db)):
            grads[name][...] = value
    grads.flat[...] /= B
    return LossAndGrads(float(loss), grads, last_state)
