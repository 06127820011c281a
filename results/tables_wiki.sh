#!/usr/bin/env bash
# Tables and plots of results/wiki from its records (no training). Usage: bash results/tables_wiki.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=results/wiki
T=(nrchbench table --results "$OUT" --dataset wiki)
N=(--noise 0.2,0.5,0.8)
for metric in map map_tie; do
  # the leaderboard: every method and strategy under the NRCH paper's one-swap noise
  "${T[@]}" "${N[@]}" --noise-model one-swap --direction all --metric "$metric" --format markdown -o "$OUT/leaderboard_${metric}.md"
  "${T[@]}" "${N[@]}" --noise-model one-swap --direction all --metric "$metric" --format csv -o "$OUT/leaderboard_${metric}.csv"
  "${T[@]}" "${N[@]}" --noise-model one-swap --direction all --metric "$metric" --format latex --rows method --columns noise \
    --fit resize -o "$OUT/leaderboard_${metric}.tex"
  "${T[@]}" "${N[@]}" --noise-model one-swap --direction all --metric "$metric" --robustness --format markdown \
    -o "$OUT/leaderboard_${metric}_robustness.md"
  "${T[@]}" "${N[@]}" --noise-model one-swap --direction all --metric "$metric" --robustness --format csv \
    -o "$OUT/leaderboard_${metric}_robustness.csv"
done
# the clean-label oracle next to its base trained on all rows, with noisy (η > 0) and clean (η = 0) labels
"${T[@]}" --noise-model one-swap --method oracle,nrch-nodns,nrch --direction avg --metric map --format markdown \
  -o "$OUT/oracle_map.md"
# issue 15: the strategy study — base methods × strategies (one table per noise rate) ...
S=(--noise-model one-swap --method nrch,nrch-nogmm,nrch-nodns,dcmh --direction avg)
"${T[@]}" "${N[@]}" "${S[@]}" --metric map --rows method --columns strategy --format markdown -o "$OUT/strategies_map.md"
"${T[@]}" "${N[@]}" "${S[@]}" --metric map --format csv -o "$OUT/strategies_map.csv"
"${T[@]}" "${N[@]}" "${S[@]}" --metric map --rows method --columns strategy --versus base --format markdown \
  -o "$OUT/strategies_versus_base.md"
# NRCH's own separator (nrch, nrch-nogmm) against the generic one on the same base, paired over seeds
"${T[@]}" "${N[@]}" --noise-model one-swap --method nrch,nrch-nogmm,nrch-nodns --strategy none,gmm-select --direction avg \
  --metric map --versus "NRCH-nodns + GMM-select" --format markdown -o "$OUT/separator_versus_gmm.md"
# ... and how clean is what each separator keeps (last epoch, against the clean mask)
for metric in sel_precision sel_recall; do
  "${T[@]}" "${N[@]}" --noise-model one-swap --method nrch,nrch-nogmm,nrch-nodns,dcmh --direction avg --metric "$metric" \
    --format markdown -o "$OUT/selection_${metric}.md"
done
# issue 17: one table per noise model at 50 % (one-swap, instance-dependent, pair mismatch)
"${T[@]}" --noise 0.5 --method nrch,nrch-nodns,dcmh --direction all --metric map --format markdown \
  -o "$OUT/noise_models_map.md"
rm -rf "$OUT/plots"
nrchbench plot --results "$OUT" --dataset wiki --out-dir "$OUT/plots"
