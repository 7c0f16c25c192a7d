//go:build !unix

package main

// processCPUSeconds is unknown off Unix; benchmarks then report wall-clock only.
func processCPUSeconds() float64 { return 0 }
