# written by dreamcaster bench rollout for bench/rollout.gp
configs = "dense dense-torch window16 tempcache annsa annca all"
revisit_configs = "tempcache window16 window-eq"
revisit_first = 2055
memcol = 12
memlabel = "peak GPU memory allocated (MB)"
card = "NVIDIA H200"
