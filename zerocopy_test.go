package iox_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["zc-pair-views"] = childZCPairViews
}

// zcFill writes message i of n bytes: its number, then a pattern of it.
func zcFill(b []byte, i int) {
	for k := range b {
		b[k] = byte(k*13 + i)
	}
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, uint64(i))
	}
}

func zcCheck(b []byte, i, n int) error {
	if len(b) != n {
		return fmt.Errorf("message %d has %d bytes, want %d", i, len(b), n)
	}
	want := make([]byte, n)
	zcFill(want, i)
	if string(b) != string(want) {
		return fmt.Errorf("message %d arrived damaged or out of order", i)
	}
	return nil
}

// childZCPairViews receives IOX_COUNT messages of IOX_SIZE bytes on the pair
// IOX_SERVICE with RecvView, holding up to IOX_HOLD views at once, checks each
// and says "got N" at the end.
func childZCPairViews() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	count, size, hold := envInt("IOX_COUNT"), envInt("IOX_SIZE"), max(envInt("IOX_HOLD"), 1)
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	var held []*iox.View
	for i := 0; i < count; i++ {
		v, err := p.RecvView(ctx)
		if err != nil {
			return fmt.Errorf("view %d: %w", i, err)
		}
		if err := zcCheck(v.Bytes(), i, size); err != nil {
			return err
		}
		held = append(held, v)
		if len(held) == hold {
			for _, v := range held {
				v.Release()
			}
			held = held[:0]
		}
	}
	for _, v := range held {
		v.Release()
	}
	fmt.Println("got", count)
	parentSays()
	return nil
}

// TestZeroCopyPairAcrossProcesses: loans written in place and sent without a
// copy arrive in order and intact as views, for small and large messages, with
// the receiver holding several views at once; Close confirms them all.
func TestZeroCopyPairAcrossProcesses(t *testing.T) {
	for _, tc := range []struct{ size, count, hold int }{{64, 2000, 1}, {4 << 10, 1000, 3}, {1 << 20, 60, 2}} {
		t.Run(strconv.Itoa(tc.size), func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			name := fmt.Sprintf("zc-%d", tc.size)
			p, err := iox.OpenPair(ctx, node, name)
			require.NoError(t, err)
			c := spawn(t, ns, "zc-pair-views", "IOX_SERVICE="+name, fmt.Sprintf("IOX_COUNT=%d", tc.count),
				fmt.Sprintf("IOX_SIZE=%d", tc.size), fmt.Sprintf("IOX_HOLD=%d", tc.hold))
			c.expect("ready")
			for i := 0; i < tc.count; i++ {
				l, err := p.Loan(ctx, tc.size)
				require.NoError(t, err)
				zcFill(l.Bytes(), i)
				require.NoError(t, p.SendLoan(ctx, l), "message %d", i)
				require.Nil(t, l.Bytes(), "a sent loan no longer reaches the memory")
			}
			c.expect(fmt.Sprintf("got %d", tc.count))
			require.NoError(t, p.Close())
			c.wait()
		})
	}
}
