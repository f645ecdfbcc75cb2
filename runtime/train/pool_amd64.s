#include "textflag.h"

// func maxPool2x2AVX2(top *float32, row, c int, out *float32)
// out[i] = max of the 2x2 window at top (channel stride 1, pixel stride c,
// row stride row floats) for i < c; c is a positive multiple of 8.
TEXT ·maxPool2x2AVX2(SB), NOSPLIT, $0-32
	MOVQ top+0(FP), SI
	MOVQ row+8(FP), BX
	SHLQ $2, BX
	MOVQ c+16(FP), CX
	MOVQ CX, DX
	SHLQ $2, DX
	MOVQ out+24(FP), DI
	LEAQ (SI)(BX*1), R10

floop:
	VMOVUPS (SI), Y0
	VMAXPS  (SI)(DX*1), Y0, Y0
	VMAXPS  (R10), Y0, Y0
	VMAXPS  (R10)(DX*1), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, R10
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     floop
	VZEROUPPER
	RET

// func maxPool2x2BackAVX2(top *float32, row, c int, out, grad, dtop *float32)
// Routes grad[i] to the first input of the window equal to out[i] and writes
// zero to the other three, in dtop (laid out like top).
TEXT ·maxPool2x2BackAVX2(SB), NOSPLIT, $0-48
	MOVQ top+0(FP), SI
	MOVQ row+8(FP), BX
	SHLQ $2, BX
	MOVQ c+16(FP), CX
	MOVQ CX, DX
	SHLQ $2, DX
	MOVQ out+24(FP), DI
	MOVQ grad+32(FP), R8
	MOVQ dtop+40(FP), R9
	LEAQ (SI)(BX*1), R10
	LEAQ (R9)(BX*1), R11

bloop:
	VMOVUPS (DI), Y0
	VMOVUPS (R8), Y1
	VCMPPS  $0, (SI), Y0, Y2
	VCMPPS  $0, (SI)(DX*1), Y0, Y3
	VCMPPS  $0, (R10), Y0, Y4
	VCMPPS  $0, (R10)(DX*1), Y0, Y5
	VANDNPS Y3, Y2, Y3
	VORPS   Y2, Y3, Y6
	VANDNPS Y4, Y6, Y4
	VORPS   Y6, Y4, Y6
	VANDNPS Y5, Y6, Y5
	VANDPS  Y1, Y2, Y2
	VANDPS  Y1, Y3, Y3
	VANDPS  Y1, Y4, Y4
	VANDPS  Y1, Y5, Y5
	VMOVUPS Y2, (R9)
	VMOVUPS Y3, (R9)(DX*1)
	VMOVUPS Y4, (R11)
	VMOVUPS Y5, (R11)(DX*1)
	ADDQ    $32, SI
	ADDQ    $32, R10
	ADDQ    $32, DI
	ADDQ    $32, R8
	ADDQ    $32, R9
	ADDQ    $32, R11
	SUBQ    $8, CX
	JNZ     bloop
	VZEROUPPER
	RET
