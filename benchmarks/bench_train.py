"""Training speed of textgen's NumPy models beside the textbook loop and PyTorch, in characters per second.

    python benchmarks/bench_train.py                         # tinyshakespeare from ../shared/data
    python benchmarks/bench_train.py CORPUS --rounds 5 --seconds 3
    python benchmarks/bench_train.py --only exact-f32 batch64-f32 --no-epoch
    python benchmarks/bench_train.py --only lstm-b64 torch-lstm-b64 gru-b64 torch-gru-b64 --no-epoch
    python benchmarks/bench_train.py --only gpt-4x128 torch-gpt-4x128 gpt-6x384 torch-gpt-6x384 --no-epoch \
        --torch-python /path/to/a/python/with/torch     # one that has PyTorch and textgen's dependencies

Every implementation runs in a child process of its own, started with the BLAS thread count it
should use (OPENBLAS_NUM_THREADS and friends only take effect before NumPy or PyTorch loads), and
the parent interleaves them: in each round every child trains for about --seconds, in a rotating
order, so a burst of load on the machine hits all of them alike. The table shows the median over
the rounds, the ratio to the textbook loop and each child's peak resident memory. Then one whole
epoch of the exact float32 trainer is timed, and 10,000 characters are sampled.

The textgen rows drive the real `textgen.trainer.train()` (progress bar off, default schedule of
samples and logs), continuing one TrainState from round to round, so the numbers are what a user
gets. The textbook row is tests/reference.py (column vectors, one-hot x_t, np.outer per step).
PyTorch (nn.RNN tanh, nn.LSTM or nn.GRU + Linear + Adagrad, gradients clamped to [-5, 5], one-hot
input, the same windows) is skipped when it is not importable. The gated rows are 2 layers of 128
units in float32, at batch 1 (one thread each) and batch 64 (two threads each: textgen's workspace
threads, PyTorch's intra-op threads). The gpt rows are textgen's transformer beside a PyTorch one of the same
shape written here (`TorchGPT`: eager, the same pre-norm blocks, causal attention written out as textgen
computes it, tanh GELU, an untied read-out, AdamW, gradients clamped to [-5, 5]), in float32 on one thread, at
nanoGPT's CPU configuration (4 layers of 128, 4 heads, context 64, batch 12) and at 6 layers of 384, 6 heads,
context 256, batch 12; both draw windows at random positions; the -t2 rows are the same on two threads.
--torch-python runs the PyTorch children with
another interpreter (one that has PyTorch; the repository is put on its path). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
SEQ_LENGTH, HIDDEN, ETA, CLIP = 25, 100, 0.1, 5.0
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# name: (label, batch streams, dtype, BLAS or PyTorch threads, Workspace threads (None: its default),
#        (cell, layers, hidden))
ASSIGNMENT = ("rnn", 1, HIDDEN)
GATED_LAYERS, GATED_HIDDEN = 2, 128
IMPLEMENTATIONS = {
    "textbook": ("textbook NumPy loop (tests/reference.py)", 1, "float64", 1, None, ASSIGNMENT),
    "exact-f64": ("textgen exact trainer, float64", 1, "float64", 1, None, ASSIGNMENT),
    "exact-f32": ("textgen exact trainer, float32", 1, "float32", 1, None, ASSIGNMENT),
    "batch64-f32": ("textgen batched B=64, float32", 64, "float32", 1, None, ASSIGNMENT),
    "batch64-f32-blas2": ("textgen batched B=64, float32, BLAS threads", 64, "float32", 2, 1, ASSIGNMENT),
    "torch-b1": ("PyTorch nn.RNN, batch 1, float32", 1, "float32", 1, None, ASSIGNMENT),
    "torch-b64": ("PyTorch nn.RNN, B=64, float32", 64, "float32", 2, None, ASSIGNMENT),
}
for _cell in ("lstm", "gru"):
    _shape = (_cell, GATED_LAYERS, GATED_HIDDEN)
    _size = f"{GATED_LAYERS}x{GATED_HIDDEN}"
    IMPLEMENTATIONS.update({
        f"{_cell}-b1": (f"textgen {_cell.upper()} {_size}, batch 1, float32", 1, "float32", 1, None, _shape),
        f"torch-{_cell}-b1": (f"PyTorch nn.{_cell.upper()} {_size}, batch 1, float32", 1, "float32", 1, None, _shape),
        f"{_cell}-b64": (f"textgen {_cell.upper()} {_size}, B=64, float32", 64, "float32", 1, 2, _shape),
        f"torch-{_cell}-b64": (f"PyTorch nn.{_cell.upper()} {_size}, B=64, float32", 64, "float32", 2, None,
                               _shape),
    })
# the transformer rows: (cell, layers, hidden, heads, context), batch 12, on one thread (nanoGPT's CPU shape, and
# a wider, deeper one over longer windows) and on two (textgen's windows split over two threads, PyTorch's
# intra-op threads)
GPT_BATCH = 12
for _name, _shape in (("gpt-4x128", ("gpt", 4, 128, 4, 64)), ("gpt-6x384", ("gpt", 6, 384, 6, 256))):
    _size = f"{_shape[1]}x{_shape[2]}, {_shape[3]} heads, context {_shape[4]}"
    IMPLEMENTATIONS.update({
        _name: (f"textgen gpt {_size}, B={GPT_BATCH}, float32", GPT_BATCH, "float32", 1, 1, _shape),
        f"torch-{_name}": (f"PyTorch GPT {_size}, B={GPT_BATCH}, float32", GPT_BATCH, "float32", 1, None, _shape),
        f"{_name}-t2": (f"textgen gpt {_size}, B={GPT_BATCH}, float32, 2 threads", GPT_BATCH, "float32", 1, 2,
                        _shape),
        f"torch-{_name}-t2": (f"PyTorch GPT {_size}, B={GPT_BATCH}, float32, 2 threads", GPT_BATCH, "float32", 2,
                              None, _shape),
    })
# each textgen row and the PyTorch row it is compared with
TORCH_COUNTERPART = {"exact-f32": "torch-b1", "batch64-f32": "torch-b64", "batch64-f32-blas2": "torch-b64",
                     **{f"{cell}-b{batch}": f"torch-{cell}-b{batch}" for cell in ("lstm", "gru") for batch in (1, 64)},
                     **{f"gpt-{size}{threads}": f"torch-gpt-{size}{threads}" for size in ("4x128", "6x384")
                        for threads in ("", "-t2")}}


# ----------------------------------------------------------------------------- children


def load_corpus(path: str):
    """(ids, vocab) of the whole file, as `textgen train` would encode it."""
    from textgen.vocab import CharVocab

    text = Path(path).read_text(encoding="utf-8")
    vocab = CharVocab.from_texts([text])
    return vocab.encode(text), vocab


class TextgenRunner:
    """Continues one TrainState through `train()`, ``updates`` at a time."""

    def __init__(self, ids, vocab, batch: int, dtype: str, workspace_threads: int | None, shape=ASSIGNMENT):
        import numpy as np

        from textgen.config import RNNConfig
        from textgen.trainer import TrainState

        self.ids, self.vocab, self.batch = ids, vocab, batch
        self.threads = workspace_threads  # TrainConfig.threads: None lets the trainer choose
        cell, layers, hidden, *attention = shape
        self.window, self.optimizer = SEQ_LENGTH, "adagrad"
        if attention:  # the transformer: windows of its context, AdamW
            heads, self.window = attention
            self.model = RNNConfig(hidden=hidden, dtype=dtype, cell=cell, layers=layers, heads=heads,
                                   context=self.window)
            self.optimizer = "adamw"
        else:
            self.model = RNNConfig(hidden=hidden, dtype=dtype, cell=cell, layers=layers)
        self.rng = np.random.default_rng(1)
        self.state = TrainState.fresh(self.model, vocab.size, batch, self.rng, optimizer=self.optimizer)

    def workspace_threads(self) -> int:
        from textgen.models import network_of

        return network_of(self.model, self.vocab.size).workspace(self.window, self.batch, threads=self.threads).threads

    def run(self, updates: int) -> int:
        from textgen.trainer import TrainConfig, train

        eta = ETA if self.optimizer == "adagrad" else 1e-3
        config = TrainConfig(seq_length=self.window, eta=eta, clip=CLIP, batch_size=self.batch,
                             updates=self.state.update + updates, threads=self.threads, optimizer=self.optimizer)
        train(self.ids, self.vocab, config, self.rng, self.model, state=self.state, progress=False)
        return updates * self.window * self.batch


class TextbookRunner:
    """tests/reference.py's `textbook_training`, from the same initialisation every time."""

    def __init__(self, ids, vocab):
        import numpy as np

        spec = importlib.util.spec_from_file_location("reference", REPO / "tests" / "reference.py")
        reference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reference)
        self.train = reference.textbook_training
        rng = np.random.default_rng(1)
        K, m = vocab.size, HIDDEN
        self.params = {name: 0.01 * rng.standard_normal(shape) for name, shape in
                       (("U", (m, K)), ("W", (m, m)), ("V", (K, m)))}
        self.params.update(b=np.zeros(m), c=np.zeros(K))
        self.ids = ids.astype(np.int64)

    def run(self, updates: int) -> int:
        self.train(**self.params, ids=self.ids, n_updates=updates, seq_length=SEQ_LENGTH, eta=ETA, clip=CLIP)
        return updates * SEQ_LENGTH


