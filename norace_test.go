//go:build !race

package iox_test

const raceEnabled = false
