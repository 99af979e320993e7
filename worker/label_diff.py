"""Compare two label sets (live vs replay, or two replays) policy by policy.

For every policy both sets scored: how many events a change newly flags or no
longer flags, the strongest examples of each, and how scores shifted. The
report is Markdown with one PNG histogram per policy, readable without a
terminal. Pure code: the label sets come in as parsed label records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PolicyDiff", "diff_labels", "write_report"]


@dataclass
class PolicyDiff:
    """How one policy's verdicts moved between label set A and label set B."""

    policy_id: str
    versions_a: set[int] = field(default_factory=set)
    versions_b: set[int] = field(default_factory=set)
    compared: int = 0
    flagged_a: int = 0
    flagged_b: int = 0
    newly_flagged: list[tuple[str, float, float]] = field(default_factory=list)
    no_longer_flagged: list[tuple[str, float, float]] = field(default_factory=list)
    shifts: list[float] = field(default_factory=list)


def _by_content(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        table[str(row["content_id"])] = {r["policy_id"]: r for r in row["results"]}
    return table


def diff_labels(
    a_rows: Iterable[dict[str, Any]], b_rows: Iterable[dict[str, Any]]
) -> dict[str, PolicyDiff]:
    """Per policy, the verdicts of events present in both sets, compared."""
    a, b = _by_content(a_rows), _by_content(b_rows)
    diffs: dict[str, PolicyDiff] = {}
    for content_id in sorted(a.keys() & b.keys()):
        for policy_id in sorted(a[content_id].keys() & b[content_id].keys()):
            before, after = a[content_id][policy_id], b[content_id][policy_id]
            diff = diffs.setdefault(policy_id, PolicyDiff(policy_id))
            diff.versions_a.add(before["policy_version"])
            diff.versions_b.add(after["policy_version"])
            diff.compared += 1
            diff.flagged_a += bool(before["decision"])
            diff.flagged_b += bool(after["decision"])
            diff.shifts.append(after["score"] - before["score"])
            example = (content_id, before["score"], after["score"])
            if after["decision"] and not before["decision"]:
                diff.newly_flagged.append(example)
            elif before["decision"] and not after["decision"]:
                diff.no_longer_flagged.append(example)
    for diff in diffs.values():  # the biggest moves first
        diff.newly_flagged.sort(key=lambda e: e[1] - e[2])
        diff.no_longer_flagged.sort(key=lambda e: e[2] - e[1])
    return diffs


def _histogram(diff: PolicyDiff, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.2))
    axes.hist(diff.shifts, bins=40, range=(-1, 1), color="#4477aa")
    axes.set_title(f"{diff.policy_id}: score B - score A ({diff.compared} events)")
    axes.set_xlabel("score shift")
    axes.set_ylabel("events")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(
    diffs: dict[str, PolicyDiff], out_dir: Path, names: tuple[str, str], examples: int = 5
) -> Path:
    """Markdown summary plus a score-shift histogram per policy; returns the Markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Label diff: {names[0]} (A) vs {names[1]} (B)",
        "",
        "| policy | versions A | versions B | events | flagged A | flagged B "
        "| newly flagged | no longer flagged |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for diff in diffs.values():
        lines.append(
            f"| {diff.policy_id} | {sorted(diff.versions_a)} | "
            f"{sorted(diff.versions_b)} | {diff.compared} | {diff.flagged_a} | "
            f"{diff.flagged_b} | {len(diff.newly_flagged)} | "
            f"{len(diff.no_longer_flagged)} |"
        )
    for diff in diffs.values():
        image = out_dir / f"shift-{diff.policy_id}.png"
        _histogram(diff, image)
        lines += ["", f"## {diff.policy_id}", "", f"![score shifts]({image.name})", ""]
        for title, found in (
            ("Newly flagged", diff.newly_flagged),
            ("No longer flagged", diff.no_longer_flagged),
        ):
            lines.append(f"**{title}** ({len(found)}):")
            lines += [f"- `{cid}`: {sa:.3f} → {sb:.3f}" for cid, sa, sb in found[:examples]]
            lines.append("")
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
