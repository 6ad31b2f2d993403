package iox_test

// Adversarial tests of wake-ups and endings: Close racing Send and Recv,
// contexts that end while a message is being taken, and goroutines that park
// with nobody left to wake them. Each one sets up a defect's exact
// circumstances (with test hooks where a window is too narrow to hit by
// chance) and asserts what the documentation promises.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A message a puller's Recv returned is "not sent again" (Push's doc). A
// puller that closes while one of its receives has taken a message and not
// yet counted it as handed over must therefore either count it before it
// says bye (and the receive returns it), or not return it (and the pushers
// give it to another puller): never both.
func TestAdvWakersPullCloseWhileHandingOver(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	pullA, err := iox.OpenPull(ctx, node, "handover", iox.BufferSize(4))
	require.NoError(t, err)
	push, err := iox.OpenPush(ctx, node, "handover", iox.WithLinger(2*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { push.Close() })
	eventually(t, "the pusher knows the puller", func() bool { return push.Pullers() == 1 })
	require.NoError(t, push.Send(ctx, []byte("m1"))) // into A's queue: the only puller
	pullB, err := iox.OpenPull(ctx, node, "handover", iox.BufferSize(4))
	require.NoError(t, err)
	t.Cleanup(func() { pullB.Close() })
	eventually(t, "the pusher knows both pullers", func() bool { return push.Pullers() == 2 })

	closed := make(chan error, 1)
	var once sync.Once
	iox.SetPullBeforeHandOver(func() {
		once.Do(func() {
			go func() { closed <- pullA.Close() }()
			// Close goes as far as it can while this receive holds the
			// message: the pushers let A go (and give its messages to
			// others), or Close waits for this receive.
			waitUntil(20*time.Second, func() bool {
				return push.Resent() > 0 || goroutinesIn("iox.(*Pull[...]).quiesce", true) > 0
			})
		})
	})
	t.Cleanup(func() { iox.SetPullBeforeHandOver(nil) })

	m, rerr := pullA.Recv(ctx)
	require.NoError(t, <-closed)
	delivered := 0
	if rerr == nil {
		require.Equal(t, "m1", string(m))
		delivered++
	} else {
		require.ErrorIs(t, rerr, iox.ErrClosed)
	}
	if push.Resent() > 0 {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		m, err := pullB.Recv(rctx)
		cancel()
		require.NoError(t, err, "the pusher gave A's message to B")
		require.Equal(t, "m1", string(m))
		delivered++
	}
	require.Equal(t, 1, delivered, "m1 reached the pullers' users this many times (A's Recv returned it: %v)", rerr == nil)
}

// Close returns nil "only when pullers took every message this pusher sent",
// and a Send that returns nil accepted its message. A Send that found the
// pusher open just before Close ended it must not be accepted after Close
// counted what was left: then Close would report success for a message that
// no puller will ever get.
func TestAdvWakersPushCloseRacingSend(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	pull, err := iox.OpenPull(ctx, node, "racesend", iox.BufferSize(4))
	require.NoError(t, err)
	t.Cleanup(func() { pull.Close() })
	push, err := iox.OpenPush(ctx, node, "racesend", iox.WithLinger(20*time.Second))
	require.NoError(t, err)
	eventually(t, "the pusher knows the puller", func() bool { return push.Pullers() == 1 })

	closed := make(chan error, 1)
	closeDone := make(chan struct{})
	var once sync.Once
	iox.SetPushBeforeQueue(func() {
		once.Do(func() {
			go func() {
				closed <- push.Close()
				close(closeDone)
			}()
			// Close goes as far as it can while this Send holds its
			// message: it returns, or it waits for this Send.
			waitUntil(20*time.Second, func() bool {
				select {
				case <-closeDone:
					return true
				default:
				}
				return goroutinesIn("iox.(*Push[...]).quiesce", true) > 0
			})
		})
	})
	t.Cleanup(func() { iox.SetPushBeforeQueue(nil) })

	serr := push.Send(ctx, []byte("m1"))
	received := make(chan []byte, 1)
	go func() {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m, _ := pull.Recv(rctx)
		received <- m
	}()
	cerr := <-closed
	m := <-received
	if serr == nil && cerr == nil {
		require.Equal(t, "m1", string(m), "Send and Close both returned nil, yet the puller never got the message")
	}
	if serr != nil {
		require.ErrorIs(t, serr, iox.ErrClosed)
	}
}

// raceEnds is one channel's sending and receiving ends, for the tests that
// race Close against Send.
type raceEnds struct {
	send      func(context.Context, []byte) error
	closeSend func() error
	recv      func(context.Context) ([]byte, error)
	closeRecv func() error
}

// openRaceEnds opens the ends of kind ("pair", "pubsub", "pipeline") named
// name, on two nodes of ns, with small queues so that Sends wait for room.
func openRaceEnds(t *testing.T, ns namespace, kind, name string) raceEnds {
	ctx := context.Background()
	a, b := ns.node(t), ns.node(t)
	linger := iox.WithLinger(20 * time.Second)
	switch kind {
	case "pair":
		s, err := iox.OpenPair(ctx, a, name, iox.BufferSize(2), iox.WithChanCap(2), linger)
		require.NoError(t, err)
		r, err := iox.OpenPair(ctx, b, name, iox.BufferSize(2), linger)
		require.NoError(t, err)
		eventually(t, "the pair connects", func() bool { return s.Connected() && r.Connected() })
		return raceEnds{s.Send, s.Close, r.Recv, r.Close}
	case "pubsub":
		s, err := iox.OpenPub(ctx, a, name, iox.BufferSize(2), iox.WithChanCap(2), linger)
		require.NoError(t, err)
		r, err := iox.OpenSub(ctx, b, name, iox.BufferSize(2))
		require.NoError(t, err)
		eventually(t, "the subscriber is known", func() bool { return s.Subscribers() == 1 })
		return raceEnds{s.Send, s.Close, r.Recv, r.Close}
	case "pipeline":
		r, err := iox.OpenPull(ctx, b, name, iox.BufferSize(2))
		require.NoError(t, err)
		s, err := iox.OpenPush(ctx, a, name, iox.WithChanCap(2), linger)
		require.NoError(t, err)
		eventually(t, "the pusher knows the puller", func() bool { return s.Pullers() == 1 })
		return raceEnds{s.Send, s.Close, r.Recv, r.Close}
	}
	t.Fatalf("unknown kind %s", kind)
	return raceEnds{}
}

// Close racing Sends from several goroutines: every Send that returned nil
// reaches the receiver exactly once when Close returned nil, Close returns nil
// or an error matching ErrUndelivered, Sends after it return ErrClosed, and
// nothing hangs.
func TestAdvWakersCloseRacesSends(t *testing.T) {
	rounds := loops(5, 3, 40)
	for _, kind := range []string{"pair", "pubsub", "pipeline"} {
		t.Run(kind, func(t *testing.T) {
			for round := range rounds {
				ns := newNamespace(t)
				ends := openRaceEnds(t, ns, kind, "race")
				ctx := context.Background()

				var mu sync.Mutex
				accepted := map[string]bool{}
				received := map[string]int{}
				recvDone := make(chan struct{})
				go func() {
					defer close(recvDone)
					for {
						m, err := ends.recv(ctx)
						if err != nil {
							return
						}
						mu.Lock()
						received[string(m)]++
						mu.Unlock()
					}
				}()
				var senders sync.WaitGroup
				for g := range 4 {
					senders.Add(1)
					go func() {
						defer senders.Done()
						for i := 0; ; i++ {
							m := []byte(fmt.Sprintf("%d-%d", g, i))
							err := ends.send(ctx, m)
							if err != nil {
								if !errors.Is(err, iox.ErrClosed) {
									t.Errorf("send after or during Close: %v", err)
								}
								return
							}
							mu.Lock()
							accepted[string(m)] = true
							mu.Unlock()
						}
					}()
				}
				eventually(t, "some sends were accepted", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(accepted) > 8*(round+1)
				})
				var cerr error
				within(t, 30*time.Second, "Close racing Sends", func() {
					cerr = ends.closeSend()
					senders.Wait()
				})
				if cerr != nil {
					require.ErrorIs(t, cerr, iox.ErrUndelivered)
				} else {
					missing := func() []string {
						mu.Lock()
						defer mu.Unlock()
						var out []string
						for m := range accepted {
							if received[m] == 0 {
								out = append(out, m)
							}
						}
						return out
					}
					if !waitUntil(20*time.Second, func() bool { return len(missing()) == 0 }) {
						t.Fatalf("round %d: Close returned nil, yet %d accepted messages never arrived: %v", round, len(missing()), missing())
					}
				}
				within(t, 30*time.Second, "closing the receiver", func() {
					ends.closeRecv()
					<-recvDone
				})
				mu.Lock()
				for m, n := range received {
					require.Equal(t, 1, n, "round %d: %s arrived %d times", round, m, n)
					require.True(t, accepted[m], "round %d: %s arrived but its Send did not return nil", round, m)
				}
				mu.Unlock()
			}
		})
	}
}

