//go:build linux

package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iox-go/iox/internal/embedded"
	"github.com/iox-go/iox/internal/testlib"
)

// childRoles are what a re-executed test binary can do instead of the tests
// (IOX_LOADER_CHILD names one); the benchmarks time first loads this way.
var childRoles = map[string]func() error{}

func TestMain(m *testing.M) {
	if role := os.Getenv("IOX_LOADER_CHILD"); role != "" {
		run, ok := childRoles[role]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown child role", role)
			os.Exit(3)
		}
		if err := run(); err != nil {
			fmt.Fprintln(os.Stderr, "child", role+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestOpenFindsProjectBuild(t *testing.T) {
	t.Setenv(EnvVar, "")
	lib, err := Open("")
	require.NoError(t, err, "run `make native` first")
	assert.True(t, strings.HasSuffix(lib.Path, LibName))
	assert.Equal(t, FromCheckout, lib.Source, "a checkout's own build goes ahead of the embedded copy")
	assert.Contains(t, Loaded(), lib)
	_, err = lib.Symbol("iox_publisher_send_copy")
	assert.NoError(t, err)
}

func TestNotFoundNamesEveryPathAndTheBuildCommand(t *testing.T) {
	dir := t.TempDir()
	paths := []string{filepath.Join(dir, "a", LibName), filepath.Join(dir, "b", LibName), "libiox_native_absent.so"}
	_, err := openFirst([]candidate{{paths[0], FromCheckout}, {paths[1], FromExecutableDir}, {paths[2], FromSystem}})
	require.ErrorIs(t, err, ErrNotFound)
	var nf *NotFoundError
	require.True(t, errors.As(err, &nf))
	assert.Len(t, nf.Tried, 3)
	for _, p := range paths {
		assert.Contains(t, err.Error(), p)
	}
	assert.Contains(t, err.Error(), BuildCommand)
}

func TestExplicitPathIsTheOnlyCandidate(t *testing.T) {
	assert.Equal(t, []string{"/x/lib.so"}, Candidates("/x/lib.so"))
	t.Setenv(EnvVar, "/y/lib.so")
	assert.Equal(t, []string{"/y/lib.so"}, Candidates(""))
	_, err := Open("")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "/y/lib.so")
}

func TestSearchOrder(t *testing.T) {
	t.Setenv(EnvVar, "")
	c := candidates("")
	var sources []Source
	for _, e := range c {
		sources = append(sources, e.source)
	}
	want := []Source{FromCheckout, FromExecutableDir, FromSystem}
	if _, ok := embedded.Library(); ok {
		want = []Source{FromCheckout, FromExecutableDir, FromEmbedded, FromSystem}
	}
	require.Equal(t, want, sources)
	assert.Equal(t, filepath.Join(sourceRoot(), "internal", "native", "target", "release", LibName), c[0].path)
	exe, _ := os.Executable()
	assert.Equal(t, filepath.Join(filepath.Dir(exe), LibName), c[1].path)
	assert.Equal(t, LibName, c[len(c)-1].path)
	assert.Len(t, Candidates(""), len(c))
}

func TestBuildHintNamesTheCommandForThisMachine(t *testing.T) {
	// A checkout one can write to: `make native` there, which the search finds by itself.
	hint := buildHint(sourceRoot(), "linux/amd64", true)
	assert.Contains(t, hint, BuildCommand+"` in "+sourceRoot())
	assert.NotContains(t, hint, "iox_noembed")
	// A copy one cannot write to (Go's module cache): cargo with a target
	// folder of the user's, and the variable that points at the result.
	ro := filepath.Join(t.TempDir(), "absent", "iox@v1.0.0")
	hint = buildHint(ro, "linux/amd64", true)
	assert.Contains(t, hint, "cargo build --release --locked --manifest-path "+filepath.Join(ro, "internal", "native", "Cargo.toml")+" --target-dir ")
	assert.Contains(t, hint, EnvVar+"=")
	// No sources known (-trimpath): a checkout, and the variable.
	hint = buildHint("", "linux/amd64", true)
	assert.Contains(t, hint, BuildCommand)
	assert.Contains(t, hint, EnvVar)

	// Without an embedded library: why, then how to build one.
	hint = buildHint(sourceRoot(), "linux/arm64", false)
	assert.Contains(t, hint, "iox embeds a native library for linux/amd64 only, and this is linux/arm64")
	assert.Contains(t, hint, BuildCommand+"` in "+sourceRoot())
	assert.Contains(t, buildHint(sourceRoot(), "linux/amd64", false), "built with the tag iox_noembed")
}

func TestNotFoundSaysWhyNoLibraryIsEmbedded(t *testing.T) {
	_, carried := embeddedCandidate()
	_, err := openFirst([]candidate{{"libiox_native_absent.so", FromSystem}})
	require.ErrorIs(t, err, ErrNotFound)
	if carried {
		assert.NotContains(t, err.Error(), "iox_noembed")
	} else {
		assert.Contains(t, err.Error(), "iox_noembed")
	}
}

func TestSourceNames(t *testing.T) {
	for s, name := range map[Source]string{FromOption: "option", FromEnv: "environment", FromCheckout: "checkout",
		FromExecutableDir: "executable folder", FromEmbedded: "embedded", FromSystem: "system", 0: "Source(0)"} {
		assert.Equal(t, name, s.String())
	}
}

func TestWrongABIVersionIsRefused(t *testing.T) {
	path := testlib.Stub(t, ABIVersion+41)
	_, err := Open(path)
	require.ErrorIs(t, err, ErrABIMismatch)
	var mm *ABIMismatchError
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, uint32(ABIVersion+41), mm.Got)
	assert.Equal(t, uint32(ABIVersion), mm.Want)
	assert.Contains(t, err.Error(), BuildCommand)
}

func TestABIMismatchOfTheEmbeddedCopyNamesTheEmbedCommand(t *testing.T) {
	err := &ABIMismatchError{Path: "/proc/self/fd/7", Source: FromEmbedded, Got: ABIVersion - 1, Want: ABIVersion}
	assert.ErrorIs(t, err, ErrABIMismatch)
	assert.Contains(t, err.Error(), "embedded")
	assert.Contains(t, err.Error(), EmbedCommand)
}

func TestMissingSymbolIsReported(t *testing.T) {
	lib, err := Open(testlib.Stub(t, ABIVersion))
	require.NoError(t, err)
	_, err = lib.Symbol("iox_node_create")
	require.ErrorIs(t, err, ErrMissingSymbol)
	assert.Contains(t, err.Error(), "iox_node_create")
}

func TestNotALibrary(t *testing.T) {
	p := filepath.Join(t.TempDir(), LibName)
	require.NoError(t, os.WriteFile(p, []byte("not an ELF file"), 0o644))
	_, err := Open(p)
	assert.ErrorIs(t, err, ErrNotFound)
}
