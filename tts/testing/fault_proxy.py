"""A fault-injecting HTTP proxy for OpenAI-compatible endpoints (tests only).

Why: endpoint clients must survive rate limits, server errors and stalled responses (tts.engines.endpoint), and
a test must show it against a real server. `FaultProxy` listens on 127.0.0.1, answers the first POSTs with the
scripted faults (an HTTP status such as "429" or "500"; "stall": no answer for `stall_s`), then forwards every request to `upstream`
(e.g. a `vllm serve` at http://127.0.0.1:8000) and relays its answer. Without an upstream it answers
/v1/completions itself with a canned completion (`FAKE_TEXT`), and /v1/chat/completions with one "Yes" token and
its top logprobs (`JUDGE_TOP`), so that unit tests need no server. It records the
Authorization headers it saw (`keys_seen`), so a test can check the key from the environment was sent.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAKE_TEXT = "1+2=3\n\nA:3"


class FaultProxy:
    """Start with `with FaultProxy(upstream, faults) as proxy:`; `proxy.base_url` ends in /v1."""

    def __init__(
        self,
        upstream: str | None,
        faults: Iterable[str] = (),
        stall_s: float = 5.0,
        always_fail: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.always_fail = always_fail  # requests it matches (by JSON body) always get a 500
        self.faults = list(faults)
        self.stall_s = stall_s
        self.lock = threading.Lock()
        self.served: list[str] = []  # what each POST got: a fault name or "ok"
        self.keys_seen: set[str] = set()
        self.bodies: list[dict[str, Any]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # /v1/models and friends: forwarded unchanged
                proxy._forward(self, None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization") or ""
                with proxy.lock:
                    proxy.keys_seen.add(auth.removeprefix("Bearer "))
                    try:
                        parsed = json.loads(body or b"{}")
                    except ValueError:
                        parsed = {}
                    proxy.bodies.append(parsed)
                    if proxy.always_fail is not None and proxy.always_fail(parsed):
                        fault = "500"
                    else:
                        fault = proxy.faults.pop(0) if proxy.faults else "ok"
                    proxy.served.append(fault)
                if fault.isdigit():  # an HTTP error status: "429", "500", "400", ...
                    proxy._reply(self, int(fault), {"error": {"message": f"injected {fault}"}})
                elif fault == "stall":
                    time.sleep(proxy.stall_s)
                    proxy._reply(self, 504, {"error": {"message": "stalled"}})
                else:
                    proxy._forward(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) first
            pass

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        if self.upstream is None:
            request = json.loads(body or b"{}")
            chat = handler.path.endswith("/chat/completions")
            self._reply(handler, 200, _canned_chat(request) if chat else _canned(request))
            return
        req = urllib.request.Request(
            self.upstream + handler.path,
            data=body,
            method=handler.command,
            headers={
                "Content-Type": "application/json",
                "Authorization": handler.headers.get("Authorization", ""),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                code, data = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            code, data = err.code, err.read()
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _canned(request: dict[str, Any]) -> dict[str, Any]:
    """A /v1/completions answer with `n` copies of FAKE_TEXT (4 tokens each, logprobs -0.5 a token)."""
    n = int(request.get("n") or 1)
    prompt = request.get("prompt")
    prompt_tokens = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
    tokens = ["1+2", "=3", "\n\n", "A:3"]
    choices = [
        {
            "index": i,
            "text": FAKE_TEXT,
            "finish_reason": "stop",
            "stop_reason": None,
            "logprobs": {
                "tokens": tokens,
                "token_logprobs": [-0.5] * 4,
                "top_logprobs": None,
                "text_offset": [],
            },
        }
        for i in range(n)
    ]
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 0,
        "model": request.get("model", "fake"),
        "system_fingerprint": "vllm-fake",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 4 * n,
            "total_tokens": prompt_tokens + 4 * n,
        },
    }


JUDGE_TOP = [
    ("Yes", -0.25),
    (" yes", -2.0),
    ("No", -1.5),
    ("Maybe", -3.0),
]  # P(yes) = (e^-.25 + e^-2) / (+ e^-1.5)


def _canned_chat(request: dict[str, Any]) -> dict[str, Any]:
    """A /v1/chat/completions answer: one token "Yes" with the top logprobs JUDGE_TOP; 10 prompt tokens."""
    top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in JUDGE_TOP]
    return {
        "id": "chat-fake",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "fake"),
        "system_fingerprint": "vllm-fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Yes"},
                "finish_reason": "length",
                "logprobs": {
                    "content": [{"token": "Yes", "logprob": -0.25, "bytes": None, "top_logprobs": top}]
                },
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }
