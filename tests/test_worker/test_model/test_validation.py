"""The validation report: tells a policy-reading model from a policy-blind one."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from policy_registry import library_policy
from worker.model.dataset import (
    GROUP_HATE_NOT_ABOUT,
    OPENAI_CATEGORIES,
    UNRELATED_AREAS,
    LabelledText,
    split_of,
)
from worker.model.harm_areas import HARM_AREAS
from worker.model.policy_variants import PolicyVariant, edit_probes, generate_variants
from worker.model.validation import (
    any_category_texts,
    calibration_pairs,
    calibration_texts,
    not_about,
    validation_report,
    validation_texts,
)

FUNCTIONALITIES = {
    "slur_reclaimed_nh": 0,
    "counter_quote_nh": 0,
    "target_indiv_nh": 0,
    "threat_dir_h": 1,
    "derog_impl_h": 1,
    "phrase_question_h": 1,
}


def _texts() -> list[LabelledText]:
    rng = random.Random(3)
    items = []
    for n in range(400):
        labels = {category: int(rng.random() < 0.3) for category in OPENAI_CATEGORIES.values()}
        labels |= dict.fromkeys(UNRELATED_AREAS, 0)
        items.append(LabelledText("openai", f"oai-{n}", f"openai text {n}", labels))
    for n in range(400):
        functionality = rng.choice(sorted(FUNCTIONALITIES))
        items.append(
            LabelledText(
                "hatecheck",
                f"hc-{n}",
                f"hatecheck text {n}",
                {"hate": FUNCTIONALITIES[functionality]},
                frozenset({"source:hatecheck", f"hatecheck:{functionality}"}),
            )
        )
    for n in range(100):
        items.append(LabelledText("pyrit", f"p-{n}", f"privacy text {n}", {"privacy": n % 2}))
    return items


@pytest.fixture(scope="module")
def variants() -> list[PolicyVariant]:
    return generate_variants(per_area=20, seed=2)


def _oracle(
    texts: list[LabelledText], variants: list[PolicyVariant], blind: bool
) -> Callable[[Sequence[tuple[str, str]]], list[float]]:
    by_text = {item.text: item for item in texts}
    by_policy = {v.text: v for variant in variants for v in (variant, variant.unedited())}
    library = {library_policy(c): c for c in OPENAI_CATEGORIES.values()}

    def score(pairs: Sequence[tuple[str, str]]) -> list[float]:
        out = []
        for policy, text in pairs:
            item = by_text[text]
            if policy in library:
                out.append(float(item.labels[library[policy]]))
                continue
            variant = by_policy[policy]
            label = item.labels[variant.area] if blind else variant.label_for(item)
            out.append(float(label or 0))
        return out

    return score


def test_a_model_that_reads_the_policy_scores_perfectly(variants: list[PolicyVariant]) -> None:
    texts = _texts()
    report = validation_report(texts, variants, _oracle(texts, variants, blind=False), limit=40)
    assert report["openai_library"]["any_category"]["f1"] == 1.0
    assert report["openai_library"]["per_category"]["hate"]["f1"] == 1.0
    assert report["openai_library"]["any_category_f1_ci95"] == [1.0, 1.0]
    assert report["wordings"]["seen"]["f1"] == report["wordings"]["unseen"]["f1"] == 1.0
    assert report["wordings"]["policies_unseen"] > 1
    assert report["held_out_area"]["f1"] == 1.0
    edits = report["hatecheck_edits"]
    assert edits["flipped"] > 0
    assert edits["kept"] > 0
    assert edits["flip_accuracy"] == edits["kept_accuracy"] == 1.0
    by_edit = edits["flip_accuracy_by_edit"]
    assert "" not in by_edit  # every flip is attributed to the edit that made it
    assert sum(group["n"] for group in by_edit.values()) == edits["flipped"]
    assert all(group["accuracy"] == 1.0 for group in by_edit.values())
    assert edits["flip_direction"]["accuracy"] == 1.0  # the edit moves the score every time
    assert set(edits["flip_direction"]["by_edit"]) == set(by_edit)
    assert edits["flip_direction_vs_unedited"]["accuracy"] == 1.0
    assert edits["kept_accuracy_unedited"] == 1.0
    assert edits["kept_lost_to_edit"] == 0.0


def test_kept_cases_an_edit_pushes_below_the_threshold_are_counted_as_lost_to_it(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    reading = _oracle(texts, variants, blind=False)
    edited = {v.text for v in variants if v.edits}

    def shy(pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Reads every policy, but flags nothing under one that carries an edit."""
        scores = reading(pairs)
        return [
            0.0 if policy in edited else s for (policy, _), s in zip(pairs, scores, strict=True)
        ]

    report = validation_report(texts, variants, shy, limit=40)["hatecheck_edits"]
    kept_hateful = 1 - report["kept_accuracy"]  # every kept miss is a hateful text
    assert kept_hateful > 0
    assert report["kept_accuracy_unedited"] == 1.0  # without the edit nothing is missed
    assert report["kept_lost_to_edit"] == pytest.approx(kept_hateful, abs=1e-4)


