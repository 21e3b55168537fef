//go:build unix && !linux

package password

import (
	"fmt"
	"syscall"
)

// lowerPriority raises the nice value of this process by `by`: outside
// Linux a nice value belongs to the whole process.
func lowerPriority(by int) error {
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return fmt.Errorf("reading the nice value: %w", err)
	}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, min(prio+by, 20)); err != nil {
		return fmt.Errorf("raising the nice value: %w", err)
	}
	return nil
}
