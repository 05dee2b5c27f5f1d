# Plots of `dreamcaster bench rollout` (the paper's figures): fps, peak memory and PSNR vs frame, one line per
# configuration, plus the revisit test. The bench runs it itself when gnuplot is installed; to (re)make the plots of
# an output folder elsewhere:
#   gnuplot -e "dir='out/rollout'" bench/rollout.gp
# It reads dir/rollout.csv, dir/revisit.csv and dir/plot_vars.gp (configuration names, the memory column, the card),
# and writes dir/fps.png, memory.png, psnr.png, psnr_real.png, revisit.png.
# CSV columns (app/rollout_bench.h kRolloutCsvColumns): 1 config, 2 frame, 3 step_ms, 4 fps, 5 fps_avg16,
# 6 denoise_ms, 7 commit_ms, 8 decode_ms, 9 cache_tokens, 10 cache_bytes, 11 gpu_allocated_bytes, 12 gpu_peak_bytes,
# 13 gpu_reserved_bytes, 14 rss_bytes, 15 rss_peak_bytes, 16 density, 17 recall, 18 merge_rate, 19 kept_fraction,
# 20 psnr_dense, 21 ssim_dense, 22 psnr_real, 23 ssim_real, 24 x, 25 y, 26 angle.
if (!exists("dir")) dir = "."
load dir."/plot_vars.gp"

set datafile separator ","
set datafile missing ""
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1100,650 font "sans,11"
} else {
    set terminal png size 1100,650
}
set grid
set key outside right top
set xlabel "frame"
csv = dir."/rollout.csv"
# The rows of one configuration: other rows (and the header) become NaN and are skipped.
pick(c, col) = (strcol(1) eq c) ? column(col) : NaN

set output dir."/fps.png"
set title "fps vs frame (mean of the last 16 frames) — ".card
set ylabel "frames per second"
set logscale y
plot for [c in configs] csv using 2:(pick(c, 5)) with lines lw 2 title c
unset logscale y

set output dir."/memory.png"
set title memlabel." vs frame — ".card
set ylabel memlabel
plot for [c in configs] csv using 2:(pick(c, memcol) / 1e6) with lines lw 2 title c

set output dir."/cache.png"
set title "KV cache (all layers) vs frame — ".card
set ylabel "cache MB"
plot for [c in configs] csv using 2:(pick(c, 10) / 1e6) with lines lw 2 title c

set output dir."/psnr.png"
set title "PSNR vs the dense rollout (same seed and actions; 100 dB = identical) — ".card
set ylabel "PSNR (dB; identical frames, 100 dB, drawn at 60)"
cap(v) = v > 60 ? 60 : v
plot for [c in configs] csv using 2:(cap(pick(c, 20))) with lines lw 2 title c

set output dir."/psnr_real.png"
set title "PSNR vs the real game — ".card
set ylabel "PSNR (dB)"
plot for [c in configs] csv using 2:(pick(c, 22)) with lines lw 2 title c

if (strlen(revisit_configs) > 0) {
    rcsv = dir."/revisit.csv"
    set output dir."/revisit.png"
    set title "Revisit walk: PSNR vs the real game (back in the spawn room from the dashed line) — ".card
    set ylabel "PSNR (dB)"
    set arrow 1 from revisit_first, graph 0 to revisit_first, graph 1 nohead dt 2 lw 2
    plot for [c in revisit_configs] rcsv using 2:(pick(c, 22)) with lines lw 2 title c
    unset arrow 1
}
