#!/usr/bin/env bash
# One lent-GPU session's checks (see the device tool): the CUDA tests, the whole suite with a GPU
# present (device="auto" then means cuda), and cells.py's timings on the GPU (CELLS=0: not).
# Results in $OUT. Run from the repository root.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src TORCH_EXTENSIONS_DIR=/tmp/ext
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/env.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv >> "$OUT/env.txt" 2>&1
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_autocast.py \
    2>&1 | tee "$OUT/cuda-tests.log" | tail -15
[ "${CELLS:-1}" = 0 ] || timeout 150 python3 benchmarks/cells.py --device cuda --threads 8 --repeats 7 \
    --out "$OUT/cells-cuda.json" 2>&1 | tee "$OUT/cells-cuda.log" | tail -30
timeout 200 python3 -m pytest -q -p no:cacheprovider -n 12 --maxfail 20 --timeout 120 tests \
    2>&1 | tee "$OUT/full-suite.log" | tail -25
