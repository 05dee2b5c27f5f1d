# written by hand for bench/rollout.gp (the run's own plot_vars.gp stayed on the GPU machine)
configs = "dense all all-budget32768"
revisit_configs = ""
revisit_first = 0
memcol = 12
memlabel = "peak GPU memory allocated (MB)"
card = "NVIDIA H100 80GB HBM3"
