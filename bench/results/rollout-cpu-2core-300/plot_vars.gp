# written by dreamcaster bench rollout for bench/rollout.gp
configs = "dense all tempcache window16"
revisit_configs = ""
revisit_first = 0
memcol = 15
memlabel = "peak host RSS (MB)"
card = "cpu (2 cores)"