class TorchRunner:
    """nn.RNN (tanh), nn.LSTM or nn.GRU + Linear + Adagrad with the same windows, loss, eta and clipping as textgen."""

    def __init__(self, ids, vocab, batch: int, threads: int, shape=ASSIGNMENT):
        import numpy as np
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(1)
        self.torch, self.batch, self.K = torch, batch, vocab.size
        cell, layers, hidden = shape
        if cell == "rnn":
            self.rnn = torch.nn.RNN(vocab.size, hidden, num_layers=layers, nonlinearity="tanh")
        else:
            self.rnn = getattr(torch.nn, cell.upper())(vocab.size, hidden, num_layers=layers)
        self.out = torch.nn.Linear(hidden, vocab.size)
        self.params = list(self.rnn.parameters()) + list(self.out.parameters())
        with torch.no_grad():
            for p in self.params:  # as the assignment: weights ~ N(0, 0.01^2), biases 0
                p.normal_(0.0, 0.01) if p.dim() == 2 else p.zero_()
        self.optimizer = torch.optim.Adagrad(self.params, lr=ETA)
        self.ids = torch.from_numpy(ids.astype(np.int64))
        per_stream = (len(ids) - 1) // batch
        self.offsets = (torch.arange(SEQ_LENGTH)[:, None] + torch.arange(batch)[None, :] * per_stream)
        self.per_epoch = per_stream // SEQ_LENGTH
        self.update = 0
        zeros = torch.zeros(layers, batch, hidden)
        self.h = (zeros, zeros.clone()) if cell == "lstm" else zeros

    def run(self, updates: int) -> int:
        torch, F = self.torch, self.torch.nn.functional
        for _ in range(updates):
            window = self.update % self.per_epoch
            if window == 0:
                for part in self.h if isinstance(self.h, tuple) else (self.h,):
                    part.zero_()
            positions = self.offsets + window * SEQ_LENGTH
            x = F.one_hot(self.ids[positions], self.K).to(torch.float32)  # (n, B, K)
            y = self.ids[positions + 1]
            self.optimizer.zero_grad(set_to_none=True)
            states, h_last = self.rnn(x, self.h)
            logits = self.out(states)
            loss = F.cross_entropy(logits.reshape(-1, self.K), y.reshape(-1), reduction="sum") / self.batch
            loss.backward()
            for p in self.params:
                p.grad.clamp_(-CLIP, CLIP)
            self.optimizer.step()
            loss.item()  # the trainer reads every loss (smooth loss), so this one does too
            self.h = tuple(part.detach() for part in h_last) if isinstance(h_last, tuple) else h_last.detach()
            self.update += 1
        return updates * SEQ_LENGTH * self.batch


class TorchGPT:
    """A PyTorch GPT of textgen's gpt shape, trained as textgen trains it (see the module's docstring)."""

    def __init__(self, ids, vocab, batch: int, threads: int, shape):
        import numpy as np
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(1)
        nn, F = torch.nn, torch.nn.functional
        _, layers, hidden, heads, context = shape
        self.torch, self.batch, self.context, self.K = torch, batch, context, vocab.size

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
                self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
                self.fc, self.out = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)
                self.register_buffer("mask", torch.triu(torch.full((context, context), float("-inf")), 1))

            def forward(self, x):
                B, T, C = x.shape
                q, k, v = (part.view(B, T, heads, C // heads).transpose(1, 2)
                           for part in self.qkv(self.ln1(x)).split(C, dim=2))
                weights = ((q @ k.transpose(-2, -1)) / (C // heads) ** 0.5 + self.mask[:T, :T]).softmax(-1)
                x = x + self.proj((weights @ v).transpose(1, 2).reshape(B, T, C))
                return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

        class Model(nn.Module):
            def __init__(self, K):
                super().__init__()
                self.E, self.P = nn.Embedding(K, hidden), nn.Embedding(context, hidden)
                self.blocks = nn.ModuleList(Block() for _ in range(layers))
                self.ln = nn.LayerNorm(hidden)
                self.V = nn.Parameter(0.02 * torch.randn(K, hidden))  # an untied read-out, as textgen's
                self.c = nn.Parameter(torch.zeros(K))

            def forward(self, x):
                z = self.E(x) + self.P.weight[: x.shape[1]]
                for block in self.blocks:
                    z = block(z)
                return self.ln(z) @ self.V.T + self.c

        self.model = Model(vocab.size)
        decay = {name for name, p in self.model.named_parameters() if p.dim() == 2 and name.startswith(("blocks", "V"))}
        decayed = [p for name, p in self.model.named_parameters() if name in decay]
        others = [p for name, p in self.model.named_parameters() if name not in decay]
        self.optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1},
                                            {"params": others, "weight_decay": 0.0}], lr=1e-3)
        self.ids = torch.from_numpy(ids.astype(np.int64))
        self.span = torch.arange(context + 1)
        self.generator = torch.Generator().manual_seed(1)

    def run(self, updates: int) -> int:
        torch, F = self.torch, self.torch.nn.functional
        for _ in range(updates):
            starts = torch.randint(0, len(self.ids) - self.context, (self.batch,), generator=self.generator)
            chunk = self.ids[starts[:, None] + self.span]
            logits = self.model(chunk[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, self.K), chunk[:, 1:].reshape(-1), reduction="sum") / self.batch
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for p in self.model.parameters():
                p.grad.clamp_(-CLIP, CLIP)
            self.optimizer.step()
            loss.item()
        return updates * self.context * self.batch


