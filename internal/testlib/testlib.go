// Package testlib builds stand-in native libraries for tests of the loader's
// refusals: one that reports another ABI version, and one that reports the right
// version but exports nothing else. It compiles them with the system C compiler.
package testlib

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Stub compiles a shared library into a temporary folder whose iox_abi_version
// returns abi, and returns its path.
func Stub(t testing.TB, abi int) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "stub.c")
	lib := filepath.Join(dir, fmt.Sprintf("libiox_stub_%d.so", abi))
	code := fmt.Sprintf("unsigned int iox_abi_version(void) { return %d; }\n", abi)
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out, err := exec.Command(cc, "-shared", "-fPIC", "-o", lib, src).CombinedOutput()
	if err != nil {
		t.Fatalf("building stub library with %s: %v\n%s", cc, err, out)
	}
	return lib
}
