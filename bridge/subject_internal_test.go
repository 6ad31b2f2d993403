package bridge

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func TestEscapeNameKeepsReservedCharactersOutOfSubjects(t *testing.T) {
	for _, name := range []string{"sensors/imu", "a.b", "x*y>z", "with space\tand\ttab", "tilde~", "ünï", "-_/+=:,@"} {
		tok := EscapeName(name)
		require.NotContains(t, tok, ".")
		require.NotContains(t, tok, "*")
		require.NotContains(t, tok, ">")
		require.NotContains(t, tok, " ")
		back, err := UnescapeName(tok)
		require.NoError(t, err)
		require.Equal(t, name, back)
	}
	require.Equal(t, "sensors/imu~2eleft", EscapeName("sensors/imu.left"))
	require.Equal(t, "iox.ll.a~2eb", Subject("iox", "ll", "a.b"))
	for _, bad := range []string{"a.b", "~2", "~zz", "a b"} {
		_, err := UnescapeName(bad)
		require.ErrorIs(t, err, iox.ErrInvalidName, bad)
	}
}

func TestTypeStringRoundTrips(t *testing.T) {
	for _, pt := range []iox.PayloadType{iox.Bytes, {Name: "my_app::Point", Size: 16, Align: 8, Fixed: true}, {Name: "a/b", Size: 4, Align: 4}} {
		got, err := parseType(TypeString(pt))
		require.NoError(t, err)
		require.Equal(t, pt, got)
	}
	_, err := parseType("u8")
	require.Error(t, err)
}

func TestGlobs(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"sensors/*", "sensors/imu", true},
		{"sensors/*", "sensors/imu/raw", false},
		{"sensors/**", "sensors/imu/raw", true},
		{"sensors/**", "sensors", false},
		{"sensors/**", "sensorsX/a", false},
		{"**", "any/thing.at all", true},
		{"*", "a/b", false},
		{"orders", "orders", true},
	}
	for _, c := range cases {
		require.Equal(t, c.want, match([]string{c.pattern}, c.name), "%s ~ %s", c.pattern, c.name)
	}
	require.ErrorIs(t, checkPatterns("export", []string{"[bad"}), iox.ErrInvalidArgument)
	require.ErrorIs(t, checkPatterns("export", []string{""}), iox.ErrInvalidArgument)
}
