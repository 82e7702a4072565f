//go:build !race

package execdriver

const raceEnabled = false
