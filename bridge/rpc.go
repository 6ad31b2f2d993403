package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iox-go/iox"
)

// Calls across hosts. The bridge on the server's host holds a client of the
// local service and answers NATS requests on ROOT.rpc.TOKEN in the queue group
// of the same name (so several such bridges share the calls); the bridge on
// the caller's host holds a server of the local service and sends each request
// it receives with a reply inbox. Responses come back on the inbox in order,
// framed as messages are (so large responses are split and joined), and an
// Iox-End message ends the stream: "ok", or the error that ended it, which the
// caller's side turns into a request ended without an answer (ErrNoResponse
// for a Call that had none). A request must fit one NATS message.

// rpcConcurrency bounds the calls one export serves at once.
const rpcConcurrency = 256

// rpcLook is how often a waiting import checks that its caller is still there.
const rpcLook = 250 * time.Millisecond

func (b *Bridge) exportCalls(ctx context.Context, r *route) (func() error, error) {
	req, err := parseType(r.ann.Type)
	if err != nil {
		return nil, err
	}
	resp, err := parseType(r.ann.Resp)
	if err != nil {
		return nil, err
	}
	cl, err := iox.OpenClient[[]byte, []byte](ctx, b.cfg.Node, r.name, typed{req}, typed{resp}, iox.MaxMessageSize(b.cfg.MaxMessageSize))
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Clients: 1})
	subject := Subject(b.cfg.Subject, kindRPC, r.name)
	slots := make(chan struct{}, rpcConcurrency)
	calls := make(chan struct{}, rpcConcurrency) // counts calls in flight, for the end
	sub, err := b.cfg.Conn.QueueSubscribe(subject, subject, func(m *nats.Msg) {
		if m.Reply == "" || m.Header.Get(hOrigin) == b.origin {
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		calls <- struct{}{}
		go func() {
			defer func() { <-slots; <-calls }()
			b.serveCall(ctx, r, cl, m)
		}()
	})
	if err != nil {
		cl.Close()
		return nil, natsError("export", r.name, err)
	}
	return func() error {
		<-ctx.Done()
		sub.Unsubscribe()
		for range rpcConcurrency { // every call in flight ended
			calls <- struct{}{}
		}
		return cl.Close()
	}, nil
}

// serveCall makes one call on the local service and sends its responses to
// the NATS request's inbox.
func (b *Bridge) serveCall(ctx context.Context, r *route, cl *iox.Caller[[]byte, []byte], m *nats.Msg) {
	end := func(reason string) {
		e := nats.NewMsg(m.Reply)
		e.Header.Set(hOrigin, b.origin)
		e.Header.Set(hEnd, reason)
		b.cfg.Conn.PublishMsg(e)
	}
	asm := &assembler{name: r.name, typ: r.ann.Type, max: b.cfg.MaxMessageSize}
	req, ok, err := asm.add(m)
	if err != nil || !ok {
		if err == nil {
			err = &iox.Error{Op: "bridge call", Name: r.name, Kind: iox.ErrMessageTooLarge, Detail: "a request must fit one NATS message"}
		}
		b.report(r, err)
		end(err.Error())
		return
	}
	st, err := cl.Stream(ctx, req)
	if err != nil {
		end(err.Error())
		return
	}
	defer st.Close()
	for v := range st.In() {
		for _, f := range b.fr.frames(m.Reply, r.ann.Resp, v) {
			if err := b.cfg.Conn.PublishMsg(f); err != nil {
				b.report(r, natsError("relay response", r.name, err))
				return
			}
		}
	}
	if err := st.Err(); err != nil {
		end(err.Error())
		return
	}
	end("ok")
}

func (b *Bridge) importCalls(ctx context.Context, r *route) (func() error, error) {
	req, err := parseType(r.ann.Type)
	if err != nil {
		return nil, err
	}
	resp, err := parseType(r.ann.Resp)
	if err != nil {
		return nil, err
	}
	srv, err := iox.OpenServer[[]byte, []byte](ctx, b.cfg.Node, r.name, typed{req}, typed{resp}, iox.MaxMessageSize(b.cfg.MaxMessageSize))
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Servers: 1})
	return func() error {
		defer srv.Close()
		var calls sync.WaitGroup
		defer calls.Wait()
		for {
			q, err := srv.Recv(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, iox.ErrClosed) {
					return ctx.Err()
				}
				b.report(r, err) // one request could not be taken
				continue
			}
			calls.Go(func() { b.forwardCall(ctx, r, q) })
		}
	}, nil
}

// forwardCall sends one local request over NATS and relays the responses.
func (b *Bridge) forwardCall(ctx context.Context, r *route, q *iox.Request[[]byte, []byte]) {
	subject := Subject(b.cfg.Subject, kindRPC, r.name)
	frames := b.fr.frames(subject, r.ann.Type, q.Value)
	if len(frames) != 1 {
		b.report(r, &iox.Error{Op: "bridge call", Name: r.name, Kind: iox.ErrMessageTooLarge,
			Detail: fmt.Sprintf("a request of %d bytes; one NATS message takes %d", len(q.Value), b.fr.limit)})
		q.Close()
		return
	}
	inbox := b.cfg.Conn.NewRespInbox()
	sub, err := b.cfg.Conn.SubscribeSync(inbox)
	if err != nil {
		b.report(r, natsError("bridge call", r.name, err))
		q.Close()
		return
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, 4*b.cfg.MaxMessageSize)
	frames[0].Reply = inbox
	if err := b.cfg.Conn.PublishMsg(frames[0]); err != nil {
		b.report(r, natsError("bridge call", r.name, err))
		q.Close()
		return
	}
	asm := &assembler{name: r.name, typ: r.ann.Resp, max: b.cfg.MaxMessageSize}
	for {
		wctx, cancel := context.WithTimeout(ctx, rpcLook)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				q.Close()
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if !q.Connected() {
					q.Close() // the caller went away
					return
				}
				continue
			}
			b.report(r, natsError("bridge call", r.name, err))
			q.Close()
			return
		}
		if m.Header.Get("Status") == "503" { // no bridge serves it
			q.Close()
			return
		}
		if reason, ok := m.Header[hEnd]; ok {
			if len(reason) > 0 && reason[0] != "ok" && !strings.Contains(reason[0], "no response") {
				b.report(r, &iox.Error{Op: "bridge call", Name: r.name, Kind: iox.ErrNoResponse, Detail: "the serving side: " + reason[0]})
			}
			q.Close()
			return
		}
		v, ok, err := asm.add(m)
		if err != nil {
			b.report(r, err)
		}
		if !ok {
			continue
		}
		if err := q.Send(ctx, v); err != nil {
			if !errors.Is(err, iox.ErrPeerClosed) && ctx.Err() == nil {
				b.report(r, err)
			}
			q.Close()
			return
		}
	}
}
