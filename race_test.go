//go:build race

package iox_test

const raceEnabled = true
