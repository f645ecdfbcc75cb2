package train

// Single-precision matrix multiply used by the convolution and dense layers.
//
// The layout follows the BLIS/GotoBLAS scheme: C is computed in blocks; the
// B part of a block (kc x nc) is packed into column panels as wide as the
// micro-kernel's tile, and a register-blocked micro-kernel multiplies a
// sliver of gemmMR rows of A with one B panel. Full slivers of A are read in
// place through row and depth strides (A is tall and N small in a CNN, so
// packing A would cost about as much as the multiply); only the ragged last
// rows are packed, zero-padded. Three micro-kernels share this driver: Go
// assembly for AVX-512 (6x32) and AVX2 + FMA (6x16), chosen at run time with
// golang.org/x/sys/cpu, and plain Go (6x16) everywhere else. They sum in the
// same order, so they differ only by FMA rounding.

const (
	gemmMR = 6
	gemmNR = 16 // tile width of the portable and AVX2 kernels
	// gemmMaxNR is the widest tile (the AVX-512 kernel's).
	gemmMaxNR = 32
	gemmKC    = 256
	gemmMC    = 96
	gemmNC    = 1024
)

// kernelFunc computes c[i*ldc+j] += sum_p a[i*rs+p*ks] * b[p*NR+j] for a
// full MR x NR tile; b is a packed panel of length k*NR and a is either a
// packed panel (rs=1, ks=MR) or read in place from A (row-major: rs=lda,
// ks=1; transposed: rs=1, ks=lda), which saves packing when N is small.
// With add false the tile is overwritten without reading c.
type kernelFunc func(k int, a []float32, rs, ks int, b, c []float32, ldc int, add bool)

// gemm multiplies matrices with reusable packing buffers. A gemm value is
// not safe for concurrent use; each worker owns one.
type gemm struct {
	kernel kernelFunc
	nr     int // tile width of kernel
	packA  []float32
	packB  []float32
	tile   [gemmMR * gemmMaxNR]float32
}

// kernelKind selects a micro-kernel.
type kernelKind int

const (
	kernelPortable kernelKind = iota // plain Go, 6x16
	kernelAVX2                       // AVX2 + FMA assembly, 6x16
	kernelAVX512                     // AVX-512F assembly, 6x32
)

func (k kernelKind) String() string {
	return [...]string{"portable-go-6x16", "avx2-fma-6x16", "avx512-6x32"}[k]
}

// bestKernel is the fastest kernel this CPU runs.
func bestKernel() kernelKind {
	switch {
	case haveAVX512():
		return kernelAVX512
	case haveFMA():
		return kernelAVX2
	}
	return kernelPortable
}

// newGemm returns a gemm using the fastest kernel the CPU supports, or the
// portable one when portable is true.
func newGemm(portable bool) *gemm {
	if portable {
		return newGemmKind(kernelPortable)
	}
	return newGemmKind(bestKernel())
}

func newGemmKind(kind kernelKind) *gemm {
	g := &gemm{kernel: kernelGo, nr: gemmNR}
	switch kind {
	case kernelAVX2:
		g.kernel = kernelAsm
	case kernelAVX512:
		g.kernel, g.nr = kernelAVX512Asm, 32
	}
	g.packA = make([]float32, gemmMC*gemmKC)
	g.packB = make([]float32, gemmKC*(gemmNC+gemmMaxNR))
	return g
}

