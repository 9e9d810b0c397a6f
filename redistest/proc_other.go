//go:build !linux

package redistest

import "syscall"

// childAttr has no parent-death signal outside Linux; Main stops the servers instead.
func childAttr() *syscall.SysProcAttr { return nil }
