"""textgen from Python, as in a notebook: train, watch, sample, score, continue. Uses only `textgen.*` names.

    python examples/notebook.py                        # the small book in corpora/, a minute or less
    python examples/notebook.py BOOK.txt --updates 50000

Each `# %%` block is a notebook cell (VS Code and Jupytext run them one by one).
"""

# %% Imports and the corpus
import argparse
from pathlib import Path

import textgen

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("corpus", nargs="?", default=str(Path(__file__).resolve().parent.parent / "corpora" /
                                                     "sample_book.txt"))
parser.add_argument("--updates", type=int, default=3000, help="updates to train for (default 3000)")
parser.add_argument("--out", default="runs/notebook", help="the run folder (replaced if it exists)")
args = parser.parse_args()


# %% Train, with a callback that keeps the validation curve (any object with on_log / on_sample /
# on_checkpoint / on_start / on_status methods will do; each gets one dict)
class ValidationCurve:
    def __init__(self):
        self.points = []  # (update, bits per character)

    def on_log(self, record):
        if "val_bpc" in record:
            self.points.append((record["update"], record["val_bpc"]))


curve = ValidationCurve()
run = textgen.train(args.corpus, out=args.out, force=True, updates=args.updates, hidden=64, seed=1,
                    eval_every=max(args.updates // 6, 1), callbacks=curve)
print(run)
print("validation bits/char as training went:", ", ".join(f"{u:,}: {b:.3f}" for u, b in curve.points))
print(f"best held-out loss: {run.best_val_bits_per_char:.4f} bits/char ({run.best_val_nats_per_char:.4f} nats/char)")
print(f"final smooth loss: {run.final_smooth_loss_per_window:.2f} nats per 25-character window, "
      f"after {run.final_update:,} updates (seed {run.seed})")

# %% Sample from the best model: from the state it was trained in, so the text starts well
print(run.generate(300, temperature=0.8, seed=1))  # the run's best model; run.last.generate for the last
model = run.best
for text in model.generate(80, prime="The ", count=2, top_p=0.9, seed=2):
    print("---", text)
text = model.generate(80)  # a fresh seed, kept to draw the same text again
assert model.generate(80, seed=model.last_seed) == text
print(f"seed {model.last_seed}: {text}")

# %% Score text (the model must know its characters): the run's held-out text, or any corpus
scored = model.evaluation()
print(f"held-out text ({scored['characters']:,} characters): {scored['bits_per_char']:.4f} bits/char "
      f"({scored['nats_per_char']:.4f} nats/char)")
print(f"the whole corpus: {model.bits_per_char(args.corpus):.4f} bits/char "
      f"({model.evaluate(args.corpus):.4f} nats/char)")

# %% Errors name the setting, as a Python user writes it
try:
    model.generate(100, temperature=0)
except textgen.ConfigError as error:
    print("refused:", error)

# %% Continue the same run exactly where it stopped, then open it again later by its folder
longer = textgen.resume(run, updates=args.updates + 1000)
again = textgen.Run(longer.folder)
print(f"{again.final_update:,} updates now; best model from update {textgen.load(longer).update:,}")
