"""tts.identity: the three named projections of a resolved config (cell id, configuration id, pool id), each
with the fields it keeps and drops; and the data set's contents entering them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tts import identity
from tts.grid import Cell, expand, resolved
from tts.runtime.plan import generation_key, pool_group_key


def _one(*overrides: str) -> Cell:
    (cell,) = expand(["prm=rule_arithmetic", "dataset.per_level=2", *overrides]).cells
    return cell


def test_cell_id_keeps_the_seed_and_drops_sweep_level_fields() -> None:
    cell = _one()
    cfg = cell.config
    assert cell.id == identity.cell_id(resolved(cfg))
    moved = replace(
        cfg,
        results_dir="/elsewhere",
        cluster=replace(cfg.cluster, max_tries=1, mode="ray"),
        sweep=replace(cfg.sweep, name="x"),
    )
    assert identity.cell_id(resolved(moved)) == cell.id
    resources = replace(cfg, engine=replace(cfg.engine, num_cpus=7.0, replicas=3))
    assert identity.cell_id(resolved(resources)) == cell.id  # resources change speed, not rows
    assert _one("seed=1").id != cell.id
    fields = identity.cell_fields(resolved(cfg))
    assert not set(identity.SWEEP_LEVEL_FIELDS) & set(fields)


def test_configuration_id_pools_seeds_only() -> None:
    base = _one()
    assert _one("seed=3").config_id == base.config_id
    assert _one("seed=3", "engine.seed=5").config_id == base.config_id
    for override in (
        "policy.max_tokens=100",
        "policy.prompt_template='Solve: {question}'",
        "prm.format=step_tag",
        "dataset.levels=[1,2]",
        "policy.temperature=0.3",
        "strategy.temperature=0.5",
        "prm.aggregation=mean",
    ):
        assert _one(override).config_id != base.config_id, override


def test_pool_id_is_shared_by_every_pool_based_cell_of_a_group() -> None:
    cells = expand(
        [
            "prm=rule_arithmetic",
            "dataset.per_level=2",
            "strategy=best_of_n,majority_vote,weighted_best_of_n",
            "n=1,4",
        ]
    ).cells
    assert len({pool_group_key(c.config) for c in cells}) == 1
    assert len({c.config_id for c in cells}) == 6
    other = _one("policy.temperature=0.3")
    assert pool_group_key(other.config) != pool_group_key(cells[0].config)
    scorer = _one("prm.aggregation=mean")  # any aggregation reads the same stored per-step scores
    assert pool_group_key(scorer.config) == pool_group_key(cells[0].config)
    judge = expand(["prm=judge_smollm2", "dataset.per_level=2"]).cells[0]
    assert pool_group_key(judge.config) != pool_group_key(cells[0].config)
    assert generation_key(judge.config) == generation_key(cells[0].config)  # one generation for both PRMs


def test_editing_a_local_data_file_changes_every_id(tmp_path: Path) -> None:
    data = tmp_path / "probs.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "1 + 1", "answer": "2"}) + "\n")
    args = ("dataset=local", f"dataset.path={data}", "strategy=majority_vote", "prm=none")
    before = expand(list(args)).cells[0]
    pool_before = pool_group_key(before.config)
    again = expand(list(args)).cells[0]
    assert again.id == before.id
    data.write_text(
        json.dumps({"id": "a", "question": "1 + 1", "answer": "3"}) + "\n"
    )  # same path, new contents
    after = expand(list(args)).cells[0]
    assert after.id != before.id and after.config_id != before.config_id
    assert pool_group_key(after.config) != pool_before
    assert resolved(after.config)["dataset"]["content"].startswith("sha256:")


def test_built_in_sets_keep_their_ids_across_releases() -> None:
    """Results folders written before content hashes existed resume: a generated set's ids are unchanged."""
    cell = _one()
    assert "content" not in resolved(cell.config)["dataset"]
    assert cell.id == identity.stable_hash(identity.cell_fields(resolved(cell.config)))


@pytest.mark.parametrize("axis", ["cluster.max_tries=1,3", "results_dir=a,b", "sweep.name=a,b"])
def test_sweeping_a_sweep_level_field_is_rejected(axis: str) -> None:
    from tts.config import ConfigError

    with pytest.raises(ConfigError, match=r"sweep-level setting"):
        expand([axis])


