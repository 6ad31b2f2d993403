//go:build linux && amd64 && !iox_noembed

package loader

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebitengine/purego"

	"github.com/iox-go/iox/internal/embedded"
)

// A library is loaded once per process, so each first load is timed in a
// fresh process: the test binary re-executed in a child role that loads the
// library one way, checks its ABI version, and prints how long that took.
func init() {
	timed := func(open func() (string, uintptr, error)) func() error {
		return func() error {
			start := time.Now()
			path, h, err := open()
			if err != nil {
				return err
			}
			if err := (&Library{Path: path, handle: h}).checkABI(); err != nil {
				return err
			}
			fmt.Println(time.Since(start).Nanoseconds())
			return nil
		}
	}
	childRoles["load-memory"] = timed(openFromMemory)
	childRoles["load-cache"] = timed(func() (string, uintptr, error) { return openFromCache(os.Getenv("IOX_BENCH_CACHE")) })
	childRoles["load-file"] = timed(func() (string, uintptr, error) {
		p := os.Getenv("IOX_BENCH_LIB")
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL)
		return p, h, err
	})
}

// BenchmarkFirstLoad reports, as ns/load, how long a process takes to load the
// native library the first time (ns/op adds the child process around it):
// the embedded copy from memory (memfd), from the cache folder when the file
// has to be written (cold) or is there and only verified (warm), and, for
// comparison, the checkout's build from its file.
func BenchmarkFirstLoad(b *testing.B) {
	b.Run("embedded-memfd", func(b *testing.B) { benchLoad(b, "load-memory", nil) })
	b.Run("embedded-cache-cold", func(b *testing.B) {
		benchLoad(b, "load-cache", func() []string {
			return []string{"IOX_BENCH_CACHE=" + filepath.Join(b.TempDir(), "iox")}
		})
	})
	warm := filepath.Join(b.TempDir(), "iox")
	if _, _, err := openFromCache(warm); err != nil {
		b.Fatal(err)
	}
	b.Run("embedded-cache-warm", func(b *testing.B) {
		benchLoad(b, "load-cache", func() []string { return []string{"IOX_BENCH_CACHE=" + warm} })
	})
	b.Run("checkout-file", func(b *testing.B) {
		lib := filepath.Join(sourceRoot(), "internal", "native", "target", "release", LibName)
		if _, err := os.Stat(lib); err != nil {
			b.Fatalf("%v: run `%s` first", err, BuildCommand)
		}
		benchLoad(b, "load-file", func() []string { return []string{"IOX_BENCH_LIB=" + lib} })
	})
}

func benchLoad(b *testing.B, role string, env func() []string) {
	var total time.Duration
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "IOX_LOADER_CHILD="+role)
		if env != nil {
			b.StopTimer()
			cmd.Env = append(cmd.Env, env()...)
			b.StartTimer()
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			b.Fatalf("child said %q", out)
		}
		total += time.Duration(ns)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/load")
}

// BenchmarkDecompress is the share of a first load spent decompressing the
// embedded library (into memory, in parallel chunks).
func BenchmarkDecompress(b *testing.B) {
	m, _ := embedded.Library()
	b.SetBytes(m.Size)
	for b.Loop() {
		if err := embedded.Extract(discardAt{}); err != nil {
			b.Fatal(err)
		}
	}
}

type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