// mul computes C = op(A) * op(B) (or C += ... when acc is true), where op(A)
// is m x k and op(B) is k x n, all row-major with leading dimensions lda,
// ldb and ldc. transA means A is stored k x m; transB means B is stored n x k.
func (g *gemm) mul(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, acc bool, c []float32, ldc int) {
	if k == 0 && !acc {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	if m == 0 || n == 0 || k == 0 {
		return
	}
	for jc := 0; jc < n; jc += gemmNC {
		nc := min(gemmNC, n-jc)
		for pc := 0; pc < k; pc += gemmKC {
			kc := min(gemmKC, k-pc)
			g.packBBlock(transB, b, ldb, pc, jc, kc, nc)
			for ic := 0; ic < m; ic += gemmMC {
				mc := min(gemmMC, m-ic)
				if full := mc / gemmMR * gemmMR; full < mc {
					// Only the ragged rows are packed (zero-padded to MR).
					g.packABlock(transA, a, lda, ic+full, pc, mc-full, kc)
				}
				g.macro(transA, a, lda, ic, pc, mc, nc, kc, c[ic*ldc+jc:], ldc, acc || pc > 0)
			}
		}
	}
}

// macro multiplies rows ic..ic+mc, depth pc..pc+kc of op(A) by the packed
// kc x nc block of B into c (which starts at the block's top-left corner).
// Full MR-row slivers of A are read in place; the ragged rest was packed.
func (g *gemm) macro(transA bool, a []float32, lda, ic, pc, mc, nc, kc int, c []float32, ldc int, add bool) {
	full := mc / gemmMR * gemmMR
	NR := g.nr
	for jr := 0; jr < nc; jr += NR {
		nr := min(NR, nc-jr)
		bp := g.packB[(jr/NR)*kc*NR : (jr/NR+1)*kc*NR]
		for ir := 0; ir < mc; ir += gemmMR {
			mr := min(gemmMR, mc-ir)
			var ap []float32
			var rs, ks int
			switch {
			case ir >= full:
				ap, rs, ks = g.packA[:kc*gemmMR], 1, gemmMR
			case transA:
				ap, rs, ks = a[pc*lda+ic+ir:], 1, lda
			default:
				ap, rs, ks = a[(ic+ir)*lda+pc:], lda, 1
			}
			if mr == gemmMR && nr == NR {
				g.kernel(kc, ap, rs, ks, bp, c[ir*ldc+jr:], ldc, add)
				continue
			}
			t := g.tile[:gemmMR*NR]
			g.kernel(kc, ap, rs, ks, bp, t, NR, false)
			for i := 0; i < mr; i++ {
				dst := c[(ir+i)*ldc+jr : (ir+i)*ldc+jr+nr]
				src := t[i*NR : i*NR+nr]
				if !add {
					copy(dst, src)
					continue
				}
				for j := range dst {
					dst[j] += src[j]
				}
			}
		}
	}
}

// packABlock packs rows ic..ic+mc and columns pc..pc+kc of op(A) into
// panels of gemmMR rows: panel r holds, for each p, gemmMR consecutive values.
func (g *gemm) packABlock(trans bool, a []float32, lda, ic, pc, mc, kc int) {
	dst := g.packA
	for ir := 0; ir < mc; ir += gemmMR {
		mr := min(gemmMR, mc-ir)
		panel := dst[(ir/gemmMR)*kc*gemmMR : (ir/gemmMR+1)*kc*gemmMR]
		if mr < gemmMR {
			clear(panel)
		}
		if !trans {
			if mr == gemmMR {
				// Read the six rows in lockstep so the panel is written sequentially.
				base := (ic+ir)*lda + pc
				r0 := a[base : base+kc]
				r1 := a[base+lda : base+lda+kc]
				r2 := a[base+2*lda : base+2*lda+kc]
				r3 := a[base+3*lda : base+3*lda+kc]
				r4 := a[base+4*lda : base+4*lda+kc]
				r5 := a[base+5*lda : base+5*lda+kc]
				panel = panel[:kc*gemmMR]
				for p := range kc {
					d := (*[gemmMR]float32)(panel[p*gemmMR : p*gemmMR+gemmMR])
					d[0], d[1], d[2], d[3], d[4], d[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
				}
				continue
			}
			for i := 0; i < mr; i++ {
				src := a[(ic+ir+i)*lda+pc : (ic+ir+i)*lda+pc+kc]
				for p, v := range src {
					panel[p*gemmMR+i] = v
				}
			}
			continue
		}
		if mr == gemmMR {
			for p := 0; p < kc; p++ {
				src := (*[gemmMR]float32)(a[(pc+p)*lda+ic+ir : (pc+p)*lda+ic+ir+gemmMR])
				d := (*[gemmMR]float32)(panel[p*gemmMR : p*gemmMR+gemmMR])
				d[0], d[1], d[2], d[3], d[4], d[5] = src[0], src[1], src[2], src[3], src[4], src[5]
			}
			continue
		}
		for p := 0; p < kc; p++ {
			src := a[(pc+p)*lda+ic+ir : (pc+p)*lda+ic+ir+mr]
			copy(panel[p*gemmMR:p*gemmMR+mr], src)
		}
	}
}

// packBBlock packs rows pc..pc+kc and columns jc..jc+nc of op(B) into
// panels of gemmNR columns: panel j holds, for each p, gemmNR consecutive values.
func (g *gemm) packBBlock(trans bool, b []float32, ldb, pc, jc, kc, nc int) {
	dst := g.packB
	NR := g.nr
	for jr := 0; jr < nc; jr += NR {
		nr := min(NR, nc-jr)
		panel := dst[(jr/NR)*kc*NR : (jr/NR+1)*kc*NR]
		if nr < NR {
			clear(panel)
		}
		if !trans {
			for p := 0; p < kc; p++ {
				src := b[(pc+p)*ldb+jc+jr : (pc+p)*ldb+jc+jr+nr]
				copy(panel[p*NR:p*NR+nr], src)
			}
			continue
		}
		for j := 0; j < nr; j++ {
			src := b[(jc+jr+j)*ldb+pc : (jc+jr+j)*ldb+pc+kc]
			for p, v := range src {
				panel[p*NR+j] = v
			}
		}
	}
}

// kernelGo is the portable micro-kernel.
func kernelGo(k int, a []float32, rs, ks int, b, c []float32, ldc int, add bool) {
	var acc [gemmMR][gemmNR]float32
	b = b[:k*gemmNR]
	for p := 0; p < k; p++ {
		bp := (*[gemmNR]float32)(b[p*gemmNR : p*gemmNR+gemmNR])
		for i := 0; i < gemmMR; i++ {
			av := a[i*rs+p*ks]
			row := &acc[i]
			for j := 0; j < gemmNR; j++ {
				row[j] += av * bp[j]
			}
		}
	}
	for i := 0; i < gemmMR; i++ {
		dst := c[i*ldc : i*ldc+gemmNR]
		if !add {
			copy(dst, acc[i][:])
			continue
		}
		for j := range dst {
			dst[j] += acc[i][j]
		}
	}
}

// KernelName names the matrix-multiply micro-kernel this CPU uses.
func KernelName() string { return bestKernel().String() }
