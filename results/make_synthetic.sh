#!/usr/bin/env bash
# Regenerate results/synthetic-3k: every built-in method on a 3,000-row synthetic set (query 250,
# train 1,250, database 2,750; 512-d non-negative image features, 1,000-word binary text, 24
# classes, multi-label), 64 bits, `fast`, seeds 0-2, protocol defaults, one-swap noise.
#   1. every built-in method at 50 % noise;
#   2. (--full) issue 15's strategy study: nrch, nrch-nogmm, nrch-nodns, dcmh at 20 and 80 % too,
#      and the strategies gmm-select, coteaching, gce, sce, elr around nrch-nodns and dcmh at
#      20/50/80 %.
# Usage: bash results/make_synthetic.sh [--full]   (resumes: only missing runs are trained;
# JOBS=k sets the parallel workers, default 2). Tables and plots come from the records only.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=results/synthetic-3k
GRID=(--dataset synthetic -d n=3000 --bits 64 --seed 0,1,2 --preset fast --noise-model one-swap
      --results "$OUT" --jobs "${JOBS:-2}")
STUDY=nrch,nrch-nogmm,nrch-nodns,dcmh
nrchbench sweep --method nrch,nrch-nogmm,nrch-nodns,scbch,rshnl,mrl,dcmh,oracle,ucch,djsrh --noise 0.5 "${GRID[@]}"
if [ "${1:-}" = "--full" ]; then
  nrchbench sweep --method "$STUDY" --noise 0.2,0.8 "${GRID[@]}"
  nrchbench sweep --method nrch-nodns,dcmh --strategy gmm-select,coteaching,gce,sce,elr --noise 0.2,0.5,0.8 "${GRID[@]}"
fi
T=(nrchbench table --results "$OUT" --dataset synthetic --noise-model one-swap)
"${T[@]}" --noise 0.5 --direction all --metric map --format markdown -o "$OUT/leaderboard_map.md"
"${T[@]}" --noise 0.5 --direction all --metric map --format csv -o "$OUT/leaderboard_map.csv"
if [ "${1:-}" = "--full" ]; then
  S=(--method "$STUDY" --noise 0.2,0.5,0.8 --direction avg)
  "${T[@]}" "${S[@]}" --metric map --rows method --columns strategy --format markdown -o "$OUT/strategies_map.md"
  "${T[@]}" "${S[@]}" --metric map --format csv -o "$OUT/strategies_map.csv"
  "${T[@]}" "${S[@]}" --metric map --rows method --columns strategy --versus base --format markdown \
    -o "$OUT/strategies_versus_base.md"
  # NRCH's own separator (nrch, nrch-nogmm) against the generic one on the same base, paired over seeds
  "${T[@]}" --method nrch,nrch-nogmm,nrch-nodns --strategy none,gmm-select --noise 0.2,0.5,0.8 --direction avg \
    --metric map --versus "NRCH-nodns + GMM-select" --format markdown -o "$OUT/separator_versus_gmm.md"
  for metric in sel_precision sel_recall; do
    "${T[@]}" "${S[@]}" --metric "$metric" --format markdown -o "$OUT/selection_${metric}.md"
  done
  rm -rf "$OUT/plots"
  for kind in noise selection; do
    nrchbench plot --results "$OUT" --dataset synthetic --method "$STUDY" --kind "$kind" --out-dir "$OUT/plots"
  done
fi
