package train

import (
	"math/rand/v2"
	"testing"
)

// TestPoolKernelsAgree compares the AVX2 2x2 pooling kernels with the
// portable ones, with many ties (quantised inputs) and odd input sizes.
func TestPoolKernelsAgree(t *testing.T) {
	if !haveFMA() {
		t.Skip("CPU lacks AVX2: the assembly pooling kernels cannot run here (run on an x86-64 CPU with AVX2)")
	}
	for _, in := range []shape{{4, 4, 8, false}, {7, 5, 16, false}, {13, 13, 32, false}} {
		m, err := NewModel(ModelSpec{InputShape: []int{in.h, in.w, in.c}, Layers: []LayerSpec{{Type: "max_pooling2d"}}}, 1)
		if err != nil {
			t.Fatal(err)
		}
		l := m.layers[0]
		if !fastPool(l) {
			t.Fatalf("%v: fast path not taken", in)
		}
		const n = 3
		r := rand.New(rand.NewPCG(9, uint64(in.h)))
		x := make([]float32, n*in.size())
		for i := range x {
			x[i] = float32(r.IntN(4)) // ties are common
		}
		dy := randSlice(r, n*l.out.size())
		want := make([]float32, len(dy))
		idx := make([]int32, len(dy))
		maxPool(l, x, n, want, idx)
		got := make([]float32, len(dy))
		maxPool2x2(l, x, n, got)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%v: forward[%d] = %v, want %v", in, i, got[i], want[i])
			}
		}
		wantDx := make([]float32, len(x))
		for j, src := range idx {
			wantDx[src] += dy[j]
		}
		gotDx := randSlice(r, len(x)) // must be fully overwritten
		maxPool2x2Back(l, x, n, got, dy, gotDx)
		for i := range gotDx {
			if gotDx[i] != wantDx[i] {
				t.Fatalf("%v: backward[%d] = %v, want %v", in, i, gotDx[i], wantDx[i])
			}
		}
	}
}
