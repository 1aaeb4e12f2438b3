"""Markdown rendering of experiment tables (private; used by experiments and report)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "format_cell", "markdown_table"]

#: For each experiment kind: (column key, header) pairs, in the course's layout.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "lr_sweep": [
        ("lr", "Learning rate"), ("final_accuracy", "Final accuracy"),
        ("best_accuracy", "Best accuracy"), ("mean_accuracy", "Avg accuracy (over epochs)"),
        ("final_train_loss", "Final train loss"), ("status", "Status"),
        ("seconds_per_epoch", "s/epoch"),
    ],
    "convergence_study": [
        ("lr", "Learning rate"), ("converged_epoch", "Converged at epoch"),
        ("epochs_trained", "Epochs trained"), ("final_accuracy", "Final accuracy"),
        ("best_accuracy", "Best accuracy"), ("status", "Status"),
        ("seconds_per_epoch", "s/epoch"),
    ],
    "compare_models": [
        ("model", "Model"), ("parameters", "Trainable parameters"),
        ("final_accuracy", "Final accuracy"), ("best_accuracy", "Best accuracy"),
        ("mean_accuracy", "Avg accuracy (over epochs)"), ("status", "Status"),
        ("seconds_per_epoch", "s/epoch"),
    ],
    "gradient_study": [
        ("lr", "Learning rate"), ("gradient_statistic", "Statistic"),
        ("gradient_steps", "Steps"), ("gradient_first", "Step 1"),
        ("gradient_last", "Last step"), ("gradient_mean", "Mean over steps"),
        ("status", "Status"),
    ],
}

_PERCENT = {"final_accuracy", "best_accuracy", "mean_accuracy"}


def format_cell(key: str, value: Any, std: Any = None) -> str:
    """Format one value for a table: accuracies in percent, counts with separators."""
    if value is None:
        return "n/a"
    if key in _PERCENT:
        text = f"{100 * value:.1f}%"
        return text + (f" ± {100 * std:.1f}" if std is not None else "")
    if key.startswith("gradient_") and isinstance(value, float):
        return f"{value:.3e}"
    if key in ("parameters",) and isinstance(value, (int, float)):
        return f"{int(value):,}"
    if key in ("epochs_trained", "converged_epoch") and isinstance(value, float):
        text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
        return text + (f" ± {std:.1f}" if std is not None else "")
    if key == "lr":
        return f"{value:g}"
    if isinstance(value, float):
        return f"{value:.4f}" if key.endswith("loss") else f"{value:.2f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], kind: str) -> str:
    """Render experiment rows as a Markdown table with the kind's columns."""
    columns = COLUMNS.get(kind) or [(k, k) for k in (rows[0] if rows else {})]
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(format_cell(k, r.get(k), r.get(f"{k}_std")) for k, _ in columns)
            + " |" for r in rows]
    return "\n".join([head, rule, *body])
