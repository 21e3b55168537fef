package password

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// lowerPriority raises the nice value of every thread of this process by
// `by` over what it inherited. On Linux a nice value belongs to a thread,
// and a thread inherits its creator's: once every thread has the raised
// value, every thread the runtime starts later has it too. A thread
// started while the loop runs, by one not yet raised, is found by the next
// pass; the loop ends when a pass raises none. Raising a nice value needs
// no privilege.
func lowerPriority(by int) error {
	// The raw getpriority system call answers 20 - nice.
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return fmt.Errorf("reading the nice value: %w", err)
	}
	target := min(20-prio+by, 19)
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("listing the threads: %w", err)
		}
		raised := false
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
			if err != nil || 20-prio >= target {
				continue // ended since the listing, or raised already
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, target); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("raising the nice value of thread %d to %d: %w", tid, target, err)
			}
			raised = true
		}
		if !raised {
			return nil
		}
	}
}
