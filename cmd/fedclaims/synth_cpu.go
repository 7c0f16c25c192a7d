//go:build unix

package main

import "syscall"

// processCPUSeconds is the user and system time this process has used, so that a
// benchmark on a shared machine can report throughput per CPU-second next to its
// wall-clock figure.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
