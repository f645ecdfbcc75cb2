#include "textflag.h"

// func sgemmKernel6x16(k int, a *float32, rs, ks int, b, c *float32, ldc int, add bool)
// c[i*ldc+j] (+)= sum_p a[i*rs+p*ks] * b[p*16+j] for i < 6, j < 16: with add
// false, c is overwritten without being read.
// rs and ks are the row and depth strides of A in floats: a packed panel
// has rs=1, ks=6; a row-major matrix rs=lda, ks=1; a transposed one rs=1, ks=lda.
TEXT ·sgemmKernel6x16(SB), NOSPLIT, $0-57
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rs+16(FP), R9
	SHLQ $2, R9
	MOVQ ks+24(FP), R10
	SHLQ $2, R10
	MOVQ b+32(FP), DI
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), BX
	SHLQ $2, BX
	LEAQ (SI)(R9*2), R8
	ADDQ R9, R8

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	TESTQ CX, CX
	JEQ   store

loop:
	VMOVUPS      (DI), Y0
	VMOVUPS      32(DI), Y1
	VBROADCASTSS (SI), Y2
	VBROADCASTSS (SI)(R9*1), Y3
	VFMADD231PS  Y0, Y2, Y4
	VFMADD231PS  Y1, Y2, Y5
	VFMADD231PS  Y0, Y3, Y6
	VFMADD231PS  Y1, Y3, Y7
	VBROADCASTSS (SI)(R9*2), Y2
	VBROADCASTSS (R8), Y3
	VFMADD231PS  Y0, Y2, Y8
	VFMADD231PS  Y1, Y2, Y9
	VFMADD231PS  Y0, Y3, Y10
	VFMADD231PS  Y1, Y3, Y11
	VBROADCASTSS (R8)(R9*1), Y2
	VBROADCASTSS (R8)(R9*2), Y3
	VFMADD231PS  Y0, Y2, Y12
	VFMADD231PS  Y1, Y2, Y13
	VFMADD231PS  Y0, Y3, Y14
	VFMADD231PS  Y1, Y3, Y15
	ADDQ         R10, SI
	ADDQ         R10, R8
	ADDQ         $64, DI
	DECQ         CX
	JNE          loop

store:
	MOVBLZX add+56(FP), AX
	TESTL AX, AX
	JEQ overwrite
	VADDPS  (DX), Y4, Y4
	VADDPS  32(DX), Y5, Y5
	ADDQ    BX, DX
	VADDPS  (DX), Y6, Y6
	VADDPS  32(DX), Y7, Y7
	ADDQ    BX, DX
	VADDPS  (DX), Y8, Y8
	VADDPS  32(DX), Y9, Y9
	ADDQ    BX, DX
	VADDPS  (DX), Y10, Y10
	VADDPS  32(DX), Y11, Y11
	ADDQ    BX, DX
	VADDPS  (DX), Y12, Y12
	VADDPS  32(DX), Y13, Y13
	ADDQ    BX, DX
	VADDPS  (DX), Y14, Y14
	VADDPS  32(DX), Y15, Y15
	MOVQ c+40(FP), DX

overwrite:
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    BX, DX
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	ADDQ    BX, DX
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, 32(DX)
	ADDQ    BX, DX
	VMOVUPS Y10, (DX)
	VMOVUPS Y11, 32(DX)
	ADDQ    BX, DX
	VMOVUPS Y12, (DX)
	VMOVUPS Y13, 32(DX)
	ADDQ    BX, DX
	VMOVUPS Y14, (DX)
	VMOVUPS Y15, 32(DX)
	VZEROUPPER
	RET
