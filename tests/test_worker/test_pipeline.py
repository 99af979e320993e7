"""The pure batch step: no broker, a keyword scorer standing in for the model."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from worker.model.runtime import Scores
from worker.pipeline import RawRecord, process_batch
from worker.policies import ActivePolicy, PolicySnapshot
from worker.schemas import DeadLetter, LabelRecord, ModelRef

MODEL = ModelRef(name="m", version="1", sha256="0" * 64)
SNAPSHOT = PolicySnapshot(
    {
        "rude": ActivePolicy("rude", 3, "idiot", "a" * 64, 0.5),
        "food": ActivePolicy("food", 7, "pizza", "b" * 64, 0.8),
    }
)


class KeywordScorer:
    """Scores 0.9 when the content contains the policy text, else 0.1."""

    max_batch_size = 8

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    def predict(self, pairs: Sequence[tuple[str, str]]) -> Scores:
        self.calls.append(list(pairs))
        return np.array([0.9 if p in c else 0.1 for p, c in pairs], dtype=np.float32)

    def health(self) -> dict[str, Any]:
        return {}


def _record(offset: int, value: bytes | None, key: bytes | None = b"k") -> RawRecord:
    return RawRecord("events", 2, offset, 1_700_000_000_000, key, value, received_at=100.0)


def _run(records: list[RawRecord], scorer: KeywordScorer | None = None) -> Any:
    return process_batch(
        records,
        SNAPSHOT,
        scorer or KeywordScorer(),
        MODEL,
        default_policy_ids=["rude"],
        max_text_chars=50,
        clock=lambda: 100.25,
    )


def test_each_event_gets_one_label_with_every_policy_version() -> None:
    value = json.dumps(
        {
            "id": "c1",
            "text": "you idiot, pizza",
            "policy_ids": ["rude", "food"],
            "metadata": {"lang": "en"},
        }
    ).encode()
    outcome = _run([_record(5, value)])
    [(key, raw)] = outcome.labels
    label = LabelRecord.model_validate_json(raw)
    assert key == b"c1"
    assert [(r.policy_id, r.policy_version, r.decision) for r in label.results] == [
        ("rude", 3, True),
        ("food", 7, True),
    ]
    assert label.results[1].threshold == 0.8
    assert label.source.offset == 5
    assert label.source.partition == 2
    assert label.metadata == {"lang": "en"}
    assert label.latency_ms == 250.0
    assert outcome.pairs == 2


def test_events_without_policy_ids_get_the_defaults() -> None:
    outcome = _run([_record(1, json.dumps({"id": "c", "text": "hello"}).encode())])
    label = LabelRecord.model_validate_json(outcome.labels[0][1])
    assert [r.policy_id for r in label.results] == ["rude"]
    assert label.results[0].decision is False


def test_every_kind_of_bad_input_becomes_a_dead_letter_with_its_bytes() -> None:
    cases = {
        "bad_json": b"{nope",
        "bad_utf8": b"\\xc3\\x28".decode("unicode_escape").encode("latin-1"),
        "invalid_event": json.dumps({"text": "missing id"}).encode(),
        "oversized_text": json.dumps({"id": "x", "text": "y" * 51}).encode(),
        "unknown_policy": json.dumps({"id": "x", "text": "y", "policy_ids": ["nope"]}).encode(),
    }
    records = [_record(i, value) for i, value in enumerate(cases.values())]
    records.append(_record(99, json.dumps({"id": "ok", "text": "fine"}).encode()))
    outcome = _run(records)
    letters = [DeadLetter.model_validate_json(raw) for _, raw in outcome.dead_letters]
    assert [letter.reason for letter in letters] == list(cases)
    for letter, value in zip(letters, cases.values(), strict=True):
        assert base64.b64decode(letter.original_value_b64 or "") == value
        assert letter.detail
    assert [key for key, _ in outcome.labels] == [b"ok"]  # good records around them go on
    assert [reason for _, reason, _ in outcome.rejections] == list(cases)
    ids = [content_id for _, _, content_id in outcome.rejections]
    assert ids == [None, None, None, "x", "x"]  # known once the event parsed


def test_a_tombstone_and_an_empty_policy_list_are_dead_letters() -> None:
    outcome = _run(
        [
            _record(0, None),
            _record(1, json.dumps({"id": "x", "text": "t", "policy_ids": []}).encode()),
        ]
    )
    reasons = [json.loads(raw)["reason"] for _, raw in outcome.dead_letters]
    assert reasons == ["invalid_event", "invalid_event"]
    assert json.loads(outcome.dead_letters[0][1])["original_value_b64"] is None


def test_a_batch_is_scored_in_one_call() -> None:
    scorer = KeywordScorer()
    values = [
        json.dumps({"id": f"c{i}", "text": "t", "policy_ids": ["rude", "food"]}).encode()
        for i in range(5)
    ]
    _run([_record(i, v) for i, v in enumerate(values)], scorer)
    assert len(scorer.calls) == 1
    assert len(scorer.calls[0]) == 10


def test_a_batch_of_only_bad_records_does_not_call_the_model() -> None:
    scorer = KeywordScorer()
    outcome = _run([_record(0, b"{")], scorer)
    assert scorer.calls == []
    assert outcome.labels == []
    assert outcome.pairs == 0


def test_shadow_versions_are_scored_into_separate_records_only() -> None:
    shadow = ActivePolicy("rude", 4, "moron", "c" * 64, 0.5)
    snapshot = PolicySnapshot(SNAPSHOT.policies, shadows={"rude": shadow})
    value = json.dumps({"id": "c1", "text": "you moron", "policy_ids": ["rude", "food"]}).encode()
    outcome = process_batch(
        [_record(0, value)],
        snapshot,
        KeywordScorer(),
        MODEL,
        default_policy_ids=["rude"],
        max_text_chars=50,
    )
    [(_, enforced_raw)] = outcome.labels
    [(shadow_key, shadow_raw)] = outcome.shadow_labels
    enforced = LabelRecord.model_validate_json(enforced_raw)
    shadowed = LabelRecord.model_validate_json(shadow_raw)
    assert [(r.policy_id, r.policy_version, r.decision) for r in enforced.results] == [
        ("rude", 3, False),
        ("food", 7, False),
    ]
    assert [(r.policy_id, r.policy_version, r.decision) for r in shadowed.results] == [
        ("rude", 4, True)
    ]
    assert shadow_key == b"c1"
    assert outcome.pairs == 3
