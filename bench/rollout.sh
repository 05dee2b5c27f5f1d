#!/usr/bin/env bash
# The long-rollout matrix of issue #7 on one card: `dreamcaster bench rollout` with the 7 configurations (dense,
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
# (130 s; 0 = none), SUMMARY (bench/results/rollout-<card>.md), EXTRA (more options for the bench).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-${OUT:-out/rollout}}
bin=${DC_BIN:-build-gpu/app/dreamcaster}
device=${DEVICE:-cuda}
frames=${FRAMES:-3000}
revisit_at=${REVISIT_AT:-2000}
configs=${CONFIGS:-dense dense-torch window16 tempcache annsa annca all}
timeout_s=${CONFIG_TIMEOUT:-130}

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
# shellcheck disable=SC2086  # CONFIGS and EXTRA are word lists
"$bin" bench rollout --device "$device" --frames "$frames" --configs $configs --steps 4 --seed 1 \
    --revisit --revisit-at "$revisit_at" --config-timeout "$timeout_s" \
    --out-dir "$out" --summary "$SUMMARY" ${EXTRA:-} 2> >(tee "$out/progress.log" >&2) > "$out/stdout.md"
echo "rollout.sh: done in $(( $(date +%s) - start )) s: $out/summary.md, copied to $SUMMARY"