// A puller closing while several goroutines receive on it, with a second
// puller open: every message the pusher accepted reaches exactly one
// puller's user (the pusher's Close returns nil: the pullers took all), none
// twice, whichever receive the closing puller was in.
func TestAdvWakersPullCloseRacesRecvs(t *testing.T) {
	rounds := loops(5, 3, 40)
	for round := range rounds {
		ns := newNamespace(t)
		ctx := context.Background()
		a, b, c := ns.node(t), ns.node(t), ns.node(t)
		pullA, err := iox.OpenPull(ctx, a, "recvs", iox.BufferSize(2))
		require.NoError(t, err)
		pullB, err := iox.OpenPull(ctx, b, "recvs", iox.BufferSize(2))
		require.NoError(t, err)
		push, err := iox.OpenPush(ctx, c, "recvs", iox.WithChanCap(4), iox.WithLinger(20*time.Second))
		require.NoError(t, err)
		eventually(t, "the pusher knows both pullers", func() bool { return push.Pullers() == 2 })

		var mu sync.Mutex
		received := map[string]int{}
		gotA := 0
		var recvs sync.WaitGroup
		for _, p := range []*iox.Pull[[]byte]{pullA, pullA, pullA, pullB, pullB} {
			recvs.Add(1)
			go func() {
				defer recvs.Done()
				for {
					m, err := p.Recv(ctx)
					if err != nil {
						return
					}
					mu.Lock()
					received[string(m)]++
					if p == pullA {
						gotA++
					}
					mu.Unlock()
				}
			}()
		}
		const total = 400
		sent := make(chan error, 1)
		go func() {
			for i := range total {
				if err := push.Send(ctx, []byte(fmt.Sprint(i))); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		// The pusher shares the messages out as the pullers make room: A may
		// get few of them, or none before B took all.
		eventually(t, "puller A received some, or the pullers all", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return gotA > round%4 || len(received) == total
		})
		within(t, 30*time.Second, "closing puller A while it receives", func() {
			require.NoError(t, pullA.Close())
		})
		require.NoError(t, <-sent)
		within(t, 30*time.Second, "closing the pusher", func() {
			require.NoError(t, push.Close(), "the pusher's Close: puller B took everything")
		})
		within(t, 30*time.Second, "closing puller B", func() {
			require.NoError(t, pullB.Close())
			recvs.Wait()
		})
		mu.Lock()
		for i := range total {
			require.Equal(t, 1, received[fmt.Sprint(i)], "round %d: message %d reached the pullers' users this many times", round, i)
		}
		mu.Unlock()
	}
}

// A pusher whose Send waits for credit while its only puller holds a full
// queue: the puller's process is killed, and a new puller comes. Nothing may
// be left waiting: the blocked Send returns, and the new puller gets every
// message (the killed puller's queue given back, ahead of the pusher's own),
// each once.
func TestAdvWakersPusherWaitingForCreditOutlivesItsPuller(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	push, err := iox.OpenPush(ctx, node, "credit", iox.WithChanCap(1), iox.WithLinger(20*time.Second))
	require.NoError(t, err)
	doomed := spawn(t, ns, "pipe-pull", "IOX_SERVICE=credit", "IOX_BUFFER=1", "IOX_GATE=1")
	doomed.expect("ready") // it takes nothing until told to
	eventually(t, "the pusher knows the puller", func() bool { return push.Pullers() == 1 })
	require.NoError(t, push.Send(ctx, seqMsg(0))) // into the puller's queue
	require.NoError(t, push.Send(ctx, seqMsg(1))) // into the pusher's queue
	blocked := make(chan error, 1)
	go func() { blocked <- push.Send(ctx, seqMsg(2)) }()
	waitParked(t, "iox.(*Push[...]).Send", 1)

	doomed.kill()
	eventually(t, "the pusher lets the killed puller go", func() bool { return push.Pullers() == 0 })
	require.Equal(t, uint64(1), push.Resent(), "the killed puller's queue is given back")
	pull, err := iox.OpenPull(ctx, node, "credit", iox.BufferSize(1))
	require.NoError(t, err)
	var got []uint64
	within(t, 20*time.Second, "the new puller receiving everything", func() {
		for range 3 {
			m, err := pull.Recv(ctx)
			if err != nil {
				t.Errorf("recv: %v", err)
				return
			}
			got = append(got, binary.LittleEndian.Uint64(m))
		}
	})
	require.Equal(t, []uint64{0, 1, 2}, got)
	require.NoError(t, <-blocked)
	require.NoError(t, push.Close())
	require.NoError(t, pull.Close())
	node.CleanupDeadNodes() // the killed puller's services
}

// Close racing Calls from several goroutines, on the client or on the
// server: every Call returns its own request's answer or a typed error,
// nothing panics, and nothing is left waiting (closing the client ends the
// Calls that wait for a server that is gone).
func TestAdvWakersCloseRacesCalls(t *testing.T) {
	rounds := loops(4, 2, 30)
	for _, which := range []string{"client", "server"} {
		t.Run(which, func(t *testing.T) {
			for round := range rounds {
				ns := newNamespace(t)
				ctx := context.Background()
				srv, err := iox.OpenServer(ctx, ns.node(t), "calls", iox.Raw{}, iox.Raw{})
				require.NoError(t, err)
				served := make(chan error, 1)
				go func() {
					served <- srv.Serve(ctx, 3, func(_ context.Context, req []byte) ([]byte, error) {
						return append([]byte("re:"), req...), nil
					})
				}()
				cl, err := iox.OpenClient(ctx, ns.node(t), "calls", iox.Raw{}, iox.Raw{})
				require.NoError(t, err)

				var mu sync.Mutex
				answered := 0
				var callers sync.WaitGroup
				for g := range 6 {
					callers.Add(1)
					go func() {
						defer callers.Done()
						for i := 0; ; i++ {
							req := fmt.Sprintf("%d-%d", g, i)
							resp, err := cl.Call(ctx, []byte(req))
							if err != nil {
								var e *iox.Error
								if !errors.As(err, &e) || e.Kind == nil {
									t.Errorf("round %d: call %s: untyped error %v", round, req, err)
								}
								return
							}
							if string(resp) != "re:"+req {
								t.Errorf("round %d: call %s answered %q", round, req, resp)
								return
							}
							mu.Lock()
							answered++
							mu.Unlock()
						}
					}()
				}
				eventually(t, "some calls were answered", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return answered > 4*(round+1)
				})
				within(t, 30*time.Second, "Close racing Calls", func() {
					if which == "server" {
						require.NoError(t, srv.Close())
						require.ErrorIs(t, <-served, iox.ErrClosed)
					}
					require.NoError(t, cl.Close())
					callers.Wait()
					if which == "client" {
						require.NoError(t, srv.Close())
						require.ErrorIs(t, <-served, iox.ErrClosed)
					}
				})
			}
		})
	}
}

