package ffi

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// record builds one packed record as the native library writes it.
func record(words []uint64, strs ...string) []byte {
	var b []byte
	for _, w := range words {
		b = binary.NativeEndian.AppendUint64(b, w)
	}
	for _, s := range strs {
		b = append(b, s...)
	}
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	binary.NativeEndian.PutUint64(b, uint64(len(b)))
	return b
}

func TestParseServicesReadsEveryRecord(t *testing.T) {
	buf := append(record([]uint64{0, PatternEvent, 2, 1, 3, 4, 4}, "bell"),
		record([]uint64{0, PatternPublishSubscribe, 1, 0, 0, 0, 8}, "12345678")...)
	got, err := ParseServices(buf, 2)
	require.NoError(t, err)
	require.Equal(t, []ServiceRecord{
		{Name: "bell", Pattern: PatternEvent, Nodes: 2, PortsKnown: true, Ports: [2]uint64{3, 4}},
		{Name: "12345678", Pattern: PatternPublishSubscribe, Nodes: 1},
	}, got)
}

func TestParseNodesReadsEveryRecord(t *testing.T) {
	buf := append(record([]uint64{0, NodeDead, 5, 6, 3, 8}, "one", "iox.test"),
		record([]uint64{0, NodeInaccessible, 7, 8, 0, 0})...)
	got, err := ParseNodes(buf, 2)
	require.NoError(t, err)
	require.Equal(t, []NodeRecord{
		{State: NodeDead, IDLo: 5, IDHi: 6, Name: "one", Executable: "iox.test"},
		{State: NodeInaccessible, IDLo: 7, IDHi: 8},
	}, got)
}

func TestParseRefusesDamagedListings(t *testing.T) {
	good := record([]uint64{0, PatternEvent, 1, 1, 0, 0, 4}, "bell")
	for name, c := range map[string]struct {
		buf   []byte
		count int
	}{
		"more records than bytes": {good, 2},
		"short header":            {good[:40], 1},
		"size past the end":       {good[:len(good)-8], 1},
		"size below a header":     {func() []byte { b := append([]byte{}, good...); binary.NativeEndian.PutUint64(b, 8); return b }(), 1},
		"size not whole words":    {func() []byte { b := append([]byte{}, good...); binary.NativeEndian.PutUint64(b, 61); return b }(), 1},
		"name past the record":    {record([]uint64{0, PatternEvent, 1, 1, 0, 0, 99}, "bell"), 1},
	} {
		_, err := ParseServices(c.buf, c.count)
		require.Error(t, err, name)
	}
	_, err := ParseNodes(record([]uint64{0, NodeAlive, 1, 2, 3, 1 << 40}, "abc"), 1)
	require.Error(t, err)
}
