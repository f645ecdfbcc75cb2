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

// func sgemmKernel6x32AVX512(k int, a *float32, rs, ks int, b, c *float32, ldc int, add bool)
// c[i*ldc+j] (+)= sum_p a[i*rs+p*ks] * b[p*32+j] for i < 6, j < 32: with add
// false, c is overwritten without being read.
// rs and ks are the row and depth strides of A in floats: a packed panel
// has rs=1, ks=6; a row-major matrix rs=lda, ks=1; a transposed one rs=1, ks=lda.
TEXT ·sgemmKernel6x32AVX512(SB), NOSPLIT, $0-57
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

	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

	TESTQ CX, CX
	JEQ   store512

loop512:
	VMOVUPS      (DI), Z0
	VMOVUPS      64(DI), Z1
	VBROADCASTSS (SI), Z2
	VBROADCASTSS (SI)(R9*1), Z3
	VFMADD231PS  Z0, Z2, Z4
	VFMADD231PS  Z1, Z2, Z5
	VFMADD231PS  Z0, Z3, Z6
	VFMADD231PS  Z1, Z3, Z7
	VBROADCASTSS (SI)(R9*2), Z2
	VBROADCASTSS (R8), Z3
	VFMADD231PS  Z0, Z2, Z8
	VFMADD231PS  Z1, Z2, Z9
	VFMADD231PS  Z0, Z3, Z10
	VFMADD231PS  Z1, Z3, Z11
	VBROADCASTSS (R8)(R9*1), Z2
	VBROADCASTSS (R8)(R9*2), Z3
	VFMADD231PS  Z0, Z2, Z12
	VFMADD231PS  Z1, Z2, Z13
	VFMADD231PS  Z0, Z3, Z14
	VFMADD231PS  Z1, Z3, Z15
	ADDQ         R10, SI
	ADDQ         R10, R8
	ADDQ         $128, DI
	DECQ         CX
	JNE          loop512

store512:
	MOVBLZX add+56(FP), AX
	TESTL AX, AX
	JEQ overwrite512
	VADDPS  (DX), Z4, Z4
	VADDPS  64(DX), Z5, Z5
	ADDQ    BX, DX
	VADDPS  (DX), Z6, Z6
	VADDPS  64(DX), Z7, Z7
	ADDQ    BX, DX
	VADDPS  (DX), Z8, Z8
	VADDPS  64(DX), Z9, Z9
	ADDQ    BX, DX
	VADDPS  (DX), Z10, Z10
	VADDPS  64(DX), Z11, Z11
	ADDQ    BX, DX
	VADDPS  (DX), Z12, Z12
	VADDPS  64(DX), Z13, Z13
	ADDQ    BX, DX
	VADDPS  (DX), Z14, Z14
	VADDPS  64(DX), Z15, Z15
	MOVQ c+40(FP), DX

overwrite512:
	VMOVUPS Z4, (DX)
	VMOVUPS Z5, 64(DX)
	ADDQ    BX, DX
	VMOVUPS Z6, (DX)
	VMOVUPS Z7, 64(DX)
	ADDQ    BX, DX
	VMOVUPS Z8, (DX)
	VMOVUPS Z9, 64(DX)
	ADDQ    BX, DX
	VMOVUPS Z10, (DX)
	VMOVUPS Z11, 64(DX)
	ADDQ    BX, DX
	VMOVUPS Z12, (DX)
	VMOVUPS Z13, 64(DX)
	ADDQ    BX, DX
	VMOVUPS Z14, (DX)
	VMOVUPS Z15, 64(DX)
	VZEROUPPER
	RET
