"""Training curves from metrics.jsonl as PNGs: reward (total and per reward), accuracy, completion length, and the
learning signal (zero-advantage groups, within-group reward spread, truncation, answer extraction)."""

from __future__ import annotations

from pathlib import Path

from utils.files import read_jsonl, staged
from utils.training._diagnostics import CLIPPED, EXTRACTION, GROUP_STD, KEPT, MEAN_LENGTH, ZERO_STD


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and "step" in r]
    return [p[0] for p in points], [p[1] for p in points]


def plot_metrics(metrics_path: Path, out_dir: Path) -> list[Path]:
    """Write reward.png, accuracy.png, completion_length.png and learning_signal.png (those with data); returns
    the files written."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    records = read_jsonl(metrics_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    reward_keys = sorted({k for r in records for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    # One curve per watched benchmark (eval/<name>/accuracy); runs logged before those keys have eval/accuracy.
    accuracy_keys = sorted({k for r in records for k in r if k.startswith("eval/") and k.endswith("/accuracy")
                            and k != "eval/accuracy"}) or ["eval/accuracy"]
    charts = {
        "reward.png": ("Reward (mean per step)", ["reward", *reward_keys]),
        "accuracy.png": ("Accuracy (greedy pass@1)", accuracy_keys),
        "completion_length.png": ("Completion length (tokens)", [MEAN_LENGTH]),
        # shares of each step's groups or completions, on one 0-1 scale (the reward spread too, for 0-1 rewards)
        "learning_signal.png": ("Learning signal (per step)", [ZERO_STD, GROUP_STD, CLIPPED, EXTRACTION, KEPT]),
    }
    written = []
    for name, (title, keys) in charts.items():
        series = [(k, *_series(records, k)) for k in keys]
        series = [s for s in series if s[1]]
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, steps, values in series:
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
        fig.tight_layout()
        with staged(out_dir / name) as tmp:  # a viewer never sees a half-written image
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        written.append(out_dir / name)
    return written