# Ids of the default cell above as written under results schema 4, before policy.top_k / min_p /
# thinking_start / thinking_end existed, and under schema 5 (dataset.evaluator and policy.chat_template_date
# enter every id: rows graded or prompted under the old rules are never found as finished or merged). A change
# that alters the schema-5 ids makes stored results recompute.
SCHEMA_4_IDS = ("1048ac95c3154eb8", "183afe69fe79f55a", "9287cdbfa7722f5c", "2b97f1ab9e766472")
SCHEMA_5_IDS = ("dda90d6832a3ae58", "7ef353bd05f28c8a", "c52ec1d47920beaa", "5f852bc2de025688")
LATE = [
    path.removeprefix("policy.") for path, _ in identity.NEUTRAL_LATE_FIELDS if path.startswith("policy.")
]
# Engine fields added with per-request seeds (results schema 5): none changes a stored pool's id.
LATE_ENGINE = ("batch_invariant", "enable_chunked_prefill", "max_num_batched_tokens")


def _ids(cell: Cell) -> tuple[str, str, str, str]:
    return cell.id, cell.config_id, pool_group_key(cell.config), generation_key(cell.config)


def test_fields_added_at_their_neutral_default_leave_every_id_unchanged() -> None:
    cell = _one()
    assert _ids(cell) == SCHEMA_5_IDS
    assert not set(SCHEMA_5_IDS) & set(SCHEMA_4_IDS)
    new = resolved(cell.config)
    old = json.loads(json.dumps(new))
    for key in LATE:
        assert key in old["policy"]
        del old["policy"][key]  # a config from before the fields existed
    assert identity.cell_id(old) == identity.cell_id(new) == cell.id
    assert identity.configuration_id(old) == identity.configuration_id(new) == cell.config_id
    assert identity.policy_key(old) == identity.policy_key(new)
    sampling = {"temperature": 0.8, "top_p": 1.0, "max_tokens": 256, "step_delimiter": "\n\n"}
    with_defaults = {**sampling, "top_k": None, "min_p": 0.0, "thinking_start": None, "thinking_end": None}
    assert identity.generation_key(old, sampling, ["a"], 4) == identity.generation_key(
        new, with_defaults, ["a"], 4
    )  # an engine actor's in-memory cache key: it names the engine's settings, all of them
    for key in LATE_ENGINE:  # stored ids: a config from before the engine fields existed
        assert key in old["engine"]
        del old["engine"][key]
    assert identity.cell_id(old) == cell.id
    assert identity.pool_id(old, sampling, ["a"], 4, True) == identity.pool_id(
        new, with_defaults, ["a"], 4, True
    )


@pytest.mark.parametrize(
    "override",
    ["policy.top_k=20", "policy.min_p=0.05", "policy.thinking_end='</think>'", "policy.thinking_start=x"],
)
def test_setting_an_added_field_changes_the_ids_but_not_the_engine(override: str) -> None:
    base = _one()
    changed = _one(override)
    assert all(a != b for a, b in zip(_ids(changed), _ids(base), strict=True)), override
    # per-request knobs: the same engine serves both
    assert identity.policy_key(resolved(changed.config)) == identity.policy_key(resolved(base.config))


# ------------------------------------------------------------------------- prompts and grading (schema 5)
@pytest.mark.parametrize(
    "override", ["policy.chat_template_date=2025-01-01", "dataset.evaluator=qwen25_math"]
)
def test_the_template_date_and_the_evaluator_enter_every_id(override: str) -> None:
    base, changed = _one(), _one(override)
    assert all(a != b for a, b in zip(_ids(changed), _ids(base), strict=True)), override


def test_a_local_chat_template_enters_every_id(tmp_path: Path) -> None:
    """Two copies of one local tokenizer folder that differ only in their chat template's text: different
    cell, configuration, pool, generation and engine keys; the same text again: the same ids."""
    import shutil

    from tts.engines.embedded import ZOO_WEIGHTS

    src = ZOO_WEIGHTS / "zoo-policy-m"
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json"):
            shutil.copy(src / name, d / name)
    (b / "chat_template.jinja").write_text((a / "chat_template.jinja").read_text() + "{# edited #}")
    first = _one(f"policy.tokenizer={a}")
    second = _one(f"policy.tokenizer={b}")
    assert (
        resolved(first.config)["policy"]["chat_template_sha"]
        != resolved(second.config)["policy"]["chat_template_sha"]
    )
    assert all(x != y for x, y in zip(_ids(first), _ids(second), strict=True))
    assert identity.policy_key(resolved(first.config)) != identity.policy_key(resolved(second.config))
    assert _ids(_one(f"policy.tokenizer={a}")) == _ids(first)
    # a hub model's template cannot be read without a download: no hash, the id names it
    assert "chat_template_sha" not in resolved(_one().config)["policy"]
