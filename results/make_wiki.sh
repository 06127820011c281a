#!/usr/bin/env bash
# Regenerate the committed Wikipedia leaderboard (results/wiki/) from scratch or resume it.
# Usage: bash results/make_wiki.sh [DATA_ROOT]   (DATA_ROOT holds wiki/; default ../shared/data)
# Protocol defaults throughout: zscore inputs (statistics from the training split), last epoch,
# the official split; nothing is tuned on wiki and no method gets a hand-set switch.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-${NRCHBENCH_DATA:-../shared/data}}"
OUT=results/wiki
GRID=(--dataset wiki --data-root "$DATA" --bits 64 --seed 0,1,2 --preset fast --results "$OUT" --jobs 2)
# 1. every built-in method under one-swap noise (the NRCH paper's model)
nrchbench sweep --method nrch,nrch-nogmm,nrch-nodns,dcmh,djsrh,ucch,oracle,scbch,rshnl,mrl \
  --noise-model one-swap --noise 0.2,0.5,0.8 "${GRID[@]}"
# 2. issue 15: generic noise-robust strategies on two supervised bases
nrchbench sweep --method nrch-nodns,dcmh --strategy gmm-select,coteaching,gce,sce,elr \
  --noise-model one-swap --noise 0.2,0.5,0.8 "${GRID[@]}"
# 3. issue 17: realistic noise (instance-dependent, cross-modal pair mismatch) at 50 %
nrchbench sweep --method nrch,nrch-nodns,dcmh --noise-model instance,pairs --noise 0.5 "${GRID[@]}"
# 4. the oracle's companion: the bases on all rows with clean labels (noise 0)
nrchbench sweep --method nrch-nodns,nrch --noise-model one-swap --noise 0.0 "${GRID[@]}"
bash results/tables_wiki.sh
