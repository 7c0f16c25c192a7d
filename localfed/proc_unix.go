//go:build unix

package localfed

import (
	"os/exec"
	"syscall"
)

// setGroup puts the child in a process group of its own, so that one signal reaches
// it and anything it started.
func setGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	// The group id is the child's pid; fall back to the child alone if the group is
	// gone.
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		_ = cmd.Process.Signal(sig)
	}
}
