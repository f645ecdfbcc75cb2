//go:build !amd64

package train

func fastPool(*layer) bool { return false }

func maxPool2x2(l *layer, x []float32, n int, out []float32) {
	panic("train: maxPool2x2 without AVX2")
}

func maxPool2x2Back(l *layer, x []float32, n int, out, dy, dx []float32) {
	panic("train: maxPool2x2Back without AVX2")
}
