from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main
from worker.label_diff import diff_labels, write_report


def _label(content_id: str, **scores: tuple[int, float]) -> dict[str, object]:
    return {
        "content_id": content_id,
        "results": [
            {
                "policy_id": policy,
                "policy_version": version,
                "score": score,
                "decision": score >= 0.5,
            }
            for policy, (version, score) in scores.items()
        ],
    }


A = [
    _label("c1", hate=(1, 0.2), spam=(1, 0.9)),
    _label("c2", hate=(1, 0.7)),
    _label("c3", hate=(1, 0.6)),
    _label("only-a", hate=(1, 0.9)),
]
B = [
    _label("c1", hate=(2, 0.8), spam=(1, 0.9)),
    _label("c2", hate=(2, 0.1)),
    _label("c3", hate=(2, 0.65)),
    _label("only-b", hate=(2, 0.9)),
]


def test_diff_counts_flips_per_policy_on_shared_events() -> None:
    diffs = diff_labels(A, B)
    hate, spam = diffs["hate"], diffs["spam"]
    assert (hate.compared, hate.flagged_a, hate.flagged_b) == (3, 2, 2)
    assert [cid for cid, _, _ in hate.newly_flagged] == ["c1"]
    assert [cid for cid, _, _ in hate.no_longer_flagged] == ["c2"]
    assert (hate.versions_a, hate.versions_b) == ({1}, {2})
    assert hate.shifts == pytest.approx([0.6, -0.6, 0.05])
    assert (spam.compared, spam.newly_flagged, spam.no_longer_flagged) == (1, [], [])


def test_the_report_is_markdown_with_a_histogram_per_policy(tmp_path: Path) -> None:
    report = write_report(diff_labels(A, B), tmp_path / "out", ("live", "replay"))
    text = report.read_text()
    assert "| hate | [1] | [2] | 3 | 2 | 2 | 1 | 1 |" in text
    assert "- `c1`: 0.200 → 0.800" in text
    for policy in ("hate", "spam"):
        assert (tmp_path / "out" / f"shift-{policy}.png").read_bytes()[:4] == b"\x89PNG"


def test_replay_diff_command_and_its_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(row) + "\n" for row in A))
    b.write_text("".join(json.dumps(row) + "\n" for row in B))
    assert main(["replay", "diff", str(a), str(b), "--out", str(tmp_path / "r")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["policies"]["hate"] == {
        "compared": 3,
        "newly_flagged": 1,
        "no_longer_flagged": 1,
    }
    assert main(["replay", "diff", str(a), "--out", str(tmp_path / "r")]) == 2
    assert "usage: cope replay diff A B" in capsys.readouterr().err
    b.write_text('{"not": "a label"}\n')
    assert main(["replay", "diff", str(a), str(b), "--out", str(tmp_path / "r")]) == 2
    assert "not a label record" in capsys.readouterr().err
