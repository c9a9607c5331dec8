"""Figures (PNG) and the markdown table of the experiments' results."""

from __future__ import annotations

import os

__all__ = ["figures", "markdown"]

_NAMES = {
    "shared_bottom": "shared-bottom",
    "mmoe": "MMoE",
    "ple": "PLE (CGC, 1 level)",
    "all_labels": "all labels (ceiling)",
    "dropped_samples": "drop unlabelled samples",
    "masked_labels": "masked task loss (ours)",
    "masked_uncertainty": "masked + uncertainty weights",
    "masked_dwa": "masked + DWA",
    "both": "both modalities",
    "a_missing": "modality a missing",
    "b_missing": "modality b missing",
}


def _name(key: str) -> str:
    if key.startswith("modality_dropout_"):
        return f"trained with modality_dropout={key.rsplit('_', 1)[1]}"
    if key == "no_modality_dropout":
        return "trained without modality dropout"
    return _NAMES.get(key, key)


def _cell(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def markdown(results: dict) -> str:
    """The results as markdown tables (mean ± standard deviation over the runs)."""
    lines = []
    if "mmoe_synthetic" in results:
        r = results["mmoe_synthetic"]
        ps = [str(p) for p in r["settings"]["correlations"]]
        lines += [
            f"**MMoE synthetic benchmark**: test MSE (mean of the two tasks), "
            f"{r['settings']['runs']} runs; lower is better.",
            "",
            "| model | parameters | "
            + " | ".join(f"p = {p}" for p in ps)
            + f" | MSE(p={ps[-1]}) - MSE(p={ps[0]}) |",
            "| --- | --- | " + " | ".join("---" for _ in ps) + " | --- |",
        ]
        for kind, entry in r["models"].items():
            lines.append(
                f"| {_name(kind)} | {r['parameters'][kind]:,} | "
                + " | ".join(_cell(entry[p]["mse"]) for p in ps)
                + f" | {r['degradation'][kind][ps[-1]]:+.3f} |"
            )
        lines.append(
            "| label correlation (Pearson) | | "
            + " | ".join(_cell(r["label_correlation"][p], 2) for p in ps)
            + " | |"
        )
        lines.append("")
    if "modality" in results:
        r = results["modality"]
        n = r["settings"]["runs"]
        lines += [
            f"**One modality is pure noise**: mean fusion weight of the informative branch a "
            f"on the test set (0.5 = no preference) and test accuracy, {n} runs.",
            "",
            "| fusion mode | weight of a | accuracy |",
            "| --- | --- | --- |",
        ]
        for mode in r["settings"]["noise_modes"]:
            row = r["noise"][mode]
            lines.append(f"| {mode} | {_cell(row['weight_a'])} | {_cell(row['accuracy'])} |")
        lines += [
            f"| (a alone, no fusion) | | {_cell(r['noise']['a_only_accuracy'])} |",
            "",
            f"**A modality missing at test time** (Fusion mode `{r['missing']['mode']}`, the "
            f"missing branch masked with `modality_mask`): test accuracy, {n} runs.",
            "",
            "| model | both modalities | a missing | b missing |",
            "| --- | --- | --- | --- |",
        ]
        for variant, row in r["missing"]["variants"].items():
            lines.append(
                f"| {_name(variant)} | {_cell(row['both'])} | {_cell(row['a_missing'])} | "
                f"{_cell(row['b_missing'])} |"
            )
        single = r["missing"]["single_modality"]
        lines += [
            f"| single-modality model (b alone / a alone) | | {_cell(single['b_only'])} | "
            f"{_cell(single['a_only'])} |",
            "",
        ]
    if "partial_labels" in results:
        r = results["partial_labels"]
        lines += [
            f"**Partial labels**: {int(r['settings']['missing'] * 100)}% of task b's labels "
            f"missing; test accuracy, {r['settings']['runs']} runs.",
            "",
            "| training | task a | task b |",
            "| --- | --- | --- |",
        ]
        for variant, row in r["variants"].items():
            lines.append(f"| {_name(variant)} | {_cell(row['a'])} | {_cell(row['b'])} |")
        lines.append("")
    return "\n".join(lines)


def _bars(ax, groups: list[str], series: dict, ylabel: str, title: str, colors=None):
    import numpy as np

    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (label, (means, stds)) in enumerate(series.items()):
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            means,
            width,
            yerr=stds,
            capsize=3,
            label=label,
            color=None if colors is None else colors[i],
        )
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)


