package ffi

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// A receiver killed half-way through SetLast leaves the counter odd for good:
// Last then never reads a count, while LastLeft reads the tag and the count
// it wrote before (or was writing).
func TestLastLeftReadsAWriteLeftHalfDone(t *testing.T) {
	var mem [8]uint64
	w := &WaitWord{p: unsafe.Pointer(&mem[0])}
	w.SetLast(7, 3)
	tag, seq, ok := w.Last()
	require.True(t, ok)
	require.Equal(t, [2]uint64{7, 3}, [2]uint64{tag, seq})

	w.word(24).Add(1) // SetLast(7, 4) began, and its writer died
	_, _, ok = w.Last()
	require.False(t, ok, "a write under way is not read")
	tag, seq = w.LastLeft()
	require.Equal(t, [2]uint64{7, 3}, [2]uint64{tag, seq})
	w.word(40).Store(4) // it died after storing the count
	tag, seq = w.LastLeft()
	require.Equal(t, [2]uint64{7, 4}, [2]uint64{tag, seq})
}

// The end a pair's end paired with is recorded once: a second claim by
// another end fails, the same end's claim holds, and an undone claim frees
// the word for the next.
func TestClaimPeerRecordsOneEnd(t *testing.T) {
	var mem [8]uint64
	w := &WaitWord{p: unsafe.Pointer(&mem[0])}
	require.Zero(t, w.Peer())
	require.True(t, w.ClaimPeer(5))
	require.True(t, w.ClaimPeer(5), "the same end again")
	require.False(t, w.ClaimPeer(9), "another end")
	require.Equal(t, uint64(5), w.Peer())
	w.UnclaimPeer(9) // not the recorded end: nothing changes
	require.Equal(t, uint64(5), w.Peer())
	w.UnclaimPeer(5)
	require.True(t, w.ClaimPeer(9))
	require.Equal(t, uint64(9), w.Peer())
}
