"""Chat templates that never change with the day: a pinned clock for rendering, and a template's identity read
from a local model folder without loading a tokenizer.

Why: Llama 3.2's chat template (and others) writes today's date into every system turn: `{%- if strftime_now is
defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "26 Jul 2024" %}`,
then "Today Date: <date_string>". transformers defines `strftime_now` as the real clock, so the same sweep
renders different prompts on different days, and no id records which. We render every chat template with
`strftime_now` bound to a fixed date (`policy.chat_template_date`, default 2024-07-26): the date the Llama 3.1
template hard-codes and the Llama 3.2 template falls back to when there is no clock. huggingface/search-and-learn
(`src/sal/config.py`, `Config.custom_chat_template`) keeps the same fallback but still calls `strftime_now`
under transformers >= 4.43 (it requires >= 4.47), so its prompts carry the day of the run; our default renders
what its template renders without a clock. A template that reads no clock renders exactly as before.

Identity (tts.identity): the policy's prompt-format fields (system prompt, user template, few-shot turns,
chat_template on/off, the pinned date, model and tokenizer ids) are config fields and enter every id. The
template text itself enters them where it can be read without loading anything: a local folder or a zoo
model (`chat_template.jinja`, `chat_template.json`, or `tokenizer_config.json`'s "chat_template"), hashed by
`chat_template_sha` and added to the resolved config by tts.grid.resolved. A hub model's template is named by
its model/tokenizer id only (reading it would download files in the driver): a hub revision that edits the
template is not seen by the ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

DEFAULT_TEMPLATE_DATE = "2024-07-26"
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "tokenizer_config.json")


def parse_date(value: str) -> dt.date:
    """An ISO date (YYYY-MM-DD); raises ValueError naming the field otherwise."""
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(
            f"policy.chat_template_date: invalid value {value!r}; give an ISO date, e.g. {DEFAULT_TEMPLATE_DATE}"
        ) from exc


def pinned_clock(date: str) -> Callable[[str], str]:
    """A `strftime_now(format)` for chat templates that returns `date` (noon, local-free) in that format."""
    moment = dt.datetime.combine(parse_date(date), dt.time(12, 0))
    return moment.strftime


def template_kwargs(date: str) -> dict[str, Callable[[str], str]]:
    """Keywords for `tokenizer.apply_chat_template`: template variables override transformers' globals, so the
    template's clock reads `date`."""
    return {"strftime_now": pinned_clock(date)}


def local_chat_template(folder: str | Path) -> str | None:
    """The chat template text stored in a model folder (no tokenizer is loaded), or None when there is none."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return None
    for name in TEMPLATE_FILES:
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if name.endswith(".jinja"):
            return text
        try:
            data = json.loads(text)
        except ValueError:
            continue
        template = data.get("chat_template") if isinstance(data, dict) else None
        if template:
            return json.dumps(template, sort_keys=True) if not isinstance(template, str) else template
    return None


@lru_cache(maxsize=256)
def _sha_of(folder: str, stamp: tuple[tuple[str, float, int], ...]) -> str | None:
    template = local_chat_template(folder)
    return hashlib.sha256(template.encode()).hexdigest()[:16] if template is not None else None


def chat_template_sha(model: str, tokenizer: str | None = None) -> str | None:
    """sha256 (16 hex) of the chat template a policy's tokenizer folder holds, when it is local (a folder or
    a zoo model); None for hub ids and embedded models converted on first use (their template is named by the
    id). Reads a few small files, cached by their modification times."""
    from tts.engines.embedded import PREFIX, ZOO_MODELS, ZOO_WEIGHTS

    source = tokenizer or model
    if source.startswith(PREFIX):
        name = source.removeprefix(PREFIX)
        if name not in ZOO_MODELS:
            return None
        folder = ZOO_WEIGHTS / name
    else:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            return None
    stamp = tuple(
        (n, (folder / n).stat().st_mtime, (folder / n).stat().st_size)
        for n in TEMPLATE_FILES
        if (folder / n).is_file()
    )
    return _sha_of(str(folder), stamp)


__all__ = [
    "DEFAULT_TEMPLATE_DATE",
    "chat_template_sha",
    "local_chat_template",
    "parse_date",
    "pinned_clock",
    "template_kwargs",
]
