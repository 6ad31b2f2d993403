package bridge

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func TestPacksRoundTrip(t *testing.T) {
	f := newFramer("origin", 1<<20)
	msgs := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{7}, 300), []byte("last")}
	m := f.pack("iox.ps.x", "bytes", msgs)
	require.Equal(t, "4", m.Header.Get(hCount))
	require.Equal(t, "origin", m.Header.Get(hOrigin))
	n := 0
	for _, msg := range msgs {
		n += packedSize(len(msg))
	}
	require.Len(t, m.Data, n)
	a := &assembler{name: "x", typ: "bytes", max: 1 << 20}
	got, err := a.messages(m)
	require.NoError(t, err)
	require.Equal(t, msgs, got)
	// A message alone is one frame, as before packs.
	got, err = a.messages(f.frames("iox.ps.x", "bytes", []byte("alone"))[0])
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("alone")}, got)
	// Messages larger than the service takes are dropped, the others delivered.
	small := &assembler{name: "x", typ: "bytes", max: 10}
	got, err = small.messages(m)
	require.ErrorIs(t, err, iox.ErrMessageTooLarge)
	require.Equal(t, [][]byte{[]byte("one"), {}, []byte("last")}, got)
}

func TestPacksBounds(t *testing.T) {
	f := newFramer("o", 8<<20)
	require.Equal(t, packBytes, f.packLimit())
	require.True(t, f.packs(packAlone))
	require.False(t, f.packs(packAlone+1))
	tiny := newFramer("o", frameRoom+100) // a server with a small max_payload
	require.Equal(t, 100, tiny.packLimit())
	require.True(t, tiny.packs(99)) // 1 byte of length and 99
	require.False(t, tiny.packs(100))
	for n, want := range map[int]int{0: 1, 127: 128, 128: 130, 16383: 16385, 16384: 16387} {
		require.Equal(t, want, packedSize(n), "size %d", n)
	}
}

func TestMalformedPacksAreDropped(t *testing.T) {
	f := newFramer("origin", 1<<20)
	good := f.pack("s", "bytes", [][]byte{[]byte("ab"), []byte("cd")})
	forge := func(count string, data []byte) *nats.Msg {
		m := f.msg("s", "bytes", f.nextID())
		m.Header[hCount] = []string{count}
		m.Data = data
		return m
	}
	a := &assembler{name: "x", typ: "bytes", max: 1 << 20}
	for _, m := range []*nats.Msg{
		forge("x", good.Data),
		forge("0", good.Data),
		forge("3", good.Data),                    // fewer messages than it says
		forge("1", good.Data),                    // bytes beyond its messages
		forge("2", good.Data[:len(good.Data)-1]), // cut short
		forge("2", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), // a length beyond 64 bits
		forge(strconv.Itoa(1<<30), good.Data),
	} {
		got, err := a.messages(m)
		require.ErrorIs(t, err, iox.ErrProtocol, "count %s", m.Header.Get(hCount))
		require.Empty(t, got)
	}
	// A pack of a part, or where packs do not travel (a call), is refused.
	p := f.pack("s", "bytes", [][]byte{[]byte("ab"), []byte("cd")})
	p.Header[hPart] = []string{"1/2"}
	_, err := a.messages(p)
	require.ErrorIs(t, err, iox.ErrProtocol)
	_, ok, err := a.add(good)
	require.False(t, ok)
	require.ErrorIs(t, err, iox.ErrProtocol)
	// The assembler goes on.
	got, err := a.messages(good)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("ab"), []byte("cd")}, got)
}
