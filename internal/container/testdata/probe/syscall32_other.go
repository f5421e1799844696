//go:build !amd64

package main

func syscall32(uintptr) uintptr { panic("no 32-bit entry on this architecture") }

const getpid32 = 0

const has32 = false
