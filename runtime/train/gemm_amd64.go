package train

import "golang.org/x/sys/cpu"

// haveFMA reports whether the assembly micro-kernel can run.
func haveFMA() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

//go:noescape
func sgemmKernel6x16(k int, a *float32, rs, ks int, b, c *float32, ldc int, add bool)

func kernelAsm(k int, a []float32, rs, ks int, b, c []float32, ldc int, add bool) {
	_ = a[5*rs+(k-1)*ks]
	_ = b[k*gemmNR-1]
	_ = c[5*ldc+gemmNR-1]
	sgemmKernel6x16(k, &a[0], rs, ks, &b[0], &c[0], ldc, add)
}