def test_hatecheck_under_the_library_policy_names_the_kinds_a_model_misses(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    reader = _oracle(texts, variants, blind=False)
    plain = library_policy("hate")
    implicit = {t.text for t in texts if "hatecheck:derog_impl_h" in t.traits}

    def misses_implicit_hate_under_the_library_policy(
        pairs: Sequence[tuple[str, str]],
    ) -> list[float]:
        scores = reader(pairs)
        return [
            0.0 if policy == plain and text in implicit else score
            for (policy, text), score in zip(pairs, scores, strict=True)
        ]

    report = validation_report(texts, variants, misses_implicit_hate_under_the_library_policy)
    library = report["hatecheck_library"]
    hatecheck = [t for t in validation_texts(texts) if t.source == "hatecheck"]
    assert library["n"] == len(hatecheck)  # every validation text, not a sample
    kinds = library["accuracy_by_functionality"]
    assert kinds.pop("derog_impl_h")["accuracy"] == 0.0
    assert kinds
    assert all(kind["accuracy"] == 1.0 for kind in kinds.values())
    assert library["precision"] == 1.0 > library["recall"]
    # the edited-policy sections never score the library policy, so they miss it
    assert report["hatecheck_edits"]["kept_accuracy"] == 1.0
    perfect = validation_report(texts, variants, reader)
    assert perfect["hatecheck_library"]["f1"] == perfect["hatecheck_library"]["accuracy"] == 1.0


def test_every_flipped_validation_case_is_measured_and_kept_cases_are_bounded(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    edited = [v for v in variants if v.area == "hate" and v.held_out and v.edits]
    hatecheck = [t for t in validation_texts(texts) if t.source == "hatecheck"]
    flips = sum(
        v.label_for(item) not in (None, item.labels["hate"]) for v in edited for item in hatecheck
    )
    report = validation_report(texts, variants, _oracle(texts, variants, blind=False), limit=3)
    edits = report["hatecheck_edits"]
    assert flips > 3
    assert edits["flipped"] == flips  # all of them, whatever the limit
    assert edits["kept"] <= 3 * len(edited)


def test_a_policy_blind_model_fails_every_flip(variants: list[PolicyVariant]) -> None:
    texts = _texts()
    report = validation_report(texts, variants, _oracle(texts, variants, blind=True), limit=40)
    assert report["hatecheck_edits"]["flip_accuracy"] == 0.0
    assert report["hatecheck_edits"]["flip_direction"]["accuracy"] == 0.0  # edits move nothing
    assert report["hatecheck_edits"]["flip_direction_vs_unedited"]["accuracy"] == 0.0
    by_edit = report["hatecheck_edits"]["flip_accuracy_by_edit"]
    assert by_edit
    assert all(group["accuracy"] == 0.0 for group in by_edit.values())
    assert report["hatecheck_edits"]["kept_accuracy"] == 1.0


def test_kept_accuracy_names_the_kinds_of_text_a_model_gets_wrong(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    reading = _oracle(texts, variants, blind=False)
    flags_reclaimed = {t.text for t in texts if "hatecheck:slur_reclaimed_nh" in t.traits}

    def wrong_on_reclaimed_slurs(pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [
            1.0 if text in flags_reclaimed else s
            for (_, text), s in zip(pairs, reading(pairs), strict=True)
        ]

    edits = validation_report(texts, variants, wrong_on_reclaimed_slurs, limit=40)
    kinds = edits["hatecheck_edits"]["kept_accuracy_by_functionality"]
    assert sum(kind["n"] for kind in kinds.values()) == edits["hatecheck_edits"]["kept"]
    assert kinds["slur_reclaimed_nh"]["accuracy"] == 0.0
    assert kinds["slur_reclaimed_nh"]["n"] > 0
    others = {k: v["accuracy"] for k, v in kinds.items() if k != "slur_reclaimed_nh"}
    assert others
    assert set(others.values()) == {1.0}


@pytest.mark.parametrize("blind", [False, True])
def test_probes_measure_every_edit_that_flips_a_case_apart(
    variants: list[PolicyVariant], blind: bool
) -> None:
    texts = _texts()
    probes = edit_probes("hate", 2, [v.text for v in variants], seed=2)
    score = _oracle(texts, [*variants, *probes], blind=blind)
    report = validation_report(texts, variants, score, limit=40, probes=probes)
    probed = report["hatecheck_edit_probes"]
    functionalities = {f"hatecheck:{name}" for name in FUNCTIONALITIES}
    speaking = {e.key for e in HARM_AREAS["hate"].edits if functionalities & e.relabel.keys()}
    flipping = {key for key in speaking if key not in ("hate+profanity", "hate+groups")}
    assert set(probed["flip_accuracy_by_edit"]) == flipping
    assert probed["variants"] == 2 * len(HARM_AREAS["hate"].edits)
    assert (
        probed["flip_accuracy"]
        == probed["flip_direction_vs_unedited"]["accuracy"]
        == (0.0 if blind else 1.0)
    )
    assert probed["kept_accuracy"] == 1.0
    assert (
        report["hatecheck_edits"]
        == validation_report(texts, variants, score, limit=40)["hatecheck_edits"]
    )  # the probes leave the original measure as it was
    assert "hatecheck_edit_probes" not in validation_report(texts, variants, score, limit=40)


def test_seen_policies_tell_a_model_that_memorised_its_training_policies_from_a_reader(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    reading, blind = _oracle(texts, variants, blind=False), _oracle(texts, variants, blind=True)
    held = {v.text for v in variants if v.held_out} | {v.unedited().text for v in variants}

    def memorised(pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Right under every training policy, blind under any other."""
        return [
            (blind if policy in held else reading)([(policy, text)])[0] for policy, text in pairs
        ]

    report = validation_report(texts, variants, memorised, limit=40)
    control = report["hatecheck_edits_seen_policies"]
    assert control["flipped"] > 0
    assert control["flip_accuracy"] == 1.0
    assert report["hatecheck_edits"]["flip_accuracy"] == 0.0
    carried = [e.key for v in variants if v.area == "hate" and v.edits for e in v.edits]
    assert set(control["flip_accuracy_by_edit"]) <= set(carried)
    assert control["variants"] <= 2 * len(set(carried))
    reader = validation_report(texts, variants, reading, limit=40)["hatecheck_edits_seen_policies"]
    assert reader["flip_accuracy"] == 1.0  # a reader passes the control too


def test_every_hatecheck_section_carries_the_flag_everything_floor(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    probes = edit_probes("hate", 1, [v.text for v in variants], seed=2)
    report = validation_report(
        texts, variants, lambda pairs: [1.0] * len(pairs), limit=40, probes=probes
    )
    for section in ("hatecheck_edits", "hatecheck_edit_probes", "hatecheck_edits_seen_policies"):
        measured = report[section]
        floor = measured["flag_everything"]
        assert floor["flip_accuracy"] == measured["flip_accuracy"]
        assert floor["kept_accuracy"] == measured["kept_accuracy"]
        assert 0.0 < floor["flip_accuracy"] < 1.0  # inclusions and exclusions both flip cases
        reading = validation_report(
            texts,
            variants,
            _oracle(texts, [*variants, *probes], blind=False),
            limit=40,
            probes=probes,
        )[section]
        assert reading["flag_everything"] == floor  # the floor depends on the cases alone
        assert reading["flip_accuracy"] > floor["flip_accuracy"]


def test_a_threshold_sweep_scores_each_pair_once_and_repeats_the_headlines(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    probes = edit_probes("hate", 1, [v.text for v in variants], seed=2)
    reading = _oracle(texts, [*variants, *probes], blind=False)
    asked: list[tuple[str, str]] = []

    def counted(pairs: Sequence[tuple[str, str]]) -> list[float]:
        asked.extend(pairs)
        return [0.3 + 0.4 * s for s in reading(pairs)]  # 0.3 or 0.7: only cuts between work

    plain = validation_report(texts, variants, counted, limit=20, probes=probes)
    asked.clear()
    swept = validation_report(
        texts, variants, counted, limit=20, probes=probes, sweep=(0.8, 0.5, 0.2, 0.5)
    )
    assert len(asked) == len(set(asked))  # three cuts, one scoring pass
    sweep = swept.pop("threshold_sweep")
    assert swept == plain
    assert [row["threshold"] for row in sweep] == [0.2, 0.5, 0.8]
    low, middle, high = sweep
    assert middle["any_category_f1"] == middle["unseen_f1"] == 1.0
    assert middle["hatecheck_edit_probes_flip"] == middle["hatecheck_edits_kept"] == 1.0
    assert low["hatecheck_edits_kept"] < 1.0  # flags every kept non-hateful case
    assert high["any_category_f1"] == high["seen_f1"] == 0.0  # flags nothing


def test_openai_categories_use_every_labelled_text_and_any_category_only_complete_rows(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    partial = [
        LabelledText("openai", f"oai-h-{n}", f"hate-only text {n}", {"hate": n % 2})
        for n in range(60)
    ]
    texts += partial
    split = {item.content_id for item in texts if split_of(item.content_id) == "validation"}
    complete = [item for item in texts[:400] if item.content_id in split]
    extra = validation_texts(partial)
    report = validation_report(texts, variants, _oracle(texts, variants, blind=False), limit=1000)[
        "openai_library"
    ]
    assert extra
    assert report["texts"] == len(complete)
    assert report["per_category"]["hate"]["n"] == len(complete) + len(extra)
    assert report["per_category"]["sexual"]["n"] == len(complete)
    assert report["any_category"]["f1"] == 1.0


def test_calibration_content_is_a_slice_of_validation_the_report_never_reads() -> None:
    texts = _texts()
    report, calibration = validation_texts(texts), calibration_texts(texts)
    split = {item.content_id for item in texts if split_of(item.content_id) == "validation"}
    report_ids = {item.content_id for item in report}
    calibration_ids = {item.content_id for item in calibration}
    assert calibration_ids
    assert not report_ids & calibration_ids
    assert report_ids | calibration_ids == split
    # the few rows any-category F1 rests on all stay in the report
    every = {item.content_id for item, _ in any_category_texts(texts)} & split
    assert every
    assert every <= report_ids


def test_calibration_pairs_come_from_seen_policies_and_calibration_content(
    variants: list[PolicyVariant],
) -> None:
    texts = _texts()
    pairs = calibration_pairs(texts, variants, per_area=20)
    held = {variant.variant_id for variant in variants if variant.held_out}
    assert pairs
    assert not {pair.policy_id for pair in pairs} & held
    assert {pair.label for pair in pairs} == {0, 1}
    assert {pair.text for pair in pairs} <= {item.text for item in calibration_texts(texts)}


def test_calibration_pairs_keep_the_labels_own_rate_instead_of_half(
    variants: list[PolicyVariant],
) -> None:
    rare = [
        LabelledText("toxigen", f"t-{n}", f"toxigen text {n}", {"hate": int(n % 10 == 0)})
        for n in range(3000)
    ]
    pairs = calibration_pairs(rare, variants, per_area=2000)
    share = sum(pair.label for pair in pairs) / len(pairs)
    assert len(pairs) > 50
    assert 0.03 < share < 0.2


@pytest.mark.parametrize("cuts", ["0,0.5", "0.5,1", "1.5", "nan", "inf", "half", "0.5,", ""])
def test_a_sweep_outside_zero_to_one_is_refused(
    cuts: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli import main

    with pytest.raises(SystemExit):
        main(["model", "validate", "--sweep", cuts])
    assert "thresholds must" in capsys.readouterr().err


def test_validate_and_calibrate_commands_on_a_small_data_set(
    data_dir: Path, worker_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import shutil

    from worker.cli import main
    from worker.model.manifest import load_manifest

    model = tmp_path / "model"
    shutil.copytree(worker_model_dir, model)
    common = ["--data-dir", str(data_dir), "--model-dir", str(model), "--provider", "cpu"]
    out = tmp_path / "report.json"
    assert main(["model", "validate", "--limit", "4", "--out", str(out), *common]) == 0
    report = json.loads(out.read_text())
    assert report["variant"] == "int8"
    assert set(report) >= {"openai_library", "wordings", "held_out_area", "hatecheck_edits"}
    assert report["wordings"]["policies_seen"] > 0
    assert report["hatecheck_edit_probes"]["variants"] > report["hatecheck_edits"]["variants"]
    without = tmp_path / "without.json"
    argv = ["model", "validate", "--limit", "4", "--probes-per-edit", "0", "--out", str(without)]
    assert main([*argv, *common]) == 0
    assert "hatecheck_edit_probes" not in json.loads(without.read_text())
    swept = tmp_path / "swept.json"
    argv = ["model", "validate", "--limit", "4", "--sweep", "0.7,0.3", "--out", str(swept)]
    assert main([*argv, *common]) == 0
    assert [row["threshold"] for row in json.loads(swept.read_text())["threshold_sweep"]] == [
        0.3,
        0.7,
    ]
    capsys.readouterr()
    code = main(["model", "calibrate", "--per-area", "4", *common])
    # an untrained model is no better than chance: refused, manifest untouched
    assert code == 2
    assert "calibration" in capsys.readouterr().err
    assert load_manifest(model).calibration is None


def test_validate_measures_the_variant_it_is_asked_for_and_names_a_missing_one(
    data_dir: Path, worker_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from worker.cli import main
    from worker.model.manifest import load_manifest

    common = [
        "--data-dir",
        str(data_dir),
        "--model-dir",
        str(worker_model_dir),
        "--provider",
        "cpu",
    ]
    out = tmp_path / "int8.json"
    argv = ["model", "validate", "--limit", "4", "--probes-per-edit", "0", "--variant", "int8"]
    assert main([*argv, "--out", str(out), *common]) == 0
    assert json.loads(out.read_text())["variant"] == "int8"
    capsys.readouterr()
    for command in (["validate", "--limit", "4"], ["calibrate", "--per-area", "4"]):
        assert main(["model", *command, "--variant", "fp32", *common]) == 2
        err = capsys.readouterr().err
        assert "has no fp32 variant (present: int8)" in err
    assert load_manifest(worker_model_dir).calibration is None


def test_hatecheck_under_harms_it_is_not_about_counts_what_a_model_flags_there() -> None:
    texts = [
        replace(item, labels=item.labels | dict.fromkeys(GROUP_HATE_NOT_ABOUT, 0))
        for item in _texts()
        if item.source == "hatecheck"
    ]
    texts.append(  # a rape threat: unlabelled under sexual, so never scored there
        LabelledText(
            "hatecheck",
            "hc-unlabelled",
            "unlabelled text",
            {"hate": 1, "self-harm": 0},
            frozenset({"source:hatecheck", "hatecheck:threat_dir_h"}),
        )
    )
    sexual = library_policy("sexual")
    threats = {t.text for t in texts if "hatecheck:threat_dir_h" in t.traits}

    def reads_threats_as_sexual(pairs: Sequence[tuple[str, str]]) -> list[float]:
        assert (sexual, "unlabelled text") not in pairs
        return [float(policy == sexual and text in threats) for policy, text in pairs]

    report = not_about(texts, reads_threats_as_sexual, 0.5, "hatecheck")
    hatecheck = validation_texts(texts)
    in_sexual = [t for t in hatecheck if "sexual" in t.labels]
    expected = sum(t.text in threats for t in in_sexual)
    assert 0 < expected < len(in_sexual)
    assert report["sexual"]["n"] == len(in_sexual)  # every labelled text, not a sample
    assert report["sexual"]["flagged_share"] == round(expected / len(in_sexual), 4)
    assert report["sexual"]["flagged_by"] == {"threat_dir_h": expected}
    for area in ("sexual-minors", "self-harm"):
        assert report[area]["flagged_share"] == 0.0
        assert report[area]["flagged_by"] == {}


def test_toxigen_under_harms_it_is_not_about_counts_flags_by_its_hate_label() -> None:
    texts = [
        LabelledText(
            "toxigen",
            f"tg-{n}",
            f"toxigen text {n}",
            {"hate": n % 2} | dict.fromkeys(GROUP_HATE_NOT_ABOUT, 0),
            frozenset({"source:toxigen"}),
        )
        for n in range(200)
    ]
    hateful = {t.text for t in texts if t.labels["hate"]}
    self_harm = library_policy("self-harm")

    def reads_hate_as_self_harm(pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [float(policy == self_harm and text in hateful) for policy, text in pairs]

    report = not_about(texts, reads_hate_as_self_harm, 0.5, "toxigen")
    held = validation_texts(texts)
    expected = sum(t.text in hateful for t in held)
    assert 0 < expected < len(held)
    assert report["self-harm"] == {
        "n": len(held),
        "flagged_share": round(expected / len(held), 4),
        "flagged_by": {"hateful": expected},
    }
    assert report["sexual"]["flagged_share"] == 0.0
