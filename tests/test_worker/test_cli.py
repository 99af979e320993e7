from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import main


def _label(model_dir: Path, *args: str) -> list[str]:
    return ["label", "--model-dir", str(model_dir), "--provider", "cpu", *args]


@pytest.fixture
def policies(tmp_path: Path) -> dict[str, str]:
    """Two short policy files that fit the tiny model's 64-token policy budget."""
    paths = {}
    for name, text in [
        ("insults", "Flag insults aimed at a person."),
        ("food", "Flag content that mentions food."),
    ]:
        path = tmp_path / f"{name}.md"
        path.write_text(f"# Criteria\n{text}\n")
        paths[name] = str(path)
    return paths


def test_label_prints_one_jsonl_record_per_text(
    tiny_model_dir: Path, policies: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        _label(
            tiny_model_dir,
            "--policy",
            policies["insults"],
            "--policy",
            policies["food"],
            "hi",
            "bye",
        )
    )
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["id"] for record in records] == ["arg-0", "arg-1"]
    for record in records:
        assert [result["policy"] for result in record["results"]] == ["insults", "food"]
        assert all(0 < result["score"] < 1 for result in record["results"])
        assert record["model"] == "tiny-checkpoint0"


def test_label_reads_jsonl_and_plain_lines(
    tiny_model_dir: Path,
    policies: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "text": "hello"}\n\nplain words here\n')
    code = main(_label(tiny_model_dir, "--policy", policies["food"], "--input", str(source)))
    assert code == 0
    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == ["a", "line-3"]


