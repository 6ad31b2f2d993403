package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README shows what "iox -h" prints: it must be what the command prints.
func TestUsageIsWhatTheREADMEShows(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	const first = "iox looks inside iceoryx2"
	start := strings.Index(string(readme), "```\n"+first)
	require.GreaterOrEqual(t, start, 0, "the README shows the usage")
	shown := string(readme)[start+len("```\n"):]
	shown = shown[:strings.Index(shown, "```")]
	out, errOut, code := runIox(t, nil, "", "-h")
	require.Equal(t, 0, code)
	require.Empty(t, errOut)
	require.Equal(t, shown, out)
}
