package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"

	"github.com/iox-go/iox"
)

var listenCommand = command{
	name:    "listen",
	args:    []string{"NAME"},
	summary: "print the event ids signalled on an event service",
	about: `Print the ids of the events signalled on the existing event service NAME,
one per line, until interrupted or until -n ids. Notifications of one id that
arrive before it is printed count once.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		count := fs.Int("n", 0, "stop after `N` ids (0: until interrupted)")
		asJSON := fs.Bool("json", false, `print JSON lines: {"id": N}`)
		return func(e *env, args []string) error {
			if *count < 0 {
				return usagef("-n %d: the count must not be negative", *count)
			}
			return listen(e, *ns, args[0], *count, *asJSON)
		}
	},
}

var notifyCommand = command{
	name:    "notify",
	args:    []string{"NAME", "ID"},
	summary: "signal an event id on an event service",
	about:   `Signal the event id ID (a number up to the service's largest id) to every listener of the existing event service NAME.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		return func(e *env, args []string) error {
			id, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				if n, e := strconv.ParseInt(args[1], 10, 64); e == nil && n < 0 {
					return usagef("event id %s is negative: ids are 0 up to the service's largest", args[1])
				}
				return usagef("event id %q is not a number", args[1])
			}
			return notify(*ns, args[0], iox.EventID(id))
		}
	},
}

// eventService opens the existing event service name.
func eventService(node *iox.Node, ns namespace, name string) (*iox.EventService, error) {
	svc, err := node.Event(name, iox.OpenOnly())
	if err != nil {
		return nil, ns.notFound(err, "event", name)
	}
	return svc, nil
}

func listen(e *env, ns namespace, name string, count int, asJSON bool) error {
	node, err := ns.node()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := eventService(node, ns, name)
	if err != nil {
		return err
	}
	defer svc.Close()
	lis, err := svc.Listener()
	if err != nil {
		return err
	}
	defer lis.Close()
	for got := 0; count == 0 || got < count; {
		ids, err := lis.Wait(e.ctx)
		if e.ctx.Err() != nil {
			return nil // interrupted: a clean end
		}
		if err != nil {
			return err
		}
		for _, id := range ids {
			if count > 0 && got == count {
				break
			}
			var line []byte
			if asJSON {
				line, _ = json.Marshal(struct {
					ID uint64 `json:"id"`
				}{uint64(id)})
			} else {
				line = strconv.AppendUint(nil, uint64(id), 10)
			}
			if _, err := e.stdout.Write(append(line, '\n')); err != nil {
				return err
			}
			got++
		}
	}
	return nil
}

func notify(ns namespace, name string, id iox.EventID) error {
	node, err := ns.node()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := eventService(node, ns, name)
	if err != nil {
		return err
	}
	defer svc.Close()
	if id > svc.MaxEventID() {
		return fmt.Errorf("event id %d is over the largest id of %q, %d", id, name, svc.MaxEventID())
	}
	ntf, err := svc.Notifier()
	if err != nil {
		return err
	}
	defer ntf.Close()
	_, err = ntf.Notify(id)
	return err
}