def make_runner(name: str, corpus: str):
    _, batch, dtype, threads, workspace_threads, shape = IMPLEMENTATIONS[name]
    ids, vocab = load_corpus(corpus)
    if name == "textbook":
        return TextbookRunner(ids, vocab)
    if name.startswith("torch-gpt"):
        return TorchGPT(ids, vocab, batch, threads, shape)
    if name.startswith("torch"):
        return TorchRunner(ids, vocab, batch, threads, shape)
    return TextgenRunner(ids, vocab, batch, dtype, workspace_threads, shape)


def peak_rss_mib() -> float:
    """This process's own peak resident memory (VmHWM; ru_maxrss would include the parent's at exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CHUNK_SECONDS, CHUNK_UPDATES = 1.0, 4  # each train() call of a round trains about this long, and this many updates


def child_rounds(name: str, corpus: str) -> None:
    """Serve the parent: one JSON command per stdin line, one JSON answer per stdout line."""
    runner = make_runner(name, corpus)
    updates = 20
    runner.run(updates)  # warm up (first-call allocations, BLAS thread start)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "threads":  # how many threads the trainer's Workspace uses (None: not textgen)
            workspace = getattr(runner, "workspace_threads", None)
            answer = {"threads": workspace() if workspace else None}
        elif command["cmd"] == "round":
            chars, start = 0, time.perf_counter()
            while time.perf_counter() - start < command["seconds"]:
                t0 = time.perf_counter()
                chars += runner.run(updates)
                # chunks of about CHUNK_SECONDS: long enough to amortise train()'s set-up (a user's run makes it
                # once; a large transformer's buffers take about 0.3 s to allocate and touch)
                updates = max(CHUNK_UPDATES, int(updates * CHUNK_SECONDS / max(time.perf_counter() - t0, 1e-6)))
            answer = {"chars": chars, "seconds": time.perf_counter() - start}
        else:
            answer = {"peak_rss_mib": peak_rss_mib()}
        print(json.dumps(answer), flush=True)
        if command["cmd"] == "stop":
            return


def child_epoch(corpus: str) -> None:
    """One whole epoch of the exact float32 trainer, from a fresh model."""
    import numpy as np

    from textgen.config import RNNConfig
    from textgen.trainer import TrainConfig, train, updates_per_epoch

    ids, vocab = load_corpus(corpus)
    start = time.perf_counter()
    state = train(ids, vocab, TrainConfig(epochs=1), np.random.default_rng(1), RNNConfig(dtype="float32"),
                  progress=False)
    seconds = time.perf_counter() - start
    assert state.update == updates_per_epoch(len(ids), SEQ_LENGTH)
    print(json.dumps({"seconds": seconds, "chars": state.update * SEQ_LENGTH, "smooth_loss": state.smooth_loss}))


def child_sample(corpus: str, length: int) -> None:
    """Generate ``length`` characters three times from a briefly trained float64 model."""
    import numpy as np

    from textgen.config import RNNConfig
    from textgen.sample import SampleConfig, generate
    from textgen.trainer import TrainConfig, train

    ids, vocab = load_corpus(corpus)
    rng = np.random.default_rng(1)
    state = train(ids, vocab, TrainConfig(updates=500), rng, RNNConfig(), progress=False)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        text = generate(state.params, vocab, SampleConfig(length=length), rng)
        times.append(time.perf_counter() - start)
        assert len(text) == length
    print(json.dumps({"seconds": statistics.median(times), "chars": length}))


# ----------------------------------------------------------------------------- parent


def child_env(threads: int) -> dict:
    env = dict(os.environ)
    env.update({variable: str(threads) for variable in THREAD_VARIABLES})
    return env


def spawn(arguments: list[str], threads: int, python: str | None = None) -> subprocess.Popen:
    command = [python or sys.executable, str(Path(__file__).resolve()), *arguments]
    env = child_env(threads)
    if python:  # another interpreter: it finds textgen in the repository
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def ask(child: subprocess.Popen, command: dict) -> dict:
    child.stdin.write(json.dumps(command) + "\n")
    child.stdin.flush()
    line = child.stdout.readline()
    if not line:
        raise SystemExit(f"a benchmark child stopped: {child.args}")
    return json.loads(line)


def run_once(arguments: list[str], threads: int) -> dict:
    child = spawn(arguments, threads)
    out, _ = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"benchmark child failed: {arguments}")
    return json.loads(out.strip().splitlines()[-1])


def torch_version() -> str | None:
    """The installed PyTorch's version, without importing it here (the parent stays small)."""
    if importlib.util.find_spec("torch") is None:
        return None
    return importlib.metadata.version("torch")


