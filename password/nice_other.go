//go:build !unix

package password

// lowerPriority does nothing where there are no nice values: the worker
// runs at the service's priority, and only the slots bound what hashes
// take.
func lowerPriority(int) error { return nil }
