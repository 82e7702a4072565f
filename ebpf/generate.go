package ebpf

//go:generate go tool bpf2go -tags linux -type netcount -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" netcount bpf/netcount.c
