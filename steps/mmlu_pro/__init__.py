"""MMLU-Pro: subjects, data, prompt, extraction, engines and scoring shared by eval and rescore."""