// Receives whose contexts end at every moment of the taking (deadlines of a
// few microseconds, while messages arrive): a receive that returns the
// context's error takes nothing, so every message arrives once, in order,
// whichever receive finally gets it.
func TestAdvWakersRecvContextEndsAsMessagesArrive(t *testing.T) {
	n := loops(3000, 1000, 30000)
	for _, kind := range []string{"pair", "pubsub", "pipeline"} {
		t.Run(kind, func(t *testing.T) {
			ns := newNamespace(t)
			ends := openRaceEnds(t, ns, kind, "ctxends")
			ctx := context.Background()
			rng := seeded(t)
			sent := make(chan error, 1)
			go func() {
				for i := range n {
					if err := ends.send(ctx, seqMsg(uint64(i))); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			ended := 0
			within(t, 60*time.Second, "receiving everything", func() {
				for want := uint64(0); want < uint64(n); {
					rctx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(30000)))
					m, err := ends.recv(rctx)
					cancel()
					if errors.Is(err, context.DeadlineExceeded) {
						ended++
						continue
					}
					if err != nil {
						t.Errorf("recv %d: %v", want, err)
						return
					}
					if got := binary.LittleEndian.Uint64(m); got != want {
						t.Errorf("got message %d, want %d", got, want)
						return
					}
					want++
				}
			})
			require.NoError(t, <-sent)
			t.Logf("%d receives ended by their context", ended)
			require.Positive(t, ended, "some receives' contexts ended")
			require.NoError(t, ends.closeSend())
			require.NoError(t, ends.closeRecv())
		})
	}
}

