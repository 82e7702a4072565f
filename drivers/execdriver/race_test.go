//go:build race

package execdriver

// raceEnabled: the race runtime inflates memory, so memory limits are not checked.
const raceEnabled = true
