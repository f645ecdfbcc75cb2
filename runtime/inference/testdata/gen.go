//go:build ignore

// gen writes cnn.onnx, the seed image classifier with fixed weights used by
// the inference and server tests and by bench/serve. Run from this folder:
//
//	go run gen.go
package main

import (
	"log"
	"os"

	"github.com/hadron-ai/terraform-provider-hadron/runtime/inference/onnxtest"
)

func main() {
	b, err := onnxtest.CNN(1).Marshal()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("cnn.onnx", b, 0o644); err != nil {
		log.Fatal(err)
	}
}
