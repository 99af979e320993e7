"""Turn (policy, content) pairs into the model's fixed-window token rows.

A row is ``[CLS] policy [SEP] content-window [SEP]``. The policy is tokenized
once per distinct text and reused, since a handful of policies score millions
of events. Content longer than what the window leaves is split into
overlapping windows, never truncated: the runtime scores the maximum over a
pair's windows, so a violation at the end of a long post still counts.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from worker.errors import ModelError, PolicyTooLongError

__all__ = ["EncodedPolicy", "PairTokenizer", "TokenRow", "sha256_text"]

_SPECIAL_TOKENS_PER_ROW = 3  # [CLS] policy [SEP] content [SEP]
_POLICY_CACHE_SIZE = 256


def sha256_text(text: str) -> str:
    """Hex sha256 of UTF-8 text: the identity of a policy version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class EncodedPolicy:
    """Token ids of one policy text (no special tokens), keyed by its hash."""

    sha256: str
    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TokenRow:
    """One model input row and the pair it scores."""

    pair_index: int
    input_ids: tuple[int, ...]
    segment_split: int  # index of the first content token (token type 1)


class PairTokenizer:
    """Builds model rows from policies and contents under a fixed window."""

    def __init__(
        self,
        tokenizer_file: Path,
        *,
        max_length: int,
        max_policy_tokens: int,
        window_stride: int,
    ) -> None:
        if max_policy_tokens + _SPECIAL_TOKENS_PER_ROW >= max_length:
            raise ModelError(
                f"max_policy_tokens={max_policy_tokens} leaves no content room in "
                f"max_length={max_length}"
            )
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise ModelError(f"cannot load tokenizer {tokenizer_file}: {exc}") from exc
        # The shipped tokenizer.json pins truncation and padding at 128 tokens;
        # windows are built here, so both must be off.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.max_length = max_length
        self.max_policy_tokens = max_policy_tokens
        self.window_stride = window_stride
        self.cls_id = self._special_id("[CLS]")
        self.sep_id = self._special_id("[SEP]")
        self.pad_id = self._special_id("[PAD]")
        self._policies: OrderedDict[str, EncodedPolicy] = OrderedDict()

    def _special_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise ModelError(f"tokenizer has no {token} token")
        return int(token_id)

    def count_tokens(self, text: str) -> int:
        """Token count of text without special tokens (for limits and reports)."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_policy(self, text: str) -> EncodedPolicy:
        """Tokenize a policy once; reject one that leaves too little content room."""
        digest = sha256_text(text)
        cached = self._policies.get(digest)
        if cached is not None:
            self._policies.move_to_end(digest)
            return cached
        ids = tuple(self._tokenizer.encode(text, add_special_tokens=False).ids)
        if len(ids) > self.max_policy_tokens:
            raise PolicyTooLongError(len(ids), self.max_policy_tokens)
        encoded = EncodedPolicy(sha256=digest, ids=ids)
        self._policies[digest] = encoded
        if len(self._policies) > _POLICY_CACHE_SIZE:
            self._policies.popitem(last=False)
        return encoded

    def fits_policy(self, text: str) -> bool:
        """Whether ``text`` is within the policy budget (generated policies check this)."""
        try:
            self.encode_policy(text)
        except PolicyTooLongError:
            return False
        return True

    def content_windows(
        self, policy: EncodedPolicy, content_ids: Sequence[int]
    ) -> list[tuple[int, ...]]:
        """Split content ids into overlapping windows that fit beside the policy."""
        room = self.max_length - len(policy.ids) - _SPECIAL_TOKENS_PER_ROW
        if len(content_ids) <= room:
            return [tuple(content_ids)]
        overlap = min(self.window_stride, room // 2)
        step = room - overlap
        windows = []
        start = 0
        while True:
            windows.append(tuple(content_ids[start : start + room]))
            if start + room >= len(content_ids):
                return windows
            start += step

    def rows(self, pairs: Sequence[tuple[str, str]]) -> list[TokenRow]:
        """Rows for every pair, each pair yielding one row per content window."""
        policies = [self.encode_policy(policy) for policy, _ in pairs]
        contents = self._tokenizer.encode_batch(
            [content for _, content in pairs], add_special_tokens=False
        )
        rows = []
        for index, (policy, content) in enumerate(zip(policies, contents, strict=True)):
            head = (self.cls_id, *policy.ids, self.sep_id)
            for window in self.content_windows(policy, content.ids):
                rows.append(
                    TokenRow(
                        pair_index=index,
                        input_ids=(*head, *window, self.sep_id),
                        segment_split=len(head),
                    )
                )
        return rows
