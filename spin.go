package iox

import (
	"runtime"
	"time"
)

// A receiver spins (polls shared memory) before it parks in the poller, because
// a cross-process wake-up costs 10-15µs on these machines while a message that
// arrives during the spin costs nothing extra. Spinning only pays while the peer
// answers quickly and a core is free, so the default budget adapts:
//
//   - after a park, the time the receiver waited says whether a spin would have
//     caught the message: a wait shorter than spinMax sets the budget to twice
//     that wait, a longer one halves the budget (down to zero: park at once);
//   - a spin iteration that took longer than spinPreempted means the thread was
//     descheduled, i.e. the CPUs are busy: spinning stops for spinQuiet.
//
// WithSpin(d) replaces this with a fixed budget.
const (
	spinAdaptive  time.Duration = -1
	spinMax                     = 50 * time.Microsecond
	spinPreempted               = 20 * time.Microsecond
	spinQuiet                   = 100 * time.Millisecond
)

var spinEpoch = time.Now()

func nanotime() time.Duration { return time.Since(spinEpoch) }

type spinner struct {
	fixed  time.Duration // WithSpin, or spinAdaptive
	budget time.Duration
	quiet  time.Duration // no spinning before this time (CPU pressure)
	start  time.Duration // when the current wait began
}

func newSpinner(cfg time.Duration) spinner { return spinner{fixed: cfg} }

// spin polls until poll reports something, the budget is spent or done is
// closed; it reports whether poll found something.
func (s *spinner) spin(poll func() bool, done <-chan struct{}) bool {
	now := nanotime()
	s.start = now
	budget := s.fixed
	if budget == spinAdaptive {
		budget = s.budget
		if now < s.quiet || runtime.GOMAXPROCS(0) < 2 {
			budget = 0
		}
	}
	if budget <= 0 {
		return false
	}
	deadline, last := now+budget, now
	for {
		if poll() {
			if s.fixed == spinAdaptive {
				s.budget = min(spinMax, max(s.budget, 2*(nanotime()-s.start)))
			}
			return true
		}
		now = nanotime()
		if s.fixed == spinAdaptive && now-last > spinPreempted {
			s.quiet, s.budget = now+spinQuiet, 0
			return false
		}
		if now >= deadline || isDone(done) {
			return false
		}
		last = now
		runtime.Gosched()
	}
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