// A publisher's queue waits for subscribers (WaitSubscribers) while Peers'
// goroutine also follows them: both wait for the subscriber's hello, and
// the one that hears it must not keep it from the other. The message goes
// as soon as the subscriber comes, not after the safety net's look (a
// quarter of the peer timeout: here 150 s, far beyond the test's bound).
func TestAdvWakersPublisherWaitingForSubscribersWithPeers(t *testing.T) {
	for round := range loops(6, 4, 20) {
		ns := newNamespace(t)
		ctx := context.Background()
		pub, err := iox.OpenPub(ctx, ns.node(t), "hello", iox.WaitSubscribers(1), iox.WithPeerTimeout(10*time.Minute))
		require.NoError(t, err)
		peers := pub.Peers() // its goroutine waits for subscribers coming and going
		require.NoError(t, pub.Send(ctx, []byte("first")), "queued until a subscriber comes")
		waitParked(t, "iox.(*Pub[...]).awaitRoom", 1)
		sub, err := iox.OpenSub(ctx, ns.node(t), "hello")
		require.NoError(t, err)
		within(t, 20*time.Second, fmt.Sprintf("round %d: the queued message reaching the subscriber that came", round), func() {
			m, err := sub.Recv(ctx)
			require.NoError(t, err)
			require.Equal(t, "first", string(m))
		})
		e := nextPeerEvent(t, peers, iox.PeerJoined)
		require.NotZero(t, e.Port.Port)
		require.NoError(t, pub.Close())
		require.NoError(t, sub.Close())
	}
}

