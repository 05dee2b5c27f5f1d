#!/usr/bin/env bash
# The long-rollout matrix (DESIGN.md §8) on one card: `dreamcaster bench rollout` with the 7 configurations (dense,
# dense-torch, window16, tempcache, annsa, annca, all) at 3000 frames, then the revisit test (back in the spawn room
# at frame ≥ 2000: tempcache, window16, window-eq). Everything goes under the output folder; the summary is also
# copied to bench/results/rollout-<card>.md (h100, h200, or cpu-2core).
#
#   bench/rollout.sh out/rollout                                   # GPU machine, build-gpu/app/dreamcaster
#   DC_BIN=build/app/dreamcaster DEVICE=cpu FRAMES=300 REVISIT_AT=200 bench/rollout.sh out/rollout-cpu
#
# Time on an H100/H200 (estimate from the model size, ≈ 24 GB of K/V read per frame at frame 3000 for dense, ≈ 7 ms at 3.35 TB/s): each
# configuration takes about 1–2 minutes, dense-torch longer; CONFIG_TIMEOUT (130 s) stops any configuration that
# would push the whole run past ~25 minutes (10 runs × 130 s + loading), and the summary names the frame it reached.
#
# Environment: DC_BIN (binary), DEVICE (cuda), FRAMES (3000), REVISIT_AT (2000), CONFIGS (the 7), CONFIG_TIMEOUT
# (130 s on one card, 240 s with GPUS > 1: every accelerated configuration reached frame 3000 on 4 H200s, the whole
# matrix in 406 s; 0 = none), SUMMARY (bench/results/rollout-<card>.md), EXTRA (more options for the bench), GPUS (1),
# REVISIT (1; 0 leaves the revisit test out), DC_COMMIT (the commit the summary names, where the tree that was built
# has no git history of its own).
#
# GPUS=N (a machine with N identical cards): the configurations are dealt to N processes, one card each
# (CUDA_VISIBLE_DEVICES), each running dense first as its own reference for "vs dense"; the last process also runs
# the revisit test. Each writes OUT/gpuI/ (CSV, summary); then the CSVs are merged into OUT/rollout.csv (dense rows
# from gpu0), the plots are made from it, and SUMMARY gets the per-card summaries one after another. The whole
# matrix then takes about the time of its slowest share.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-${OUT:-out/rollout}}
bin=${DC_BIN:-build-gpu/app/dreamcaster}
device=${DEVICE:-cuda}
frames=${FRAMES:-3000}
revisit_at=${REVISIT_AT:-2000}
configs=${CONFIGS:-dense dense-torch window16 tempcache annsa annca all}
default_timeout=130
[[ "${GPUS:-1}" -gt 1 ]] && default_timeout=240   # a card runs ≤ 3 configurations (+ the revisit on the last one)
timeout_s=${CONFIG_TIMEOUT:-$default_timeout}

if [[ ! -x "$bin" ]]; then
    echo "rollout.sh: no dreamcaster binary at '$bin' (build it, or set DC_BIN)" >&2
    exit 1
fi
if [[ -z "${SUMMARY:-}" ]]; then
    tag=cpu-2core
    if [[ "$device" == cuda* ]]; then
        name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1 || true)
        case "$name" in
            *H200*) tag=h200 ;;
            *H100*) tag=h100 ;;
            *) tag=gpu ;;
        esac
    elif [[ "$(nproc)" != 2 ]]; then
        tag=cpu-$(nproc)core
    fi
    SUMMARY=bench/results/rollout-$tag.md
fi
command -v gnuplot >/dev/null || echo "rollout.sh: gnuplot not found: CSV and summary only; plot later with" \
    "gnuplot -e \"dir='$out'\" bench/rollout.gp" >&2

mkdir -p "$out"
start=$(date +%s)
gpus=${GPUS:-1}
revisit_opts=()
[[ "${REVISIT:-1}" != 0 ]] && revisit_opts=(--revisit --revisit-at "$revisit_at")
if [[ "$gpus" -le 1 ]]; then
    # shellcheck disable=SC2086  # CONFIGS and EXTRA are word lists
    "$bin" bench rollout --device "$device" --frames "$frames" --configs $configs --steps 4 --seed 1 \
        "${revisit_opts[@]}" --config-timeout "$timeout_s" \
        --out-dir "$out" --summary "$SUMMARY" ${EXTRA:-} 2> >(tee "$out/progress.log" >&2) > "$out/stdout.md"
    echo "rollout.sh: done in $(( $(date +%s) - start )) s: $out/summary.md, copied to $SUMMARY"
    exit 0
fi

# ---- GPUS > 1: deal the configurations (dense aside) to the cards, longest first ----
others=()
for c in $configs; do [[ "$c" != dense ]] && others+=("$c"); done
declare -a share
for i in "${!others[@]}"; do share[$(( i % gpus ))]+=" ${others[$i]}"; done
pids=()
for (( g = 0; g < gpus; g++ )); do
    mkdir -p "$out/gpu$g"
    revisit=()
    [[ $g -eq $(( gpus - 1 )) ]] && revisit=("${revisit_opts[@]}")
    # shellcheck disable=SC2086  # the share and EXTRA are word lists
    CUDA_VISIBLE_DEVICES=$g "$bin" bench rollout --device "$device" --frames "$frames" --configs dense ${share[$g]:-} \
        --steps 4 --seed 1 "${revisit[@]}" --config-timeout "$timeout_s" --out-dir "$out/gpu$g" \
        ${EXTRA:-} 2> "$out/gpu$g/progress.log" > "$out/gpu$g/stdout.md" &
    pids+=($!)
    echo "rollout.sh: card $g runs dense${share[$g]:-}${revisit[*]:+ + the revisit test}"
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
# Merge: one CSV (the header and dense once, from card 0), one set of plots, the summaries one after another.
head -n 1 "$out/gpu0/rollout.csv" > "$out/rollout.csv"
for (( g = 0; g < gpus; g++ )); do
    if [[ $g -eq 0 ]]; then tail -n +2 "$out/gpu$g/rollout.csv"; else tail -n +2 "$out/gpu$g/rollout.csv" | grep -v '^dense,'; fi
done >> "$out/rollout.csv"
last=$(( gpus - 1 ))
[[ -f "$out/gpu$last/revisit.csv" ]] && cp "$out/gpu$last/revisit.csv" "$out/gpu$last/revisit.txt" "$out/"
sed "s/^configs = .*/configs = \"$configs\"/" "$out/gpu$last/plot_vars.gp" > "$out/plot_vars.gp"
cp "$out/gpu0/actions.txt" "$out/"
command -v gnuplot >/dev/null && gnuplot -e "dir='$out'" bench/rollout.gp
{
    echo "# Long rollout on $gpus cards of one machine (bench/rollout.sh, GPUS=$gpus)"
    echo
    echo "Each card ran dense (its own reference for \"vs dense\") and a share of the configurations; the card of each"
    echo "share is in its section. Merged CSV and plots: \`rollout.csv\`, \`*.png\` beside this file's data folder."
    for (( g = 0; g < gpus; g++ )); do
        echo
        echo "## Card $g: dense${share[$g]:-}"
        echo
        sed 's/^#/##/' "$out/gpu$g/summary.md"
    done
} > "$out/summary.md"
cp "$out/summary.md" "$SUMMARY"
echo "rollout.sh: done in $(( $(date +%s) - start )) s on $gpus cards: $out/summary.md, copied to $SUMMARY"
exit $rc
