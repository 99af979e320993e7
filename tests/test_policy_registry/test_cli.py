"""`cope policy ...` against a real broker (the worker's CLI wires the model's tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_registry import library_ids, library_policy
from tests.kafka_support import unique_prefix
from worker.cli import main


@pytest.fixture
def registry_env(
    kafka_bootstrap: str, worker_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    topic = f"{unique_prefix()}.policies"
    monkeypatch.setenv("COPE_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("COPE_REGISTRY_TOPIC", topic)
    monkeypatch.setenv("COPE_MODEL_DIR", str(worker_model_dir))
    assert main(["policy", "init"]) == 0
    return topic


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_seed_publish_list_show_diff_history(
    registry_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "seed", "--author", "ops"]) == 0
    assert json.loads(_lines(capsys)[-1])["seeded"] == library_ids()
    draft = tmp_path / "hate-v2.md"
    draft.write_text(library_policy("hate") + "\n- **Slogans**: hateful chants.\n")
    assert (
        main(
            [
                "policy",
                "publish",
                str(draft),
                "--id",
                "hate",
                "--threshold",
                "0.6",
                "--activate",
                "--author",
                "ops",
            ]
        )
        == 0
    )
    published = json.loads(_lines(capsys)[-1])
    assert (published["version"], published["threshold"]) == (2, 0.6)
    assert main(["policy", "list"]) == 0
    rows = {row["policy_id"]: row for row in map(json.loads, _lines(capsys))}
    assert rows["hate"] == {"policy_id": "hate", "versions": 2, "active": 2, "shadow": None}
    assert main(["policy", "show", "hate@1"]) == 0
    shown = _lines(capsys)
    assert json.loads(shown[0])["version"] == 1
    assert shown[1] == "# Criteria"
    assert main(["policy", "diff", "hate", "1", "2"]) == 0
    assert "+- **Slogans**: hateful chants." in _lines(capsys)
    assert main(["policy", "rollback", "hate", "--author", "ops"]) == 0
    assert json.loads(_lines(capsys)[-1])["active_version"] == 1
    assert main(["policy", "history", "hate"]) == 0
    assert [json.loads(line)["version"] for line in _lines(capsys)] == [1, 2, 1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["policy", "show", "nope@x"], "bad policy reference"),
        (["policy", "show", "nope"], "nope has no active version"),
        (["policy", "diff", "nope", "1", "2"], "nope has no version 1"),
        (["policy", "activate", "hate", "3"], "hate has no version 3"),
    ],
)
def test_bad_requests_are_one_clear_line(
    registry_env: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_publishing_a_malformed_policy_names_every_problem(
    registry_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / "bad.md"
    draft.write_text("# Notes\nflag bad things\n")
    assert main(["policy", "publish", str(draft), "--id", "bad"]) == 2
    err = capsys.readouterr().err
    assert "no '# Criteria'" in err
    assert "missing sections" in err
    assert "no label" in err
