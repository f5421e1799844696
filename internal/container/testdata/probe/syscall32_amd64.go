package main

func syscall32(nr uintptr) uintptr

// getpid32 is getpid's number in the 32-bit x86 table.
const getpid32 = 20

const has32 = true
