"""Endpoint policies and verifiers against real `vllm serve`s (CPU): the zoo policy behind a fault-injecting proxy,
and the zoo PRM (`--runner pooling`, token-wise pooling for the step tags).

One sweep runs in-process (policy=zoo_policy_m, prm=zoo_prm_l, chain arithmetic, temperature 0: best-of-N,
weighted best-of-N, beam search), then the same sweep with `policy.backend=openai` against the policy server
through tts.testing.fault_proxy, which answers its first requests with a 429, a 500 and a response stalled past
`policy.timeout_s`, and with `prm.base_url` on the PRM server. What must hold:
  - every cell finishes (status ok), and the 3 retries are in the rows (`retries`, per pool / search job);
  - at temperature 0 every row's answer, correctness and token counts (tokens_in, tokens_out) equal the
    in-process engine's, and every stored sample's text and token count too;
  - the rows say the samples came from an endpoint (`seeding: per_request_endpoint`);
  - the API key (the server requires it: VLLM_API_KEY) was sent, and appears in no file under the results folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("vllm")
pytest.importorskip("openai")

from tts.grid import expand  # noqa: E402
from tts.runtime.driver import run_sweep  # noqa: E402
from tts.store import load, load_samples  # noqa: E402
from tts.testing.fault_proxy import FaultProxy  # noqa: E402
from tts.testing.vllm_serve import vllm_serve  # noqa: E402
from tts.zoo import weights_dir  # noqa: E402

KEY_ENV = "TTS_TEST_SERVE_KEY"
KEY = "sk-tts-test-7f3a9c2e5b1d"
os.environ[KEY_ENV] = KEY  # before the session's Ray starts, as a user exports it before `tts sweep`
FAULTS = ["429", "500", "stall"]
KEYS = ["strategy", "n", "problem_id"]
PRM_SERVE = [
    "--runner",
    "pooling",
    "--pooler-config",
    '{"task": "token_classify", "tok_pooling_type": "ALL"}',
]


def _grid(tmp: Path, name: str, extra: list[str]) -> Any:
    return expand(
        [
            f"results_dir={tmp}",
            f"sweep.name={name}",
            "policy=zoo_policy_m",
            "prm=zoo_prm_l",
            "dataset=chain",
            "dataset.levels=[1,3]",
            "dataset.per_level=3",
            "engine=cpu",
            "engine.max_model_len=512",
            "policy.temperature=0",
            "strategy=best_of_n,weighted_best_of_n,beam_search",
            "n=4",
            *extra,
        ]
    )


def test_a_sweep_against_vllm_serve_behind_faults_equals_the_in_process_engine(
    ray_local: Any, tmp_path: Path
) -> None:
    summary = run_sweep(_grid(tmp_path, "inproc", []), live=False)
    assert (summary.computed, summary.failed) == (3, 0)
    with (
        vllm_serve(
            weights_dir("zoo-policy-m"), "zoo-policy-m", tmp_path / "serve.log", env={"VLLM_API_KEY": KEY}
        ) as url,
        vllm_serve(
            weights_dir("zoo-prm-l"),
            "zoo-prm-l",
            tmp_path / "prm.log",
            extra=PRM_SERVE,
            env={"VLLM_API_KEY": KEY},
        ) as prm_url,
        FaultProxy(url, FAULTS, stall_s=25.0) as proxy,
    ):
        endpoint = [
            "policy.backend=openai",
            f"policy.base_url={proxy.base_url}",
            "policy.model=zoo-policy-m",
            "policy.tokenizer=embedded:zoo-policy-m",
            f"policy.api_key_env={KEY_ENV}",
            "policy.timeout_s=15",
            "policy.max_retries=4",
            f"prm.base_url={prm_url}/v1",
            "prm.model=zoo-prm-l",
            "prm.tokenizer=embedded:zoo-prm-l",
            f"prm.api_key_env={KEY_ENV}",
        ]
        summary = run_sweep(_grid(tmp_path, "endpoint", endpoint), live=False)
    assert (summary.computed, summary.failed) == (3, 0)
    assert proxy.served[:3] == FAULTS and proxy.keys_seen == {KEY}

    a, b = load(tmp_path / "inproc"), load(tmp_path / "endpoint")
    assert len(a) == len(b) == 3 * 6 and b["status"].eq("ok").all()
    m = a.merge(b, on=KEYS, suffixes=("_in", "_ep"))
    assert len(m) == 18
    for col in ("answer", "correct", "tokens_in", "tokens_out", "generations"):  # beam search: PRM-ranked too
        assert (m[f"{col}_in"].astype(str) == m[f"{col}_ep"].astype(str)).all(), (
            col,
            m[[f"{col}_in", f"{col}_ep"]],
        )
    assert b["seeding"].eq("per_request_endpoint").all() and a["seeding"].eq("per_request").all()
    assert a["retries"].eq(0).all()
    job = b["pool_id"].fillna(b["cell_id"])  # pool cells share their pool's job
    assert int(b.assign(job=job).groupby("job")["retries"].first().sum()) == len(FAULTS)
    print("endpoint_ignored:", sorted(set(b["endpoint_ignored"].dropna())))

    sa, sb = load_samples(tmp_path / "inproc"), load_samples(tmp_path / "endpoint")
    ms = sa.merge(sb, on=["problem_id", "sample_idx"], suffixes=("_in", "_ep"))
    assert len(ms) == len(sa) == len(sb) == 6 * 4
    assert (ms["text_in"] == ms["text_ep"]).all() and (ms["tokens_out_in"] == ms["tokens_out_ep"]).all()
    assert (ms["prompt_tokens_in"] == ms["prompt_tokens_ep"]).all()
    for x, y in zip(ms["step_scores_in"], ms["step_scores_ep"], strict=True):
        assert len(x) == len(y) and all(abs(u - v) < 1e-4 for u, v in zip(x, y, strict=True)), (x, y)

    leaked = [p for p in (tmp_path / "endpoint").rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaked, f"the API key is written in {leaked}"