def figures(results: dict, directory: str) -> list[str]:
    """Writes one PNG per experiment into `directory`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if "mmoe_synthetic" in results:
        r = results["mmoe_synthetic"]
        ps = r["settings"]["correlations"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for i, (kind, entry) in enumerate(r["models"].items()):
            means = [entry[str(p)]["mse"]["mean"] for p in ps]
            stds = [entry[str(p)]["mse"]["std"] for p in ps]
            dodge = (i - (len(r["models"]) - 1) / 2) * 0.012  # keep the error bars apart
            axes[0].errorbar(
                [p + dodge for p in ps], means, yerr=stds, marker="o", capsize=3, label=_name(kind)
            )
            axes[1].plot(
                ps, [r["degradation"][kind][str(p)] for p in ps], marker="o", label=_name(kind)
            )
        axes[0].set_title("Test MSE against task correlation")
        axes[0].set_ylabel("test MSE (mean of 2 tasks, ± std over runs)")
        axes[1].set_title("Loss increase relative to p = 1.0")
        axes[1].set_ylabel("mean test MSE(p) - mean test MSE(1.0)")
        axes[1].axhline(0.0, color="grey", linewidth=0.8)
        for ax in axes:
            ax.set_xlabel("task correlation p")
            ax.invert_xaxis()  # correlation falls from left to right
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(f"MMoE synthetic benchmark (d=100, {r['settings']['runs']} runs)")
        fig.tight_layout()
        written.append(os.path.join(directory, "mmoe_synthetic.png"))
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if "modality" in results:
        r = results["modality"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.6]})
        modes = r["settings"]["noise_modes"]
        rows = [r["noise"][m]["weight_a"] for m in modes]
        _bars(
            axes[0],
            modes,
            {"informative branch a": ([s["mean"] for s in rows], [s["std"] for s in rows])},
            "mean fusion weight of branch a",
            "Branch b is pure noise",
        )
        axes[0].axhline(0.5, color="grey", linestyle="--", linewidth=1, label="equal weights (0.5)")
        axes[0].set_xlabel("Fusion mode")
        axes[0].set_ylim(0, 1)
        axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, fontsize=8)
        conditions = ["both", "a_missing", "b_missing"]
        series = {}
        for variant, row in r["missing"]["variants"].items():
            series[_name(variant)] = (
                [row[c]["mean"] for c in conditions],
                [row[c]["std"] for c in conditions],
            )
        single = r["missing"]["single_modality"]
        series["single-modality model of the branch left"] = (
            [float("nan"), single["b_only"]["mean"], single["a_only"]["mean"]],
            [0.0, single["b_only"]["std"], single["a_only"]["std"]],
        )
        _bars(
            axes[1],
            [_name(c) for c in conditions],
            series,
            "test accuracy",
            f"A modality missing at test time (Fusion '{r['missing']['mode']}')",
        )
        axes[1].set_xlabel("test condition")
        axes[1].set_ylim(0, 1)
        axes[1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=3, fontsize=8)
        fig.tight_layout()
        written.append(os.path.join(directory, "modality.png"))
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if "partial_labels" in results:
        r = results["partial_labels"]
        fig, ax = plt.subplots(figsize=(9, 5))
        series = {
            _name(v): ([row["a"]["mean"], row["b"]["mean"]], [row["a"]["std"], row["b"]["std"]])
            for v, row in r["variants"].items()
        }
        _bars(
            ax,
            ["task a (all labels)", "task b (half missing)"],
            series,
            "test accuracy",
            f"Partial labels: {int(r['settings']['missing'] * 100)}% of task b's labels "
            f"missing ({r['settings']['runs']} runs)",
        )
        ax.set_xlabel("task")
        lows = [m - s for means, stds in series.values() for m, s in zip(means, stds)]
        highs = [m + s for means, stds in series.values() for m, s in zip(means, stds)]
        ax.set_ylim(max(0.0, min(lows) - 0.05), min(1.0, max(highs) + 0.05))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize=8)
        fig.tight_layout()
        written.append(os.path.join(directory, "partial_labels.png"))
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written
