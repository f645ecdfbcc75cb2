package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveGemm is the reference: C = op(A) * op(B) in float64.
func naiveGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int) []float64 {
	c := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			c[i*n+j] = s
		}
	}
	return c
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// availableKernels lists the kernels this CPU can run.
func availableKernels() []kernelKind {
	ks := []kernelKind{kernelPortable}
	if haveFMA() {
		ks = append(ks, kernelAVX2)
	}
	if haveAVX512() {
		ks = append(ks, kernelAVX512)
	}
	return ks
}

func TestGemmMatchesReference(t *testing.T) {
	t.Logf("kernels tested on this CPU: %v", availableKernels())
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {13, 33, 300}, {100, 64, 288}, {97, 130, 9}, {200, 5, 513}, {5, 1100, 20},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, kind := range availableKernels() {
				name := fmt.Sprintf("m%d_n%d_k%d_tA%v_tB%v_%v", s.m, s.n, s.k, tr[0], tr[1], kind)
				t.Run(name, func(t *testing.T) {
					lda, ldb := s.k, s.n
					if tr[0] {
						lda = s.m
					}
					if tr[1] {
						ldb = s.k
					}
					a := randSlice(r, s.m*s.k)
					b := randSlice(r, s.k*s.n)
					want := naiveGemm(tr[0], tr[1], s.m, s.n, s.k, a, lda, b, ldb)
					c := randSlice(r, s.m*s.n)
					init := append([]float32(nil), c...)
					g := newGemmKind(kind)
					g.mul(tr[0], tr[1], s.m, s.n, s.k, a, lda, b, ldb, true, c, s.n)
					tol := 1e-4 * math.Sqrt(float64(s.k))
					for i := range c {
						w := want[i] + float64(init[i])
						if d := math.Abs(float64(c[i]) - w); d > tol*(1+math.Abs(w)) {
							t.Fatalf("acc c[%d] = %v, want %v (diff %g)", i, c[i], w, d)
						}
					}
					g.mul(tr[0], tr[1], s.m, s.n, s.k, a, lda, b, ldb, false, c, s.n)
					for i := range c {
						if d := math.Abs(float64(c[i]) - want[i]); d > tol*(1+math.Abs(want[i])) {
							t.Fatalf("c[%d] = %v, want %v (diff %g)", i, c[i], want[i], d)
						}
					}
				})
			}
		}
	}
}

// TestGemmKernelsAgree compares the assembly and portable paths directly.
func TestGemmKernelsAgree(t *testing.T) {
	if !haveFMA() {
		t.Skip("CPU lacks AVX2/FMA: the assembly kernels cannot run here (run on an x86-64 CPU with AVX2 and FMA)")
	}
	r := rand.New(rand.NewPCG(3, 4))
	m, n, k := 150, 70, 333
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	want := make([]float32, m*n)
	newGemmKind(kernelPortable).mul(false, false, m, n, k, a, k, b, n, false, want, n)
	for _, kind := range availableKernels()[1:] {
		got := make([]float32, m*n)
		newGemmKind(kind).mul(false, false, m, n, k, a, k, b, n, false, got, n)
		for i := range got {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-3 {
				t.Fatalf("portable c[%d] = %v, %v %v", i, want[i], kind, got[i])
			}
		}
	}
}

func BenchmarkGemm(b *testing.B) {
	// The conv2 shapes of the benchmark CNN for 32 samples: forward
	// (col x W), weight gradient (col^T x dy) and input gradient (dy x W^T).
	for _, s := range []struct {
		m, n, k        int
		transA, transB bool
	}{{3872, 64, 288, false, false}, {288, 64, 3872, true, false}, {3872, 288, 64, false, true}} {
		for _, kind := range availableKernels() {
			b.Run(fmt.Sprintf("%dx%dx%d_tA%v_tB%v_%v", s.m, s.n, s.k, s.transA, s.transB, kind), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				a, bb, c := randSlice(r, s.m*s.k), randSlice(r, s.k*s.n), make([]float32, s.m*s.n)
				lda, ldb := s.k, s.n
				if s.transA {
					lda = s.m
				}
				if s.transB {
					ldb = s.k
				}
				g := newGemmKind(kind)
				b.ResetTimer()
				for range b.N {
					g.mul(s.transA, s.transB, s.m, s.n, s.k, a, lda, bb, ldb, false, c, s.n)
				}
				b.ReportMetric(float64(2*s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
