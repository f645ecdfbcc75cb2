//go:build !amd64

package train

func haveFMA() bool { return false }

func haveAVX512() bool { return false }

func kernelAVX512Asm(k int, a []float32, rs, ks int, b, c []float32, ldc int, add bool) {
	panic("train: AVX-512 kernel on a CPU without it")
}

func kernelAsm(k int, a []float32, rs, ks int, b, c []float32, ldc int, add bool) {
	kernelGo(k, a, rs, ks, b, c, ldc, add)
}
