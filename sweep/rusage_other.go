//go:build !unix

package sweep

// cpuSeconds is not measured off Unix: results report 0 CPU-seconds there.
func cpuSeconds() float64 { return 0 }
