// Package train is the node runtime's training engine.
package train