func init() { children["wakers-pull-die"] = childWakersPullDie }

// childWakersPullDie opens a puller of IOX_SERVICE that kills its own process
// right after it claimed a waiting pusher's mark, before it wakes the pusher.
// It says "ready", receives when the parent says "take", and dies in the
// first count that a pusher waits for.
func childWakersPullDie() error {
	iox.DieAfterClaim()
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	p, err := iox.OpenPull(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(4))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	if l := parentSays(); l != "take" {
		return fmt.Errorf("parent said %q, want take", l)
	}
	for {
		if _, err := p.Recv(ctx); err != nil {
			return err
		}
	}
}

// A pusher's Close waits for its puller to take the last message; the puller
// takes it, claims the pusher's mark and is killed before it wakes the
// pusher. Its death is seen at once (pidfd), and with it that the message was
// taken: Close returns nil then, not after the linger time or the safety
// net's look (a quarter of the peer timeout).
func TestAdvWakersPusherCloseSeesPullerKilledAfterItsCount(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	push, err := iox.OpenPush(ctx, node, "diecount", iox.WithLinger(time.Minute), iox.WithPeerTimeout(4*time.Minute))
	require.NoError(t, err)
	c := spawn(t, ns, "wakers-pull-die", "IOX_SERVICE=diecount")
	c.expect("ready")
	eventually(t, "the pusher knows the puller", func() bool { return push.Pullers() == 1 })
	require.NoError(t, push.Send(ctx, []byte("last")))
	closed := make(chan error, 1)
	go func() { closed <- push.Close() }()
	eventually(t, "the pusher waits to hear from the puller", push.TallyMarked)
	c.say("take")
	select {
	case err := <-c.done: // killed itself after its claim
		c.done <- err // for the harness's cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the puller did not die after its claim")
	}
	within(t, 20*time.Second, "the pusher's Close after its puller died", func() {
		require.NoError(t, <-closed, "the puller took the message before it died")
	})
	node.CleanupDeadNodes() // the killed puller's services
}

