package kernel

// NewChangesForTest returns an empty change set, for external tests that
// drive a Table directly (gang_random_test.go).
func NewChangesForTest() *Changes { return newChanges() }
