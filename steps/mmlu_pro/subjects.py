"""The 14 MMLU-Pro categories, spelled as the dataset's `category` column spells them."""
from __future__ import annotations

SUBJECTS: tuple[str, ...] = (
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
)
