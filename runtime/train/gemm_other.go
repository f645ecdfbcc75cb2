//go:build !amd64

package train

func haveFMA() bool { return false }

func kernelAsm(k int, a, b, c []float32, ldc int) { kernelGo(k, a, b, c, ldc) }
