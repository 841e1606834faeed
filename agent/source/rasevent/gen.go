package rasevent

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type rec_mc_event -type rec_mce_record -type rec_aer_event -type rec_memory_failure ras bpf/ras.c
