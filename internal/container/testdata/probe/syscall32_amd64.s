#include "textflag.h"

// func syscall32(nr uintptr) uintptr: a system call through int 0x80,
// the 32-bit x86 entry, with no arguments.
TEXT ·syscall32(SB), NOSPLIT, $0-16
	MOVQ nr+0(FP), AX
	INT $0x80
	MOVQ AX, ret+8(FP)
	RET
