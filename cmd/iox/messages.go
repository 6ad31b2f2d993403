package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/iox-go/iox"
)

// sub and pub join a publish-subscribe service the way its messages need: an
// iox lossless channel (its messages carry iox's header) through the lossless
// channel adapters, any other service, iox's lossy channels and services of
// programs in other languages alike, through the lossy ones. Messages travel
// as they are, with the service's own payload type.

var subCommand = command{
	name:    "sub",
	args:    []string{"NAME"},
	summary: "print the messages of a publish-subscribe service",
	about: `Print the messages published on the service NAME from now on (and its
history), one per line, until interrupted or until -n messages. An iox
lossless channel is joined as a lossless subscriber (its publishers wait for
this one); any other service as a lossy one.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		format := fs.String("format", "text", "how to print a message: text, hex or len")
		count := fs.Int("n", 0, "stop after `N` messages (0: until interrupted)")
		asJSON := fs.Bool("json", false, `print JSON lines: {"len": bytes, "text"|"hex": message}`)
		return func(e *env, args []string) error {
			print, err := printer(*format, *asJSON)
			if err != nil {
				return err
			}
			if *count < 0 {
				return usagef("-n %d: the count must not be negative", *count)
			}
			return subscribe(e, *ns, args[0], *count, print)
		}
	},
}

var pubCommand = command{
	name:    "pub",
	args:    []string{"NAME"},
	summary: "publish each line of standard input as one message",
	about: `Publish each line of standard input, without its newline, as one message on
the existing publish-subscribe service NAME. On an iox lossless channel the
messages wait for a subscriber, and the command ends once the subscribers
confirmed that they took every message (it fails when they did not within
-linger, also when it is interrupted). On any other service subscribers that are not there miss the
messages, and the command stays -linger after the last one while there are
subscribers: iceoryx2 drops what a publisher sent to a subscriber that did not
look for messages before the publisher closed.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		linger := fs.Duration("linger", time.Second, "how long to wait at the end for subscribers to take the messages")
		return func(e *env, args []string) error {
			if *linger < 0 {
				return usagef("-linger %v: the time must not be negative", *linger)
			}
			return publish(e, *ns, args[0], *linger)
		}
	},
}

// printer returns the function that prints one message in format.
func printer(format string, asJSON bool) (func(io.Writer, []byte) error, error) {
	var text func([]byte) (key, value string)
	switch format {
	case "text":
		text = func(m []byte) (string, string) { return "text", string(m) }
	case "hex":
		text = func(m []byte) (string, string) { return "hex", hex.EncodeToString(m) }
	case "len":
	default:
		return nil, usagef("-format %q: use text, hex or len", format)
	}
	if asJSON {
		return func(w io.Writer, m []byte) error {
			line := map[string]any{"len": len(m)}
			if text != nil {
				k, v := text(m)
				line[k] = v
			}
			b, err := json.Marshal(line)
			if err != nil {
				return err
			}
			_, err = w.Write(append(b, '\n'))
			return err
		}, nil
	}
	return func(w io.Writer, m []byte) error {
		var line []byte
		if text == nil {
			line = strconv.AppendInt(nil, int64(len(m)), 10)
		} else {
			_, v := text(m)
			line = []byte(v)
		}
		_, err := w.Write(append(line, '\n'))
		return err
	}, nil
}

// bytesOf carries messages as they are, declaring the service's payload type.
type bytesOf struct {
	iox.Raw
	pt iox.PayloadType
}

func (c bytesOf) PayloadType() iox.PayloadType { return c.pt }

// joinOptions returns the codec and options that join the existing
// publish-subscribe service name, and whether it is an iox lossless channel.
func joinOptions(node *iox.Node, ns namespace, name string) (codec bytesOf, opts []iox.Option, lossless bool, err error) {
	s, err := node.PubSubSettings(name)
	if err != nil {
		return bytesOf{}, nil, false, ns.notFound(err, "publish-subscribe", name)
	}
	if !s.Lossless() {
		opts = append(opts, iox.Lossy())
	}
	return bytesOf{pt: s.Payload}, opts, s.Lossless(), nil
}

func subscribe(e *env, ns namespace, name string, count int, print func(io.Writer, []byte) error) error {
	node, err := ns.node()
	if err != nil {
		return err
	}
	defer node.Close()
	codec, opts, _, err := joinOptions(node, ns, name)
	if err != nil {
		return err
	}
	sub, err := iox.OpenSubOf[[]byte](context.Background(), node, name, codec, opts...)
	if err != nil {
		return err
	}
	defer sub.Close()
	for got := 0; count == 0 || got < count; {
		msg, err := sub.Recv(e.ctx)
		if e.ctx.Err() != nil {
			return nil // interrupted: a clean end
		}
		if err != nil {
			if sub.Err() != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "iox sub: a message was dropped: %v\n", err)
			continue
		}
		if err := print(e.stdout, msg); err != nil {
			return err
		}
		got++
	}
	return nil
}

func publish(e *env, ns namespace, name string, linger time.Duration) error {
	node, err := ns.node()
	if err != nil {
		return err
	}
	defer node.Close()
	codec, opts, lossless, err := joinOptions(node, ns, name)
	if err != nil {
		return err
	}
	opts = append(opts, iox.WithLinger(linger))
	if lossless { // the messages wait for a subscriber, as -h says
		opts = append(opts, iox.WaitSubscribers(1))
	}
	pub, err := iox.OpenPubOf[[]byte](context.Background(), node, name, codec, opts...)
	if err != nil {
		return err
	}
	// Lines are read in the background, so that an interrupt ends the
	// command while standard input is quiet.
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReader(e.stdin)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				lines <- bytes.TrimSuffix(line, []byte("\n"))
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readErr <- err
				close(lines)
				return
			}
		}
	}()
	for {
		select {
		case <-e.ctx.Done():
			// Interrupted: what was sent must still have been taken.
			return pub.Close()
		case line, ok := <-lines:
			if !ok {
				if err := <-readErr; err != nil {
					pub.Close()
					return fmt.Errorf("read standard input: %w", err)
				}
				if !lossless && pub.Subscribers() > 0 {
					select {
					case <-time.After(linger):
					case <-e.ctx.Done():
					}
				}
				return pub.Close()
			}
			if err := pub.Send(e.ctx, line); err != nil {
				cerr := pub.Close()
				if e.ctx.Err() != nil {
					return cerr // interrupted: the line it held was not sent
				}
				return err
			}
		}
	}
}
