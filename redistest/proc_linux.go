package redistest

import "syscall"

// childAttr makes the kernel SIGKILL redis-server when the test binary dies, so a
// crashed or killed test run leaves no servers behind. (Pdeathsig follows the
// thread that started the child; the Go runtime does not end threads of ordinary
// goroutines, so in practice this is the process.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
