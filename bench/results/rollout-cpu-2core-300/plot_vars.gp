# written by dreamcaster bench rollout for bench/rollout.gp
configs = "dense window16 tempcache annsa annca all"
revisit_configs = ""
revisit_first = 0
memcol = 15
memlabel = "peak host RSS (MB)"
card = "cpu (2 cores)"
