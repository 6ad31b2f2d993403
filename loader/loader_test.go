package loader

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iox-go/iox/internal/testlib"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOpenFindsProjectBuild(t *testing.T) {
	t.Setenv(EnvVar, "")
	lib, err := Open("")
	require.NoError(t, err, "run `make native` first")
	assert.True(t, strings.HasSuffix(lib.Path, LibName))
	_, err = lib.Symbol("iox_publisher_send_copy")
	assert.NoError(t, err)
}

func TestNotFoundNamesEveryPathAndTheBuildCommand(t *testing.T) {
	dir := t.TempDir()
	paths := []string{filepath.Join(dir, "a", LibName), filepath.Join(dir, "b", LibName), "libiox_native_absent.so"}
	_, err := openFirst(paths)
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
	c := Candidates("")
	require.GreaterOrEqual(t, len(c), 3)
	assert.Contains(t, c[0], filepath.Join("internal", "native", "target", "release", LibName))
	exe, _ := os.Executable()
	assert.Equal(t, filepath.Join(filepath.Dir(exe), LibName), c[1])
	assert.Equal(t, LibName, c[len(c)-1])
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
