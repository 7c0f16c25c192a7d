#!/usr/bin/env bash
# torch-check.sh BIN OUT: builds a tiny checkpoint (20 pretraining steps of the 2m
# preset on one synthetic hospital of 200 patients), writes fedclaims' forward pass
# on 16 of its patients (padded batch, time embeddings, MLM logits), runs
# python/fedclaims_torch.py on the same inputs and fails when the largest absolute
# difference exceeds 1e-5 (or a time bucket differs). Installs Debian's
# python3-torch when no python3 imports torch. Run by `make torch-check`.
set -euo pipefail
bin=${1:-bin/fedclaims}
out=${2:-out/torch-check}
tol=${TORCH_CHECK_TOLERANCE:-1e-5}

py=${TORCH_PYTHON:-}
if [ -z "$py" ]; then
	if python3 -c 'import torch' 2>/dev/null; then
		py=python3
	elif /usr/bin/python3 -c 'import torch' 2>/dev/null; then
		py=/usr/bin/python3 # Debian's python3-torch, behind another python3 on PATH
	else
		echo "installing: python3-torch"
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-torch
		py=/usr/bin/python3
	fi
fi

rm -rf "$out" && mkdir -p "$out"
log=(--log-level warn)
"$bin" synth --out "$out/synth" --hospitals 1 --patients 200 --seed 1 "${log[@]}" >/dev/null
"$bin" vocab build --data "$out/synth/h01" --out "$out/vocab.json" --min-count 5 "${log[@]}" >/dev/null
"$bin" pretrain --data "$out/synth/h01" --vocab "$out/vocab.json" --preset 2m --steps 20 --warmup 0 --lr 3e-3 \
	--batch 8 --seq 128 --seed 1 --out "$out/ckpt" "${log[@]}" 2>/dev/null >/dev/null
"$bin" model forward --model "$out/ckpt" --data "$out/synth/h01" --limit 16 --seq 128 --mlm-logits \
	--save-inputs "$out/inputs.json" --out "$out/forward.json" "${log[@]}"
"$py" python/fedclaims_torch.py check --checkpoint "$out/ckpt" --inputs "$out/inputs.json" \
	--expect "$out/forward.json" --tolerance "$tol" | tee "$out/check.json"