// A large message's Send waits for room straight from the caller's buffer;
// the peer's process is killed. The death is seen at once (pidfd) and ends
// the pair: the Send returns ErrPeerCrashed then, not after the safety net's
// look (a quarter of the peer timeout: here 150 s, beyond the test's bound).
func TestAdvWakersPairLargeSendEndsWhenThePeerIsKilled(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	c := spawn(t, ns, "adv-pair-exit", "IOX_SERVICE=largekill")
	c.expect("ready")
	p, err := iox.OpenPair(ctx, node, "largekill", iox.WithChanCap(2), iox.WithPeerTimeout(10*time.Minute))
	require.NoError(t, err)
	eventually(t, "the peer", p.Connected)
	done := make(chan error, 1)
	go func() {
		msg := make([]byte, 200<<10)
		for {
			if err := p.Send(ctx, msg); err != nil {
				done <- err
				return
			}
		}
	}()
	waitParked(t, "iox.(*sender[...]).send", 1)
	c.kill()
	select {
	case err := <-done:
		require.ErrorIs(t, err, iox.ErrPeerCrashed)
	case <-time.After(20 * time.Second):
		t.Fatal("the large Send still waits after the peer was killed")
	}
	p.Close()
}

// A puller's Close waits for its pusher to confirm that it let the puller go;
// the pusher cannot (its process is stopped) and is then killed. Close waits
// only for pushers that are alive: it returns once the death is seen, not
// after the linger time.
func TestAdvWakersPullCloseSeesItsPusherKilled(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	pull, err := iox.OpenPull(ctx, node, "pusherdies", iox.WithLinger(10*time.Minute))
	require.NoError(t, err)
	c := spawn(t, ns, "pipe-push", "IOX_SERVICE=pusherdies", "IOX_PULLERS=1", "IOX_COUNT=1")
	m, err := pull.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, seqMsg(0), m)
	c.expect("sent")
	c.stop() // it cannot confirm the puller's bye
	closed := make(chan error, 1)
	go func() { closed <- pull.Close() }()
	waitParked(t, "iox.(*Pull[...]).shutdown", 1)
	c.kill()
	within(t, 20*time.Second, "the puller's Close after its pusher died", func() {
		if err := <-closed; err != nil {
			t.Errorf("Close: %v (the one message was taken)", err)
		}
	})
	node.CleanupDeadNodes() // the killed pusher's services
}

// TestAdvWakersLoanSendWaitsForRoom: a zero-copy send to a full subscriber
// waits in the hub (its safety net, a quarter of the peer timeout, ends the
// wait again and again) rather than looking again at once in a loop:
// subscriber news that came before the send found no room does not cut its
// wait short (the loan path did not record when it found none, so every wait
// returned at once: a busy loop, which the fan-out benchmark showed as 53
// allocations per message).
func TestAdvWakersLoanSendWaitsForRoom(t *testing.T) {
	const n = 64
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	pub, err := iox.OpenPub(ctx, node, "loan-wait", iox.WithPeerTimeout(40*time.Millisecond))
	require.NoError(t, err)
	defer pub.Close()
	sub, err := iox.OpenSub(ctx, node, "loan-wait", iox.BufferSize(1), iox.WithChanCap(1))
	require.NoError(t, err)
	defer sub.Close()
	waitSubscribers(t, pub, 1)
	send := func(i uint64) error {
		l, err := pub.Loan(ctx, 8)
		if err == nil {
			copy(l.Bytes(), seqMsg(i))
			err = pub.SendLoan(ctx, l)
		}
		return err
	}
	// Once the subscriber took one, its word tells the publisher its room,
	// and the loans that follow go in place (or wait for room).
	require.NoError(t, send(0))
	m, err := sub.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, seqMsg(0), m)
	sent := make(chan error, 1)
	go func() {
		for i := uint64(1); i < n; i++ {
			if err := send(i); err != nil {
				sent <- fmt.Errorf("message %d: %w", i, err)
				return
			}
		}
		sent <- nil
	}()
	eventually(t, "the send's wait for room to end in the hub three times", func() bool {
		_, waited := pub.RoomWaits()
		return waited >= 3
	})
	rushed, _ := pub.RoomWaits()
	require.LessOrEqual(t, rushed, uint64(8), "waits for room that returned at once")
	for i := uint64(1); i < n; i++ {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(i), m)
	}
	require.NoError(t, <-sent)
}
