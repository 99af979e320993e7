"""The teacher path on a tiny random Gemma-2 built here, and on a stub completions server."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from worker.cli import main
from worker.errors import ModelError
from worker.model.teacher import COPE_PROMPT, EndpointTeacher, cope_prompt

DESIGN_PROMPT = (
    "INSTRUCTIONS\n============\n\nExamine the given POLICY and determine if the given CONTENT "
    'meets the criteria for ANY of the LABELS. Answer "1" if yes, and "0" if no.\n\n\nPOLICY\n'
    "======\n\n{policy}\n\n\nCONTENT\n=======\n\n{content}\n\n\nANSWER\n======\n\n"
)


def test_the_prompt_is_cope_verbatim() -> None:
    assert COPE_PROMPT == DESIGN_PROMPT
    assert cope_prompt("P", "C").endswith("CONTENT\n=======\n\nC\n\n\nANSWER\n======\n\n")


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Gemma-2 with random weights and a word-level tokenizer, saved locally."""
    pytest.importorskip("torch")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma2Config, Gemma2ForCausalLM, PreTrainedTokenizerFast

    words = [
        "<pad>",
        "<eos>",
        "<unk>",
        "0",
        "1",
        *sorted(set(DESIGN_PROMPT.split())),
        "hate",
        "spam",
        "you",
        "are",
        "nice",
        "buy",
        "now",
    ]
    vocab = {word: index for index, word in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    torch.manual_seed(3)
    config = Gemma2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        pad_token_id=0,
    )
    folder = tmp_path_factory.mktemp("tiny-gemma")
    model = Gemma2ForCausalLM(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_a_local_causal_lm_scores_p1_over_p0_the_same_alone_or_batched(
    tiny_gemma: Path,
) -> None:
    from worker.model.teacher import LocalTeacher

    teacher = LocalTeacher(tiny_gemma, batch_size=3)
    pairs = [("hate", "you are nice"), ("spam", "buy now buy now"), ("hate", "you")]
    batched = teacher.score(pairs)
    alone = [teacher.score([pair])[0] for pair in pairs]
    assert all(0 < score < 1 for score in batched)
    assert batched == pytest.approx(alone, abs=1e-5)  # left padding keeps the answer position
    assert len(set(batched)) == 3


class _Completions(BaseHTTPRequestHandler):
    prompts: ClassVar[list[str]] = []
    reply: ClassVar[dict[str, Any]] = {}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["max_tokens"] == 1
        assert body["logprobs"] >= 2
        type(self).prompts.append(body["prompt"])
        data = json.dumps(type(self).reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Completions)
    _Completions.prompts = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _logprobs(top: dict[str, float]) -> dict[str, Any]:
    return {"choices": [{"text": "1", "logprobs": {"top_logprobs": [top]}}]}


def test_an_endpoint_teacher_sends_the_cope_prompt_and_reads_logprobs(endpoint: str) -> None:
    _Completions.reply = _logprobs({"1": math.log(0.6), "0": math.log(0.2), "x": -5.0})
    [score] = EndpointTeacher(endpoint, "cope").score([("POLICY TEXT", "CONTENT TEXT")])
    assert score == pytest.approx(0.75)
    assert _Completions.prompts == [cope_prompt("POLICY TEXT", "CONTENT TEXT")]


def test_an_answer_missing_from_the_top_list_counts_as_unlikely(endpoint: str) -> None:
    _Completions.reply = _logprobs({" 1": -0.1, "a": -3.0})
    [score] = EndpointTeacher(endpoint, "cope").score([("p", "c")])
    assert score > 0.97


@pytest.mark.parametrize("reply", [{"choices": []}, _logprobs({"a": -1.0, "b": -2.0})])
def test_an_endpoint_without_usable_logprobs_is_a_clear_error(
    endpoint: str, reply: dict[str, Any]
) -> None:
    _Completions.reply = reply
    with pytest.raises(ModelError):
        EndpointTeacher(endpoint, "cope").score([("p", "c")])


def test_an_unreachable_endpoint_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="failed"):
        EndpointTeacher("http://127.0.0.1:9", "cope", timeout_s=2).score([("p", "c")])


def test_teacher_label_command_writes_one_score_per_row(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _Completions.reply = _logprobs({"1": -0.5, "0": -1.5})
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"id": "a", "policy_id": "hate", "text": "x"})
        + "\n"
        + json.dumps({"id": "b", "policy": "# Criteria\nno spam", "text": "y"})
        + "\n"
    )
    out = tmp_path / "scores.jsonl"
    assert (
        main(
            [
                "model",
                "teacher-label",
                "--pairs",
                str(pairs),
                "--out",
                str(out),
                "--endpoint",
                endpoint,
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["a", "b"]
    assert rows[0]["score"] == pytest.approx(1 / (1 + math.exp(-1.0)))
    pairs.write_text(json.dumps({"id": "c", "text": "no policy"}) + "\n")
    assert (
        main(
            [
                "model",
                "teacher-label",
                "--pairs",
                str(pairs),
                "--out",
                str(out),
                "--endpoint",
                endpoint,
            ]
        )
        == 2
    )
    assert 'needs "text" and "policy"' in capsys.readouterr().err
