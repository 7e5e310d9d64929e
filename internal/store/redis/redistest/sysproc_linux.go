package redistest

import "syscall"

// sysProcAttr kills redis-server with the test binary, even when a timeout
// panic skips t.Cleanup.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
