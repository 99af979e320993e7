"""The teacher: CoPE-A-9B (or any causal LM) scoring pairs with the exact CoPE prompt.

The score is P("1") / (P("0") + P("1")) for the token after the prompt, as
CoPE defines it. Two ways to reach a teacher: a local ``transformers`` causal
LM (a GPU and its weights at hand), or an OpenAI-compatible completions
endpoint asked for one token with log-probabilities. Its scores are soft labels
for distillation and the second eye of the binocular policy check.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker.errors import ModelError

__all__ = ["COPE_PROMPT", "EndpointTeacher", "LocalTeacher", "cope_prompt"]

COPE_PROMPT = (
    "INSTRUCTIONS\n============\n\nExamine the given POLICY and determine if the given "
    'CONTENT meets the criteria for ANY of the LABELS. Answer "1" if yes, and "0" if no.'
    "\n\n\nPOLICY\n======\n\n{policy}\n\n\nCONTENT\n=======\n\n{content}\n\n\n"
    "ANSWER\n======\n\n"
)


def cope_prompt(policy: str, content: str) -> str:
    """The prompt CoPE-A-9B was trained with, verbatim."""
    return COPE_PROMPT.format(policy=policy, content=content)


def _ratio(log_p1: float, log_p0: float) -> float:
    """P1 / (P0 + P1) from log-probabilities, computed stably."""
    return 1.0 / (1.0 + math.exp(log_p0 - log_p1))


class LocalTeacher:
    """A causal LM from a local folder (nothing is downloaded)."""

    def __init__(self, model_path: Path, device: str = "cpu", batch_size: int = 4) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(model_path), local_files_only=True
            )
            self.model = model.to(device)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load teacher from {model_path}: {exc}") from exc
        self.model.eval()
        self.tokenizer.padding_side = "left"  # the answer token follows the last prompt token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device
        self.batch_size = batch_size
        self.answer_ids = [self._single_token(answer) for answer in ("0", "1")]
        self._torch = torch

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ModelError(f"teacher tokenizer splits the answer {text!r} into {ids}")
        return int(ids[0])

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            prompts = [cope_prompt(p, c) for p, c in pairs[start : start + self.batch_size]]
            batch = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
            with self._torch.inference_mode():
                logits = self.model(**batch).logits[:, -1, :].float()
            log_probs = self._torch.log_softmax(logits, dim=-1)[:, self.answer_ids]
            scores += [_ratio(float(one), float(zero)) for zero, one in log_probs.tolist()]
        return scores


class EndpointTeacher:
    """An OpenAI-compatible ``/v1/completions`` server (vLLM, TGI, ...) serving the teacher."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 60.0) -> None:
        self.url = base_url.rstrip("/") + "/v1/completions"
        self.model = model
        self.timeout_s = timeout_s

    def _complete(self, prompt: str) -> dict[str, Any]:
        body = json.dumps(
            {
                "model": self.model,
                "prompt": prompt,
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": 20,
            }
        ).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                answer: dict[str, Any] = json.loads(reply.read())
                return answer
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"teacher endpoint {self.url} failed: {exc}") from exc

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        scores = []
        for policy, content in pairs:
            reply = self._complete(cope_prompt(policy, content))
            try:
                top = reply["choices"][0]["logprobs"]["top_logprobs"][0]
            except (KeyError, IndexError, TypeError) as exc:
                raise ModelError(f"teacher endpoint gave no log-probabilities: {reply}") from exc
            tokens = {token.strip(): value for token, value in top.items()}
            if "0" not in tokens and "1" not in tokens:
                raise ModelError("neither '0' nor '1' is among the teacher's top tokens")
            floor = min(top.values()) - 1.0  # an answer outside the top list is less likely
            scores.append(_ratio(tokens.get("1", floor), tokens.get("0", floor)))
        return scores