def test_a_policy_file_can_be_given_by_path(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "spam.md"
    policy.write_text("# Criteria\nFlag unsolicited advertising.")
    assert main(_label(tiny_model_dir, "--policy", str(policy), "buy now")) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["results"][0]["policy"] == "spam"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy", "no-such-policy", "x"], "no library policy 'no-such-policy'"),
        (["--policy", "hate"], "no texts to label"),
        (["--policy", "/nonexistent/p.md", "x"], "cannot read policy file"),
    ],
)
def test_bad_requests_get_one_clear_line_and_exit_2(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(_label(tiny_model_dir, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("cope: error: ")
    assert message in err
    assert "Traceback" not in err


def test_a_bad_jsonl_line_is_reported_with_its_number(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n{"text": broken\n')
    assert main(_label(tiny_model_dir, "--policy", "hate", "--input", str(source))) == 2
    assert f"{source}:2: expected a JSON object" in capsys.readouterr().err


def test_an_over_long_policy_is_refused_with_count_and_limit(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_policy = tmp_path / "long.md"
    long_policy.write_text("forbidden " * 100)
    assert main(_label(tiny_model_dir, "--policy", str(long_policy), "x")) == 2
    assert "policy is 100 tokens; the model accepts at most 64" in capsys.readouterr().err


def test_cuda_without_cuda_is_a_clear_error(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    code = main(
        ["label", "--model-dir", str(tiny_model_dir), "--provider", "cuda", "--policy", "hate", "x"]
    )
    assert code == 2
    assert "provider 'cuda' requested" in capsys.readouterr().err


def test_info_verifies_hashes_and_lists_providers(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["model", "info", "--model-dir", str(tiny_model_dir)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["variants"]) == {"fp32", "fp16", "int8"}
    assert all(entry["verified"] for entry in info["variants"].values())
    assert "CPUExecutionProvider" in info["available_providers"]


def test_info_on_a_tampered_model_fails_clearly(
    model_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (model_copy / "model.fp32.onnx").open("ab") as handle:
        handle.write(b"tampered")
    assert main(["model", "info", "--model-dir", str(model_copy)]) == 2
    assert "does not match its manifest" in capsys.readouterr().err


def test_an_invalid_setting_from_the_environment_is_a_clear_error(tiny_model_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "model", "info"],
        env={"COPE_MAX_BATCH_SIZE": "0", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid setting" in result.stderr


def test_export_writes_fused_variants_and_manifest(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exported"
    code = main(
        [
            "model",
            "export",
            "--checkpoint",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--max-length",
            "128",
            "--max-policy-tokens",
            "64",
            "--variants",
            "fp32,int8",
            "--rounding-pairs",
            "0",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["variants"] == ["fp32", "int8"]
    assert report["fused_ops"]["Attention"] == 2
    assert sorted(path.name for path in out.iterdir()) == [
        "manifest.json",
        "model.fp32.onnx",
        "model.int8.onnx",
        "tokenizer.json",
    ]


def test_export_rejects_an_unknown_variant(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "model",
            "export",
            "--checkpoint",
            str(tiny_checkpoint),
            "--out",
            str(tmp_path),
            "--variants",
            "fp32,int4",
        ]
    )
    assert code == 2
    assert "unknown variant 'int4'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--rounding-pairs", "-1"], "--rounding-pairs must be 0 or more, not -1"),
        # The tiny model's 64-token policy budget cannot hold a library policy.
        (["--rounding-pairs", "4"], "a rounding pair's policy is "),
        (["--data-dir", "/nonexistent"], "or export with --rounding-pairs 0"),
    ],
)
def test_export_explains_rounding_pairs_it_cannot_use(
    tiny_checkpoint: Path,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: list[str],
    message: str,
) -> None:
    out = tmp_path / "exported"
    export = ["model", "export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    tiny = ["--max-length", "128", "--max-policy-tokens", "64", "--data-dir", str(data_dir)]
    code = main([*export, *tiny, *option])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--twin-margin", "-1"], "twin margin must be at least 0"),
        (["--draw-weight", "hate:hatecheck:ident_pos_nh:x=2"], "draw weights must be"),
        (["--draw-weight", "hate:hatecheck:ident_pos_nh"], "a draw weight is KEY=W"),
    ],
)
def test_train_refuses_a_bad_option_before_making_a_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    run = tmp_path / "run"
    assert main(["model", "train", str(run), *option]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not run.exists()


def test_eval_reports_the_contract_fields_and_writes_predictions(
    tiny_model_dir: Path,
    policies: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data.jsonl"
    rows = [
        {"id": f"r{i}", "text": f"text {i} pizza" if i % 2 else f"text {i}", "food": i % 2}
        for i in range(10)
    ]
    rows.append({"id": "unlabelled", "text": "skipped"})
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    predictions = tmp_path / "pred.jsonl"
    code = main(
        [
            "eval",
            "--model-dir",
            str(tiny_model_dir),
            "--provider",
            "cpu",
            "--policy",
            policies["food"],
            "--data",
            str(data),
            "--label-field",
            "food",
            "--predictions-out",
            str(predictions),
            "--json",
            "--plot",
            str(tmp_path / "pr.png"),
            "--target-precision",
            "0.9",
        ]
    )
    assert code == 0
    assert (tmp_path / "pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {
        "n",
        "positives",
        "precision",
        "recall",
        "f1",
        "auroc",
        "threshold",
        "model_version",
        "policy_sha256",
        "pairs_per_s",
        "for_target_precision",
    }
    assert (report["n"], report["positives"]) == (10, 5)
    operating = report["for_target_precision"]
    assert operating["target"] == 0.9
    assert operating["threshold"] is None or operating["precision"] >= 0.9
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [row["id"] for row in written] == [f"r{i}" for i in range(10)]
    assert all(set(row) == {"id", "score", "label"} for row in written)


@pytest.mark.parametrize("option", [["--target-precision", "1.5"], ["--threshold", "-0.1"]])
def test_eval_refuses_an_impossible_operating_point(
    tiny_model_dir: Path,
    policies: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: list[str],
) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "a", "y": 1}\n')
    arguments = ["eval", "--model-dir", str(tiny_model_dir), "--policy", policies["food"]]
    code = main([*arguments, "--data", str(data), "--label-field", "y", *option])
    assert code == 2
    assert f"{option[0]} must be" in capsys.readouterr().err


def test_eval_names_the_bad_line(
    tiny_model_dir: Path,
    policies: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "a", "y": 1}\n{"text": "", "y": 0}\n')
    code = main(
        [
            "eval",
            "--model-dir",
            str(tiny_model_dir),
            "--policy",
            policies["food"],
            "--data",
            str(data),
            "--label-field",
            "y",
        ]
    )
    assert code == 2
    assert f"{data}:2: missing or empty 'text'" in capsys.readouterr().err


def test_policy_check_compares_the_model_with_gold_and_teacher_eyes(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / "food.md"
    draft.write_text(
        "# Criteria\n## Overview\nFood.\n## Definition of Terms\n- **Food**: f.\n"
        "## Interpretation of Language\n- Literal.\n## Definition of Labels\n"
        "### (FD): Food\n#### Includes\n- **Dishes**: any.\n"
    )
    sample = tmp_path / "sample.jsonl"
    sample.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "text": f"text {i}", "gold": i % 2}) + "\n" for i in range(6)
        )
    )
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text(
        "".join(json.dumps({"id": f"s{i}", "score": 0.2 + 0.1 * i}) + "\n" for i in range(6))
    )
    base = [
        "policy",
        "check",
        str(draft),
        "--data",
        str(sample),
        "--model-dir",
        str(tiny_model_dir),
        "--provider",
        "cpu",
    ]
    assert main([*base, "--gold", "gold"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 6
    assert report["positives_b"] == 3
    assert set(report) >= {"agreement_f1", "cohen_kappa", "disagreements"}
    assert main([*base, "--teacher-labels", str(teacher)]) == 0
    assert json.loads(capsys.readouterr().out)["positives_b"] == 3  # 0.5, 0.6, 0.7
    assert main([*base, "--paraphrase", str(draft)]) == 0
    assert json.loads(capsys.readouterr().out)["cohen_kappa"] == 1.0  # same words, same eye
    teacher.write_text(json.dumps({"id": "s0", "score": 0.9}) + "\n")
    assert main([*base, "--teacher-labels", str(teacher)]) == 2
    assert "has no label for 5 rows" in capsys.readouterr().err


def test_recover_writes_a_checkpoint_that_export_accepts(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "recovered"
    assert main(["model", "recover", "--model-dir", str(tiny_model_dir), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["variant"] == "fp32"
    export = ["model", "export", "--checkpoint", str(out), "--out", str(tmp_path / "again")]
    tiny = ["--max-length", "128", "--max-policy-tokens", "64", "--rounding-pairs", "0"]
    assert main([*export, *tiny, "--variants", "int8"]) == 0


def test_recover_refuses_to_write_over_a_folder_that_holds_files(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "state.pt").write_text("a training run's state")
    code = main(["model", "recover", "--model-dir", str(tiny_model_dir), "--out", str(tmp_path)])
    assert code == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "state.pt").read_text() == "a training run's state"
    a_file = tmp_path / "state.pt"
    code = main(["model", "recover", "--model-dir", str(tiny_model_dir), "--out", str(a_file)])
    assert code == 2
    assert "is a file" in capsys.readouterr().err
    assert a_file.read_text() == "a training run's state"


def test_average_prints_its_provenance_and_refuses_one_checkpoint(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    average = ["model", "average", "--checkpoint", str(tiny_checkpoint)]
    out = tmp_path / "soup"
    assert main([*average, "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["shares"] == [0.5, 0.5]
    assert (out / "model.safetensors").is_file()
    assert main([*average, "--out", str(tmp_path / "one")]) == 2
    err = capsys.readouterr().err
    assert "at least two" in err
    assert "Traceback" not in err


def test_export_refuses_to_round_against_data_without_training_texts(
    tiny_checkpoint: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rounding to nearest instead, without saying so, would ship a worse model unnoticed."""
    for path in data_dir.rglob("*"):
        if path.suffix == ".jsonl":
            path.write_text("")
        elif path.suffix == ".csv":
            lines = path.read_text().splitlines(keepends=True)
            comments = sum(line.startswith("#") for line in lines)
            path.write_text("".join(lines[: comments + 1]))  # the header alone
    out = tmp_path / "exported"
    export = ["model", "export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    tiny = ["--max-length", "128", "--max-policy-tokens", "64", "--data-dir", str(data_dir)]
    assert main([*export, *tiny]) == 2
    assert "no training-split text under a library policy" in capsys.readouterr().err
    assert not (out / "manifest.json").exists()
