#!/usr/bin/env bash
# The speed comparison of benchmarks/speed on one GPU, in under 10 minutes on an H100/H200-class card:
# all four model sizes, bf16, batch 32 and 128 at max_seq_length 256, spladekit against sentence-transformers 6.2
# (training pairs/s and peak memory, encoding docs/s, the largest batch in 8 GiB from a two-point fit, the
# fraction of the measured torch.mm peak). Writes benchmarks/gpu/results.json, which the README quotes.
#
#   bash benchmarks/gpu/run.sh [extra run.py options, e.g. --sizes distilbert bert-base]
set -euo pipefail
cd "$(dirname "$0")/../.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
python benchmarks/speed/models.py > /dev/null  # build the models once (CPU, about a minute)
python benchmarks/speed/run.py --device cuda --precisions bf16 --configs 32x256 128x256 --repeats 1 \
    --docs 2048 --loss-steps 0 --no-verify --memory-gb 8 --memory-cap-gb 100 \
    --output benchmarks/gpu/results.json "$@"
