package oip

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecodeRequestJSON decodes one 28x28 image sent as JSON.
func BenchmarkDecodeRequestJSON(b *testing.B) {
	img := make([]float32, 784)
	for i := range img {
		img[i] = float32(i%256) / 255
	}
	body, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "image", "datatype": "FP32", "shape": []int{1, 1, 28, 28}, "data": img}}})
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeRequest(body, -1); err != nil {
			b.Fatal(err)
		}
	}
}
