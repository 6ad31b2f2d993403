package main

// Adversarial tests of what the command reports: input that cannot be sent
// gets an error that says why.

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A line of standard input that does not fit the service's fixed payload
// type is refused with the sizes named, on an iox lossless channel as on a
// lossy one (the lossless one said only "invalid argument").
func TestAdvrPubLineThatDoesNotFitTheType(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	f, err := iox.Fixed[uint64]("u64")
	require.NoError(t, err)
	for _, lossy := range []bool{false, true} {
		name := "fixed-lossless"
		var opts []iox.Option
		if lossy {
			name, opts = "fixed-lossy", []iox.Option{iox.Lossy()}
		}
		s, err := iox.OpenSubOf[uint64](context.Background(), node, name, f, opts...)
		require.NoError(t, err)
		out, errOut, code := runIox(t, &ns, "hello\n", "pub", "-linger", "100ms", name)
		require.Equal(t, 1, code, "%s: %s", name, errOut)
		require.Empty(t, out)
		require.Contains(t, errOut, "5 bytes", name)
		require.Contains(t, errOut, "size 8", name)
		require.NoError(t, s.Close())
	}
}
