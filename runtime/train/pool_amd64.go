package train

//go:noescape
func maxPool2x2AVX2(top *float32, row, c int, out *float32)

//go:noescape
func maxPool2x2BackAVX2(top *float32, row, c int, out, grad, dtop *float32)

// fastPool reports whether the AVX2 2x2/stride-2 pooling kernels apply.
func fastPool(l *layer) bool {
	return haveFMA() && l.kh == 2 && l.kw == 2 && l.sh == 2 && l.sw == 2 && l.in.c%8 == 0
}

// maxPool2x2 is the forward pass of a 2x2, stride-2 pooling layer.
func maxPool2x2(l *layer, x []float32, n int, out []float32) {
	ih, iw, c := l.in.h, l.in.w, l.in.c
	oh, ow := l.out.h, l.out.w
	_ = x[n*ih*iw*c-1]
	_ = out[n*oh*ow*c-1]
	for s := 0; s < n; s++ {
		for y := 0; y < oh; y++ {
			for xx := 0; xx < ow; xx++ {
				top := ((s*ih+2*y)*iw + 2*xx) * c
				maxPool2x2AVX2(&x[top], iw*c, c, &out[((s*oh+y)*ow+xx)*c])
			}
		}
	}
}

// maxPool2x2Back is its backward pass; it overwrites dx.
func maxPool2x2Back(l *layer, x []float32, n int, out, dy, dx []float32) {
	ih, iw, c := l.in.h, l.in.w, l.in.c
	oh, ow := l.out.h, l.out.w
	_ = x[n*ih*iw*c-1]
	_ = dx[n*ih*iw*c-1]
	_ = out[n*oh*ow*c-1]
	_ = dy[n*oh*ow*c-1]
	if ih%2 != 0 || iw%2 != 0 {
		clear(dx[:n*ih*iw*c]) // the last row or column is in no window
	}
	for s := 0; s < n; s++ {
		for y := 0; y < oh; y++ {
			for xx := 0; xx < ow; xx++ {
				top := ((s*ih+2*y)*iw + 2*xx) * c
				o := ((s*oh+y)*ow + xx) * c
				maxPool2x2BackAVX2(&x[top], iw*c, c, &out[o], &dy[o], &dx[top])
			}
		}
	}
}