def environment() -> dict:
    import numpy as np

    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": f"{blas.get('name')} {blas.get('version')}",
        "torch": torch_version(),
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS), help="plain-text corpus (tinyshakespeare)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per implementation per round (3)")
    parser.add_argument("--only", nargs="+", choices=list(IMPLEMENTATIONS), help="run only these")
    parser.add_argument("--no-epoch", action="store_true", help="skip the whole-epoch timing")
    parser.add_argument("--sample-length", type=int, default=10_000, help="characters to generate (10000)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--torch-python", help="run the PyTorch rows with this interpreter (one with PyTorch)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "epoch":
        child_epoch(args.corpus)
        return 0
    if args.child == "sample":
        child_sample(args.corpus, args.sample_length)
        return 0
    if args.child:
        child_rounds(args.child, args.corpus)
        return 0

    if not Path(args.corpus).is_file():
        raise SystemExit(f"no corpus at {args.corpus}; pass the path of a plain-text file")
    names = args.only or list(IMPLEMENTATIONS)
    if torch_version() is None and not args.torch_python:
        skipped = [name for name in names if name.startswith("torch")]
        names = [name for name in names if name not in skipped]
        if skipped:
            print(f"PyTorch is not importable: skipping {', '.join(skipped)}", file=sys.stderr)
    env = environment()
    if args.torch_python:
        env["torch"] = subprocess.run([args.torch_python, "-c", "import torch; print(torch.__version__)"],
                                      capture_output=True, text=True).stdout.strip() or None
    load_before = os.getloadavg()
    print(f"corpus {args.corpus} ({Path(args.corpus).stat().st_size:,} bytes); {args.rounds} rounds x "
          f"{args.seconds:g} s; load average {load_before[0]:.2f}", file=sys.stderr)

    children = {name: spawn(["--child", name, args.corpus], IMPLEMENTATIONS[name][3],
                            args.torch_python if name.startswith("torch") else None) for name in names}
    workspace_threads = {name: ask(children[name], {"cmd": "threads"})["threads"] for name in names}
    speeds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            answer = ask(children[name], {"cmd": "round", "seconds": args.seconds})
            speeds[name].append(answer["chars"] / answer["seconds"])
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    memory = {name: ask(child, {"cmd": "stop"})["peak_rss_mib"] for name, child in children.items()}
    for child in children.values():
        child.wait()

    epoch = None if args.no_epoch else run_once(["--child", "epoch", args.corpus], 1)
    sampling = run_once(["--child", "sample", args.corpus, "--sample-length", str(args.sample_length)], 1)
    load_after = os.getloadavg()

    medians = {name: statistics.median(values) for name, values in speeds.items()}
    baseline = medians.get("textbook")
    print()
    print(f"NumPy {env['numpy']} ({env['blas']}), PyTorch {env['torch'] or '-'}, Python {env['python']}, "
          f"{env['cpus']} CPUs; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print()
    print("| implementation | BLAS (torch) threads | Workspace threads | chars/s (median) | min .. max "
          "| × textbook | × PyTorch (same model, batch, threads) | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        label, _, _, threads, _, _ = IMPLEMENTATIONS[name]
        ratio = f"{medians[name] / baseline:.1f}" if baseline else "-"
        rival = TORCH_COUNTERPART.get(name)
        versus = f"{medians[name] / medians[rival]:.2f}" if rival in medians else "-"
        print(f"| {label} | {threads} | {workspace_threads[name] or '-'} | {medians[name]:,.0f} "
              f"| {min(speeds[name]):,.0f} .. {max(speeds[name]):,.0f} | {ratio} | {versus} | {memory[name]:.0f} |")
    print()
    if epoch:
        print(f"one epoch, exact trainer float32 (1 BLAS thread): {epoch['seconds']:.1f} s for {epoch['chars']:,} "
              f"characters ({epoch['chars'] / epoch['seconds']:,.0f} chars/s), smooth loss {epoch['smooth_loss']:.2f}")
    print(f"sampling {sampling['chars']:,} characters with textgen.sample.generate: {sampling['seconds']:.2f} s "
          f"({sampling['chars'] / sampling['seconds']:,.0f} chars/s)")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "speeds": speeds, "medians": medians,
                                         "peak_rss_mib": memory, "epoch": epoch, "sampling": sampling,
                                         "load_average": [load_before, load_after]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
