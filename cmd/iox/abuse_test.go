package main

// Abuse of the command: hostile names and ids, signals at awkward moments,
// and what `pub` reports when its messages were not taken.

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// An interrupted `pub` whose messages the subscriber had not taken must not
// exit 0: it exited 0 with the lines it had queued neither taken nor
// reported.
func TestAbusePubInterruptedWithMessagesUntakenFails(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := iox.OpenSub(ctx, node, "stuck", iox.BufferSize(4))
	require.NoError(t, err)
	defer sub.Close()
	cmd := exec.Command(os.Args[0], "pub", "-prefix", ns.prefix, "-root", ns.root, "-linger", "100ms", "stuck")
	cmd.Env = append(os.Environ(), runEnv+"=1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	var written, writing atomic.Int64
	go func() { // lines until the command stops reading them: its Send waits
		line := []byte("line\n")
		for {
			writing.Store(1)
			_, err := stdin.Write(line)
			writing.Store(0)
			if err != nil {
				return
			}
			written.Add(1)
		}
	}()
	_, err = sub.Recv(ctx) // the command sends; from now on nobody reads
	require.NoError(t, err)
	// held back: a write blocked, with nothing written, for 200 looks in a row
	last, still := int64(-1), 0
	eventually(t, "the command to stop reading its input", func() bool {
		k := written.Load()
		if k == last && writing.Load() == 1 {
			still++
		} else {
			still = 0
		}
		last = k
		return still >= 200
	})
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("pub did not end on SIGINT")
	}
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), "stderr: %s", errOut.String())
	require.Contains(t, errOut.String(), "messages not delivered")
	require.Equal(t, 1, strings.Count(errOut.String(), "\n"), "one line: %q", errOut.String())
}

// On an iox lossless channel the messages wait for a subscriber (pub -h);
// with none there they are not taken, and `pub` must not exit 0 (it did,
// the lines going to nobody).
func TestAbusePubLosslessWithoutSubscriberFails(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	own, err := iox.OpenPub(context.Background(), node, "nobody")
	require.NoError(t, err)
	defer own.Close()
	out, errOut, code := runIox(t, &ns, "a\nb\nc\n", "pub", "-linger", "100ms", "nobody")
	require.Equal(t, 1, code, "stderr: %s", errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, "messages not delivered")

	// and a subscriber that comes while the lines wait gets them all
	p := start(t, &ns, "a\nb\nc\n", "pub", "-linger", "20s", "nobody")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := iox.OpenSub(ctx, node, "nobody")
	require.NoError(t, err)
	defer sub.Close()
	for _, want := range []string{"a", "b", "c"} {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, want, string(m))
	}
	out, errOut, code = p.wait()
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Empty(t, out+errOut)
}

// Names no service can have (non-UTF-8, empty, 3000 bytes, NUL-free binary)
// and ids out of range: each command exits 1 or 2 with one line on stderr,
// prints nothing, and never panics.
func TestAbuseHostileNamesAndIDs(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bell, err := node.Event("bell", iox.MaxEventID(5))
	require.NoError(t, err)
	defer bell.Close()
	names := []string{"\xff\xfe", "", strings.Repeat("n", 3000), "\x01\x02\x7f", "a\nb", "../../etc/passwd", "-"}
	var cases [][]string
	for _, n := range names {
		cases = append(cases, []string{"sub", "--", n}, []string{"pub", "--", n}, []string{"listen", "--", n},
			[]string{"notify", "--", n, "1"}, []string{"get", "--", n, "1"}, []string{"set", "--", n, "1", "2"},
			[]string{"watch", "--", n, "1"})
	}
	cases = append(cases,
		[]string{"notify", "bell", "18446744073709551616"}, []string{"notify", "bell", "18446744073709551615"},
		[]string{"notify", "bell", "6"}, []string{"notify", "bell", "0x3"}, []string{"notify", "bell", ""},
		[]string{"get", "-key", "k:64:1", "bell", strings.Repeat("zz", 64)},
		[]string{"get", "-key", "k:65:1", "bell", strings.Repeat("00", 65)},
		[]string{"set", "-value", "v:1099511627776:1", "bell", "1", "00"},
		[]string{"watch", "-poll", "-1ns", "bell", "1"},
		[]string{"sub", "-n", "99999999999999999999", "bell"},
	)
	for _, args := range cases {
		// the flags come before "--": start puts -prefix and -root after the command's name
		out, errOut, code := runIox(t, &ns, "line\n", args...)
		require.Contains(t, []int{1, 2}, code, "%q: %s", args, errOut)
		require.NotContains(t, errOut, "panic", "%q", args)
		require.NotContains(t, errOut, "goroutine ", "%q", args)
		require.NotEmpty(t, strings.TrimSpace(errOut), "%q", args)
		if code == 1 {
			require.Equal(t, 1, strings.Count(errOut, "\n"), "%q: one line: %q", args, errOut)
		}
		require.Empty(t, out, "%q", args)
	}
}

// SIGINT or SIGTERM at a random moment of a command's start (while it makes
// its node, opens the service, joins it) or while it waits: it exits 0 or is
// ended by the signal (before its handler is in place), within a few
// seconds, and leaves nothing behind (newNamespace checks /dev/shm).
func TestAbuseSignalsAtAwkwardMoments(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	own, err := iox.OpenPub(ctx, node, "ch")
	require.NoError(t, err)
	defer own.Close()
	bell, err := node.Event("bell")
	require.NoError(t, err)
	defer bell.Close()
	u32, err := iox.Fixed[uint32]("u32")
	require.NoError(t, err)
	u64, err := iox.Fixed[uint64]("u64")
	require.NoError(t, err)
	bb, err := iox.OpenBlackboard(node, "bb", u32, []iox.BlackboardEntry[uint32]{iox.Entry(uint32(1), u64, 7)})
	require.NoError(t, err)
	defer bb.Close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for _, args := range [][]string{{"sub", "ch"}, {"listen", "bell"}, {"watch", "bb", "1"}, {"pub", "ch"}} {
		for i := range 6 {
			sig := []os.Signal{os.Interrupt, syscall.SIGTERM}[i%2]
			full := append([]string{args[0], "-prefix", ns.prefix, "-root", ns.root}, args[1:]...)
			cmd := exec.Command(os.Args[0], full...)
			cmd.Env = append(os.Environ(), runEnv+"=1")
			stdin, err := cmd.StdinPipe() // open: pub waits for lines
			require.NoError(t, err)
			var errOut strings.Builder
			cmd.Stderr = &errOut
			require.NoError(t, cmd.Start())
			time.Sleep(time.Duration(rng.IntN(40000)) * time.Microsecond) // the stimulus: somewhere in its start
			require.NoError(t, cmd.Process.Signal(sig))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("%v did not end on %v", args, sig)
			}
			stdin.Close()
			st := cmd.ProcessState
			if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				continue // ended before its handler was in place
			}
			require.Equal(t, 0, st.ExitCode(), "%v on %v: %s", args, sig, errOut.String())
			require.Empty(t, errOut.String())
		}
	}
	eventually(t, "no port of the commands left", func() bool {
		s, _ := own.Subscribers(), 0
		_, l, _ := bell.Counts()
		return s == 0 && l == 0
	})
}
