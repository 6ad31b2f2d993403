package main

// Adversarial tests of the command: absurd flags and arguments get a clear
// error and a non-zero exit status.

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// A -root that is a file, or lies under one, is no folder iceoryx2 can use:
// every command says so instead of reporting an internal failure.
func TestAdvRootThatIsAFileIsRefusedClearly(t *testing.T) {
	f, err := os.CreateTemp("/tmp", "ioxf") // short: the root must leave room for socket paths
	require.NoError(t, err)
	file := f.Name()
	require.NoError(t, f.Close())
	prefix := runPrefix() + "_adv_"
	t.Cleanup(func() {
		os.Remove(file)
		for _, f := range leftovers(prefix) {
			os.Remove("/dev/shm/" + f)
		}
	})
	for _, root := range []string{file + "/", file + "/below/"} {
		for _, args := range [][]string{{"services"}, {"nodes"}, {"clean"}, {"sub", "x"}, {"notify", "x", "1"}} {
			full := append([]string{args[0], "-prefix", prefix, "-root", root}, args[1:]...)
			out, errOut, code := runIox(t, nil, "", full...)
			require.NotEqual(t, 0, code, "%v", full)
			require.Empty(t, out, "%v", full)
			require.Contains(t, errOut, "not a directory", "%v", full)
			require.NotContains(t, errOut, "internal failure", "%v", full)
		}
	}
	require.Empty(t, leftovers(prefix), "a refused command creates nothing")
}

// A NAME:SIZE:ALIGN type of an absurd size is a command line error like any
// other: the command must not try to make room for a value of that size (the
// value or key it reads from the command line holds at most a few bytes).
func TestAdvHugeTypeSizeIsAnError(t *testing.T) {
	ns := newNamespace(t)
	const huge = "blob:99999999999:1"
	for _, args := range [][]string{
		{"set", "-value", huge, "bb", "1", "00"},
		{"set", "-key", huge, "bb", "00", "1"},
		{"get", "-key", huge, "bb", "00"},
		{"watch", "-key", huge, "bb", "00"},
	} {
		out, errOut, code := runIox(t, &ns, "", args...)
		require.Empty(t, out, "%v", args)
		require.NotContains(t, errOut, "fatal error", "%v", args)
		require.NotContains(t, errOut, "panic", "%v", args)
		require.Contains(t, errOut, "the type has 99999999999", "%v", args)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
	}
}

// A float entry may hold any float, NaN and the infinities included: -json
// prints it (JSON has no such numbers, so as the string set reads back) instead
// of failing.
func TestAdvJSONPrintsEveryFloat(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	board(t, node)
	for _, v := range []string{"NaN", "+Inf", "-Inf"} {
		ok(t, &ns, "set", "-key", "u32", "-value", "f64", "bb", "3", "--", v)
		require.Equal(t, v+"\n", ok(t, &ns, "get", "-key", "u32", "-value", "f64", "bb", "3"))
		out := ok(t, &ns, "get", "-json", "-key", "u32", "-value", "f64", "bb", "3")
		var line struct {
			Value any `json:"value"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &line), out)
		require.Equal(t, v, line.Value, out)
	}
}

// A -root where no file can be made (a kernel file system such as /proc) is
// refused with an error naming it, not reported as an internal failure.
func TestAdvRootWhereNoFileCanBeMadeIsRefusedClearly(t *testing.T) {
	prefix := runPrefix() + "_proc_"
	t.Cleanup(func() {
		for _, f := range leftovers(prefix) {
			os.Remove("/dev/shm/" + f)
		}
	})
	for _, root := range []string{"/proc", "/proc/self", "/sys/iox"} {
		for _, args := range [][]string{{"services"}, {"nodes"}, {"clean"}, {"sub", "x"}, {"notify", "x", "1"}} {
			full := append([]string{args[0], "-prefix", prefix, "-root", root}, args[1:]...)
			out, errOut, code := runIox(t, nil, "", full...)
			require.Equal(t, 1, code, "%v: %s", full, errOut)
			require.Empty(t, out, "%v", full)
			require.Contains(t, errOut, fmt.Sprintf("isolation root %q", root+"/"), "%v", full)
			require.NotContains(t, errOut, "internal failure", "%v", full)
		}
	}
}
