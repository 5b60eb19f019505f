"""`tunebench rescore`: our records and the reference's cached outputs, predictions and JSON scores."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from steps.mmlu_pro.extract import fallback_letter
from workflows.cli import app


def _ours(path: Path, rows: list[tuple[int, str, str, str]]) -> Path:
    """Records as eval_mmlu_pro writes them: (question_id, subject, answer, generated_text)."""
    path.write_text("".join(json.dumps({"question_id": qid, "subject": subject, "answer": answer, "n_options": 4,
                                        "generated_text": text, "pred": "Z", "method": "stale", "correct": True}) + "\n"
                            for qid, subject, answer, text in rows))
    return path


def _reference(rows: list[tuple[int, str, str, str]], text_field: str) -> str:
    return json.dumps([{"question_id": qid, "category": subject, "answer": answer, "options": ["1", "2", "3"],
                        text_field: text, "pred": None} for qid, subject, answer, text in rows])


def _rescore(*args: str):
    return CliRunner().invoke(app, ["rescore", *args])


def test_our_records_are_scored_again_and_predictions_are_written(tmp_path):
    math = _ours(tmp_path / "math.jsonl", [(1, "math", "A", "the answer is (A)"), (2, "math", "B", "Answer: C"),
                                           (3, "math", "C", "nothing at all")])
    law = _ours(tmp_path / "law.jsonl", [(4, "law", "D", "I think D.")])
    result = _rescore(str(math), str(law), "--predictions", str(tmp_path / "p.jsonl"), "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output

    predictions = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [(p["question_id"], p["pred"], p["method"]) for p in predictions] == [
        (1, "A", "l1"), (2, "C", "l2"), (3, fallback_letter(3, 4), "fallback"), (4, "D", "l3")]
    report = json.loads((tmp_path / "s.json").read_text())
    third_right = fallback_letter(3, 4) == "C"
    assert report["subjects"]["law"] == {"n": 1, "correct": 1, "accuracy": 1.0}
    assert report["subjects"]["math"]["correct"] == 1 + third_right
    assert report["overall"]["n"] == 4 and report["overall"]["correct"] == 2 + third_right
    assert "overall" in result.output and "math" in result.output


def test_strict_counts_a_miss_as_wrong_with_no_prediction(tmp_path):
    ours = _ours(tmp_path / "math.jsonl", [(1, "math", "A", "Answer: A"), (2, "math", "B", "so the answer is B")])
    result = _rescore(str(ours), "--extract", "strict", "--predictions", str(tmp_path / "p.jsonl"),
                      "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 0
    predictions = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [(p["pred"], p["method"]) for p in predictions] == [(None, "none"), ("B", "l1")]
    assert json.loads((tmp_path / "s.json").read_text())["overall"] == {"n": 2, "correct": 1, "accuracy": 0.5}


def test_the_references_json_lists_and_zips_are_read_with_either_text_field(tmp_path):
    rows = [(10, "history", "B", "the answer is (B)"), (11, "history", "A", "the answer is (C)")]
    (tmp_path / "history_result.json").write_text(_reference(rows[:1], "model_outputs"))
    with zipfile.ZipFile(tmp_path / "outputs.zip", "w") as archive:
        archive.writestr("model_outputs_x.json", _reference(rows[1:], "generated_text"))
    result = _rescore(str(tmp_path / "history_result.json"), str(tmp_path / "outputs.zip"), "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text())["subjects"] == {"history": {"n": 2, "correct": 1, "accuracy": 0.5}}


def test_unusable_input_is_refused_with_one_line(tmp_path):
    (tmp_path / "bad.json").write_text("[{\"question_id\": 1, \"answer\": \"A\"}]")
    ours = _ours(tmp_path / "a.jsonl", [(1, "math", "A", "x")])
    cases = [
        ((str(tmp_path / "absent.jsonl"),), "does not exist"),
        ((str(tmp_path / "bad.json"),), "lacks generated_text or model_outputs, options"),
        ((str(ours), str(ours)), "question_id 1 appears twice"),
        ((str(ours), "--extract", "loose"), "valid: tiger, strict"),
    ]
    for args, message in cases:
        result = _rescore(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


# --- issue 11: items 7, 10 and 11 -----------------------------------------------------------------

def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    return result.output


def test_item10_binary_input_and_non_text_generations_are_one_line(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    assert "model.bin is not UTF-8 text" in _one_line_error(_rescore(str(tmp_path / "model.bin")))
    for value in (12, ["the answer is (A)"], {"text": "x"}):
        path = tmp_path / "odd.jsonl"
        path.write_text(json.dumps({"question_id": 7, "answer": "A", "n_options": 4, "generated_text": value}) + "\n")
        output = _one_line_error(_rescore(str(path)))
        assert "question_id 7: generated_text is" in output and "not text" in output


def test_item11_an_empty_input_is_refused_not_scored_0_of_0(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "empty.json").write_text("[]")
    for name in ("empty.jsonl", "empty.json"):
        output = _one_line_error(_rescore(str(tmp_path / name), "--json", str(tmp_path / "s.json")))
        assert "nothing to score" in output
    assert not (tmp_path / "s.json").exists()


def test_item11_an_answer_outside_the_questions_options_is_refused(tmp_path):
    outside = _ours(tmp_path / "math.jsonl", [(1, "math", "A", "x"), (2, "math", "F", "the answer is (F)")])
    assert "question_id 2: answer 'F' is not one of its 4 options (A–D)" in _one_line_error(_rescore(str(outside)))
    (tmp_path / "ref.json").write_text(_reference([(3, "law", "D", "the answer is (D)")], "model_outputs"))
    assert "answer 'D' is not one of its 3 options (A–C)" in _one_line_error(_rescore(str(tmp_path / "ref.json")))


def test_item7_outputs_that_are_not_regular_files_are_refused_with_one_line(tmp_path):
    ours = _ours(tmp_path / "math.jsonl", [(1, "math", "A", "the answer is (A)")])
    (tmp_path / "folder").mkdir()
    (tmp_path / "target.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "target.json")
    cases = {"--predictions": tmp_path / "folder", "--json": tmp_path / "link.json"}
    for option, path in cases.items():
        output = _one_line_error(_rescore(str(ours), option, str(path)))
        assert f"{path} is a {'directory' if path.is_dir() and not path.is_symlink() else 'symlink'}" in output
    assert (tmp_path / "target.json").read_text() == "{}" and (tmp_path / "link.json").is_symlink()
    fifo = tmp_path / "fifo"
    import os

    os.mkfifo(fifo)
    assert f"{fifo} is a FIFO" in _one_line_error(_rescore(str(ours), "--json", str(fifo)))
    assert "is a file, not a directory" in _one_line_error(
        _rescore(str(ours), "--json", str(tmp_path / "target.json" / "s.json")))


def test_item10_a_damaged_zip_is_one_line(tmp_path):
    rows = [(10, "history", "B", "the answer is (B)")]
    with zipfile.ZipFile(tmp_path / "outputs.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model_outputs_x.json", _reference(rows, "generated_text") * 50)
    data = bytearray((tmp_path / "outputs.zip").read_bytes())
    data[60:90] = b"\0" * 30   # inside the compressed member
    (tmp_path / "outputs.zip").write_bytes(bytes(data))
    assert "outputs.zip is a damaged zip" in _one_line_error(_rescore(str(tmp_path / "outputs.zip")))
