"""steps.merge_lora for real: the merged model is complete, loads, generates and equals base + adapter."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_train_support import PROJECT_ROOT, copy_run, offline_env, run_step, shared_trained_run

from steps.training.model_folder import model_folder_problems

pytestmark = pytest.mark.axolotl
NO_CHILD_PROCESS = ("import os, subprocess\n"
                    "def refuse(*args, **kwargs): raise AssertionError('the step started a child process')\n"
                    "subprocess.Popen = os.posix_spawn = os.fork = os.execv = os.execve = refuse\n"
                    "import runpy; runpy.run_module('steps.merge_lora', run_name='__main__')\n")


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """A copy of the shared trained run, merged once for this module."""
    run = copy_run(shared_trained_run(tmp_path_factory), tmp_path_factory.mktemp("merge") / "train")
    # In one interpreter (issue 13): a child process, Axolotl's CLI included, fails the merge.
    result = subprocess.run([sys.executable, "-c", NO_CHILD_PROCESS, "--config", str(run.config)], cwd=PROJECT_ROOT,
                            env=offline_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run


def test_the_merged_model_is_complete_and_recorded(merged):
    folder = merged.output / "merged"
    assert model_folder_problems(folder) == []
    record = json.loads((merged.output / "merged.json").read_text())
    assert record["adapter_dir"] == str(merged.output) and len(record["adapter_sha256"]) == 64


def test_the_merged_model_generates_like_the_base_model_with_the_adapter(merged):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged.output / "merged")
    prompt = tokenizer("USER: In a math exercise, what is 3 + 4?\nASSISTANT:", return_tensors="pt")
    model = AutoModelForCausalLM.from_pretrained(merged.output / "merged").eval()
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(merged.assets.base_model),
                                          merged.output).eval()
    base = AutoModelForCausalLM.from_pretrained(merged.assets.base_model).eval()
    with torch.no_grad():
        logits, expected, untrained = (m(**prompt).logits for m in (model, reference, base))
        generated = model.generate(**prompt, max_new_tokens=8, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)
    assert torch.allclose(logits, expected, atol=1e-4)
    assert not torch.allclose(logits, untrained, atol=1e-2)  # the adapter changed the model
    assert generated.shape[1] > prompt["input_ids"].shape[1]


def test_a_complete_merge_is_not_redone(merged):
    weights = merged.output / "merged" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    result = run_step("steps.merge_lora", "--config", merged.config)
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stderr and weights.stat().st_mtime_ns == before


def test_an_incomplete_merge_is_redone(merged, tmp_path):
    run = copy_run(merged, tmp_path / "train")
    weights = run.output / "merged" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a pod killed mid-write
    result = run_step("steps.merge_lora", "--config", run.config)
    assert result.returncode == 0, result.stderr
    assert "removing" in result.stderr and model_folder_problems(run.output / "merged") == []


def test_upload_to_a_local_folder_gives_a_loadable_model_and_a_card(merged, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = tmp_path / "upload"
    result = run_step("steps.upload", "--model-dir", merged.output / "merged", "--repo-id", "acme/tiny-merged",
                      "--target", target, "--axolotl-config", merged.config, "--dataset", "nvidia/AceReason-Math",
                      "--dataset-revision", "main")
    assert result.returncode == 0, result.stderr
    card = (target / "README.md").read_text()
    assert "# tiny-merged" in card and "alpaca_chat.load_qa" in card and "| lora_r | `16` |" in card
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target)
    out = model.generate(**tokenizer("USER: hi\nASSISTANT:", return_tensors="pt"), max_new_tokens=4,
                         do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > 0
