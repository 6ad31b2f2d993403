//go:build !iox_noembed

package embedded

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A new user's module, outside the checkout, requires iox (replaced by a copy
// of the checkout's Go sources without any cargo output), builds a program
// with the go command alone and runs it: its two processes play ping-pong
// with the embedded library, loaded from memory, and leave no file behind.
func TestNewUserNeedsNothingButGo(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	work := t.TempDir()
	module := filepath.Join(work, "iox")
	copyModule(t, root, module)
	_, err = os.Stat(filepath.Join(module, "internal", "native", "target"))
	require.ErrorIs(t, err, fs.ErrNotExist, "the copy carries no cargo output")

	user := filepath.Join(work, "user")
	require.NoError(t, os.Mkdir(user, 0o755))
	goMod := "module example.com/newuser\n\ngo 1.26.0\n\n" +
		"require github.com/iox-go/iox v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/iox-go/iox => " + module + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(user, "go.mod"), []byte(goMod), 0o644))
	copyFile(t, filepath.Join(root, "go.sum"), filepath.Join(user, "go.sum")) // the dependencies' hashes, from the module cache
	copyFile(t, filepath.Join("testdata", "newuser", "main.go"), filepath.Join(user, "main.go"))

	env := withoutVar(os.Environ(), "IOX_NATIVE_LIB")
	build := exec.Command("go", "build", "-o", "newuser", ".")
	build.Dir = user
	build.Env = append(env, "GOFLAGS=-mod=mod "+os.Getenv("GOFLAGS"), "GOWORK=off")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)

	cache := filepath.Join(work, "cache") // the program's os.UserCacheDir
	require.NoError(t, os.Mkdir(cache, 0o700))
	prefix := fmt.Sprintf("t%d_nu_", os.Getpid())
	run := exec.Command(filepath.Join(user, "newuser"))
	run.Dir = work
	run.Env = append(env, "XDG_CACHE_HOME="+cache,
		"NEWUSER_PREFIX="+prefix, "NEWUSER_ROOT="+filepath.Join(work, "ns")+"/")
	out, err = run.CombinedOutput()
	text := string(out)
	t.Logf("the new user's program:\n%s", text)
	require.NoError(t, err)

	assert.Contains(t, text, "round trips: 1000")
	for _, role := range []string{"ping", "pong"} {
		loads := regexp.MustCompile(`(?m)^`+role+` loaded (.*)$`).FindAllStringSubmatch(text, -1)
		require.Len(t, loads, 1, "%s loaded one library", role)
		assert.Regexp(t, `^embedded /proc/self/fd/\d+$`, loads[0][1], "%s loaded the embedded copy from memory", role)
	}
	left, err := os.ReadDir(cache)
	require.NoError(t, err)
	assert.Empty(t, left, "nothing written to the cache folder")
	shm, err := filepath.Glob("/dev/shm/" + prefix + "*")
	require.NoError(t, err)
	for _, f := range shm { // the namespace's node counter; a clean run removes it with RemoveIsolation
		os.Remove(f)
	}
	assert.Empty(t, shm, "shared memory left behind")
}

// copyModule copies the module's files from src to dst, leaving out version
// control, Python environments and every folder named target (cargo's output).
func copyModule(t *testing.T, src, dst string) {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && (d.Name() == "target" || strings.HasPrefix(d.Name(), ".git") || strings.HasPrefix(d.Name(), ".venv")):
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case d.Type().IsRegular() && d.Name() != ".git":
			copyFile(t, path, filepath.Join(dst, rel))
		}
		return nil
	})
	require.NoError(t, err)
}

func copyFile(t *testing.T, src, dst string) {
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, data, 0o644))
}

func withoutVar(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
