package train

import "golang.org/x/sys/cpu"

// haveFMA reports whether the AVX2 micro-kernel (and pooling) can run.
func haveFMA() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

// haveAVX512 reports whether the AVX-512 micro-kernel can run (the OS must
// save the ZMM state, which x/sys/cpu checks).
func haveAVX512() bool { return haveFMA() && cpu.X86.HasAVX512F }

//go:noescape
func sgemmKernel6x16(k int, a *float32, rs, ks int, b, c *float32, ldc int, add bool)

func kernelAsm(k int, a []float32, rs, ks int, b, c []float32, ldc int, add bool) {
	_ = a[5*rs+(k-1)*ks]
	_ = b[k*gemmNR-1]
	_ = c[5*ldc+gemmNR-1]
	sgemmKernel6x16(k, &a[0], rs, ks, &b[0], &c[0], ldc, add)
}

//go:noescape
func sgemmKernel6x32AVX512(k int, a *float32, rs, ks int, b, c *float32, ldc int, add bool)

func kernelAVX512Asm(k int, a []float32, rs, ks int, b, c []float32, ldc int, add bool) {
	_ = a[5*rs+(k-1)*ks]
	_ = b[k*32-1]
	_ = c[5*ldc+32-1]
	sgemmKernel6x32AVX512(k, &a[0], rs, ks, &b[0], &c[0], ldc, add)
}
