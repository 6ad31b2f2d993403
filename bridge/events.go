package bridge

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/iox-go/iox"
)

// Events across hosts: each event id a local notifier signals on an exported
// event service is sent (8 bytes, little endian) and signalled again on the
// importing side, so listeners there wake as they would locally.

const eventType = "event"

func (b *Bridge) exportEvents(ctx context.Context, r *route) (func() error, error) {
	ev, err := iox.OpenEvents(ctx, b.cfg.Node, r.name)
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Notifiers: 1, Listeners: 1})
	subject := Subject(b.cfg.Subject, kindEvent, r.name)
	return func() error {
		defer ev.Close()
		for {
			id, err := ev.Recv(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, iox.ErrClosed) {
					return ctx.Err()
				}
				return err
			}
			m := b.fr.frames(subject, eventType, binary.LittleEndian.AppendUint64(nil, uint64(id)))[0]
			if err := b.cfg.Conn.PublishMsg(m); err != nil && ctx.Err() == nil {
				b.report(r, natsError("relay", r.name, err))
			}
		}
	}, nil
}

func (b *Bridge) importEvents(ctx context.Context, r *route) (func() error, error) {
	ev, err := iox.OpenEvents(ctx, b.cfg.Node, r.name)
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Notifiers: 1, Listeners: 1})
	asm := &assembler{name: r.name, typ: eventType, max: 8}
	sub, err := b.cfg.Conn.Subscribe(Subject(b.cfg.Subject, kindEvent, r.name), func(m *nats.Msg) {
		if m.Header.Get(hOrigin) == b.origin {
			return
		}
		data, ok, err := asm.add(m)
		if err == nil && ok && len(data) != 8 {
			err = &iox.Error{Op: "bridge receive", Name: r.name, Kind: iox.ErrProtocol, Detail: "an event id is 8 bytes"}
		}
		if err != nil {
			b.report(r, err)
			return
		}
		if ok {
			if _, err := ev.Notify(iox.EventID(binary.LittleEndian.Uint64(data))); err != nil && ctx.Err() == nil {
				b.report(r, err)
			}
		}
	})
	if err != nil {
		ev.Close()
		return nil, natsError("import", r.name, err)
	}
	return func() error {
		<-ctx.Done()
		sub.Unsubscribe()
		ev.Close()
		return nil
	}, nil
}
