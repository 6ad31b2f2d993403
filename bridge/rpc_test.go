package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func TestCallOnOneHostIsServedOnAnother(t *testing.T) {
	th := newTwoHosts(t, []string{"calc/*"}, []string{"calc/*"}, nil)
	ctx := ctxT(t)
	serve(t, th.a, "calc/upper", 4, func(_ context.Context, req []byte) ([]byte, error) {
		if string(req) == "fail" {
			return nil, errors.New("refused")
		}
		return bytes.ToUpper(req), nil
	})
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "calc/upper") })
	cl, err := iox.OpenClient(ctx, th.b, "calc/upper", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	for i := range 50 {
		resp, err := cl.Call(ctx, []byte(fmt.Sprintf("hello %d", i)))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("HELLO %d", i), string(resp))
	}
	// A handler's failure is a call ended without an answer, as locally.
	_, err = cl.Call(ctx, []byte("fail"))
	require.ErrorIs(t, err, iox.ErrNoResponse)
	// Calls from many goroutines at once.
	errs := make(chan error, 16)
	for g := range 16 {
		go func() {
			for i := range 20 {
				want := fmt.Sprintf("G%d-%d", g, i)
				resp, err := cl.Call(ctx, []byte(fmt.Sprintf("g%d-%d", g, i)))
				if err == nil && string(resp) != want {
					err = fmt.Errorf("got %q, want %q", resp, want)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 16 {
		require.NoError(t, <-errs)
	}
}

func TestStreamOfResponsesCrossesHosts(t *testing.T) {
	th := newTwoHosts(t, []string{"count"}, []string{"count"}, nil)
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, th.a, "count", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	served := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() {
		for {
			q, err := srv.Recv(sctx)
			if err != nil {
				served <- nil
				return
			}
			n := int(q.Value[0])
			for i := range n {
				if err := q.Send(sctx, seqMsg(i, 2000*i)); err != nil {
					served <- err
					return
				}
			}
			q.Close()
		}
	}()
	defer func() { stop(); require.NoError(t, <-served) }()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "count") })
	cl, err := iox.OpenClient(ctx, th.b, "count", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	for _, n := range []int{1, 5, 40} {
		st, err := cl.Stream(ctx, []byte{byte(n)})
		require.NoError(t, err)
		i := 0
		for m := range st.In() {
			require.Equal(t, seqMsg(i, 2000*i), m)
			i++
		}
		require.NoError(t, st.Err())
		require.Equal(t, n, i)
	}
}

func TestEventsCrossAsEvents(t *testing.T) {
	th := newTwoHosts(t, []string{"bell"}, []string{"bell"}, nil)
	ctx := ctxT(t)
	evB, err := iox.OpenEvents(ctx, th.b, "bell")
	require.NoError(t, err)
	defer evB.Close()
	evA, err := iox.OpenEvents(ctx, th.a, "bell")
	require.NoError(t, err)
	defer evA.Close()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "bell") })
	eventually(t, "the export on A", func() bool { return th.logA.has("start", "export", "bell") })
	// Events cross at most once (NATS core): until both bridges' subscriptions
	// are in place at the server, a signal may be lost, so each id is
	// signalled again until it arrives.
	var failure error // checked on the test's goroutine
	for _, id := range []iox.EventID{3, 7, 1} {
		eventually(t, fmt.Sprintf("id %d on B", id), func() bool {
			if _, err := evA.Notify(id); err != nil {
				failure = err
				return true
			}
			for {
				rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				got, err := evB.Recv(rctx)
				cancel()
				switch {
				case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
					return false // lost before the subscriptions were in place
				case err != nil:
					failure = err
					return true
				case got == id:
					return true
				case got != 3 && got != 7 && got != 1:
					failure = fmt.Errorf("id %d, which nobody signalled", got)
					return true
				}
			}
		})
		require.NoError(t, failure)
	}
}

// A call's answer and the end of its stream, there together on the serving
// side, cross as one NATS message: the answer's frame carries Iox-End.
func TestAnAnswerCarriesTheEndOfItsCall(t *testing.T) {
	th := newTwoHosts(t, []string{"echo"}, []string{"echo"}, nil)
	ctx := ctxT(t)
	serve(t, th.a, "echo", 1, echo)
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "echo") })
	// What comes back to the importing bridge's inboxes.
	var back, merged atomic.Int64
	watch := connect(t, th.url)
	_, err := watch.Subscribe("_INBOX.>", func(m *nats.Msg) {
		back.Add(1)
		if m.Header.Get("Iox-End") == "ok" && m.Header.Get("Iox-Id") != "" {
			merged.Add(1)
		}
	})
	require.NoError(t, err)
	require.NoError(t, watch.Flush())
	cl, err := iox.OpenClient(ctx, th.b, "echo", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	const n = 50
	for i := range n {
		resp, err := cl.Call(ctx, []byte(fmt.Sprintf("hello %d", i)))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("hello %d", i), string(resp))
	}
	// Every call's answer came back with its end, or before it.
	eventually(t, "every answer seen", func() bool { return back.Load()+merged.Load() >= 2*n })
	t.Logf("%d calls came back in %d NATS messages", n, back.Load())
	require.Positive(t, merged.Load(), "no answer carried its call's end")
	require.Less(t, back.Load(), int64(2*n))
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}
