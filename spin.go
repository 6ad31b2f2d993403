package iox

import (
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A receiver spins (polls shared memory) before it parks in the poller, because
// a cross-process wake-up costs 10-15µs on these machines while a message that
// arrives during the spin costs nothing extra. Spinning only pays while the peer
// answers quickly and a core is free, so the default budget adapts to what
// spinning achieved, as Go's mutex and Aeron's backoff idle strategy do:
//
//   - after a park, the time the receiver waited says whether a spin would have
//     caught the message: a wait shorter than spinMax sets the budget to twice
//     that wait, a longer one halves the budget (down to zero: park at once);
//   - a spin that used up its budget without a message did not pay: the next
//     wait parks at once, and after each further such spin twice as many waits
//     do (up to spinBackoffMax), until a spin pays again. On a busy machine,
//     where the peer cannot run while this receiver spins, spins keep failing
//     and the receiver ends up parking nearly always;
//   - a spin during which this thread lost the processor (a look that found
//     nothing took more than spinPreempted) failed the same way, even if a
//     message came: the machine has no core to spare, and the spinning thread
//     held up the one that had to answer, which a parked receiver would not
//     have done. The time other goroutines of the process run while the
//     spinner yields does not count.
//
// WithSpin(d) replaces this with a fixed budget.
//
// A subscriber that shares its publisher with other subscribers, or a puller
// that shares its pipeline with other pullers (crowd), also gives up the
// processor between looks (sched_yield): several receivers that spin for one
// sender on a machine whose cores they fill keep that sender from running,
// while a yield lets it (or a sibling with work) run at once. A lone receiver
// does not: there the yield would only hand its core to unrelated work and
// delay the answer it waits for.
const (
	spinAdaptive   time.Duration = -1 // no WithSpin
	spinRefused    time.Duration = -2 // WithSpin of a negative time
	spinMax                      = 100 * time.Microsecond
	spinBackoffMax               = 1024
	spinPreempted                = 250 * time.Microsecond
	crowdRecheck                 = time.Millisecond // how long a crowd's answer is kept
)

var spinEpoch = time.Now()

func nanotime() time.Duration { return time.Since(spinEpoch) }

// osYield gives the thread's processor to another runnable thread, if any.
func osYield() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

type spinner struct {
	fixed   time.Duration // WithSpin, or spinAdaptive
	budget  time.Duration
	skip    int           // waits left that park without spinning
	backoff int           // waits to skip after the next spin that fails
	start   time.Duration // when the current wait began

	crowd   func() bool   // whether other receivers wait for the same sender (nil: never)
	crowded bool          // crowd's last answer
	crowdAt time.Duration // when it was asked

	stats *spinStats // counted when set
}

// spinStats counts the looks of a receiver's spins that found nothing, and
// the yields after them (tests read them).
type spinStats struct{ looks, yields atomic.Uint64 }

func newSpinner(cfg time.Duration) spinner { return spinner{fixed: cfg, backoff: 1} }

// spin polls until poll reports something, the budget is spent, or done or
// stop (the wait's own context) is closed; it reports whether poll found
// something.
func (s *spinner) spin(poll func() bool, done, stop <-chan struct{}) bool {
	now := nanotime()
	s.start = now
	budget := s.fixed
	if budget == spinAdaptive {
		budget = s.budget
		if s.skip > 0 || runtime.GOMAXPROCS(0) < 2 {
			s.skip = max(s.skip-1, 0)
			return false
		}
	}
	if budget <= 0 {
		return false
	}
	deadline := now + budget
	preempted := false
	if s.crowd != nil && (s.crowdAt == 0 || now-s.crowdAt >= crowdRecheck) {
		s.crowded, s.crowdAt = s.crowd(), now
	}
	for {
		before := nanotime()
		if poll() {
			if s.fixed == spinAdaptive {
				if preempted {
					s.failed()
				} else {
					s.budget = min(spinMax, max(s.budget, 2*(nanotime()-s.start)))
					s.backoff = 1
				}
			}
			return true
		}
		now = nanotime()
		// A look that found nothing takes well under a microsecond; one that
		// took longer lost the processor to another thread on the way.
		preempted = preempted || now-before > spinPreempted
		if now >= deadline || isDone(done) || isDone(stop) || (preempted && s.fixed == spinAdaptive) {
			if s.fixed == spinAdaptive && (now >= deadline || preempted) {
				s.failed()
			}
			return false
		}
		runtime.Gosched() // other goroutines of this process run meanwhile: no loss
		if s.crowded {
			osYield()
		}
		if s.stats != nil {
			s.stats.looks.Add(1)
			if s.crowded {
				s.stats.yields.Add(1)
			}
		}
	}
}

// failed makes the next waits park without spinning, twice as many after
// each further spin that fails.
func (s *spinner) failed() {
	s.skip = s.backoff
	s.backoff = min(2*s.backoff, spinBackoffMax)
}

// parked tells the spinner that the wait which began with the last spin ended.
func (s *spinner) parked() {
	if s.fixed != spinAdaptive {
		return
	}
	waited := nanotime() - s.start
	if waited < spinMax {
		s.budget = min(spinMax, 2*waited)
	} else {
		s.budget /= 2
		if s.budget < time.Microsecond {
			s.budget = 0
		}
	}
}
