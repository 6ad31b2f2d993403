package iox_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// pySettingsPeer starts the Python peer that creates services with settings
// other than the defaults (peer.py settings) and returns a function that lets it
// close them and waits for it to exit.
func pySettingsPeer(t *testing.T, ns namespace, name string) (done func()) {
	t.Helper()
	script := sourcePath("internal", "pypeer", "peer.py")
	cmd, stdin, sc := startPython(t, exec.Command(python(t), script, "settings", name, ns.prefix, ns.root))
	require.True(t, sc.Scan(), "python peer exited early")
	require.Equal(t, "ready", sc.Text())
	return func() {
		stdin.Close()
		require.NoError(t, waitTimeout(cmd, 20*time.Second))
	}
}

func TestSettingsOfServicesAnotherProgramMade(t *testing.T) {
	ns := newNamespace(t)
	peerDone := pySettingsPeer(t, ns, "foreign")
	node := ns.node(t)

	point := iox.PayloadType{Name: "iox_test::Point", Size: 16, Align: 8, Fixed: true}
	noHeader := iox.PayloadType{Name: "()", Size: 0, Align: 1, Fixed: true}
	want := iox.PubSubSettings{
		MaxPublishers: 3, MaxSubscribers: 5, MaxNodes: 7, BufferSize: 6, History: 4, MaxBorrowed: 3,
		SafeOverflow: false, Payload: point, UserHeader: noHeader,
	}
	svc, err := node.PublishSubscribe("foreign", iox.OpenOnly(), iox.WithPayloadType(point))
	require.NoError(t, err)
	assert.Equal(t, want, svc.Settings(), "the settings of a joined service")
	assert.Equal(t, 6, svc.BufferSize())
	assert.Equal(t, 4, svc.HistorySize())
	assert.Equal(t, 5, svc.MaxSubscribers())
	assert.False(t, svc.SafeOverflow())
	got, err := node.PubSubSettings("foreign")
	require.NoError(t, err)
	assert.Equal(t, want, got, "the same settings without joining")

	// A user header iox does not carry: its settings can still be read, and
	// joining it is refused with the types it has.
	stamp := iox.PayloadType{Name: "iox_test::Stamp", Size: 16, Align: 8, Fixed: true}
	got, err = node.PubSubSettings("foreign-header")
	require.NoError(t, err)
	assert.Equal(t, iox.PubSubSettings{MaxPublishers: 2, MaxSubscribers: 8, MaxNodes: 20, BufferSize: 2, History: 0,
		MaxBorrowed: 2, SafeOverflow: true, Payload: iox.Bytes, UserHeader: stamp}, got, "iceoryx2's defaults, a Stamp header")
	_, err = node.PublishSubscribe("foreign-header", iox.OpenOnly())
	require.ErrorIs(t, err, iox.ErrIncompatibleType)
	assert.Contains(t, err.Error(), `user header one "iox_test::Stamp" (size 16, alignment 8)`)

	ev, err := node.Event("foreign", iox.OpenOnly())
	require.NoError(t, err)
	wantEv := iox.EventSettings{
		MaxNotifiers: 3, MaxListeners: 5, MaxNodes: 6, MaxEventID: 77,
		NotifierCreatedEvent: iox.OptionalEventID{ID: 1, Set: true},
		NotifierDroppedEvent: iox.OptionalEventID{ID: 2, Set: true},
		NotifierDeadEvent:    iox.OptionalEventID{ID: 3, Set: true},
		Deadline:             2500 * time.Millisecond,
	}
	assert.Equal(t, wantEv, ev.Settings(), "the settings of a joined event service")
	assert.Equal(t, iox.EventID(77), ev.MaxEventID())
	gotEv, err := node.EventSettings("foreign")
	require.NoError(t, err)
	assert.Equal(t, wantEv, gotEv, "the same settings without joining")

	require.NoError(t, svc.Close())
	require.NoError(t, ev.Close())
	peerDone()
	_, err = node.PubSubSettings("foreign")
	assert.ErrorIs(t, err, iox.ErrServiceNotFound, "the services went with their creator")
	_, err = node.EventSettings("foreign")
	assert.ErrorIs(t, err, iox.ErrServiceNotFound)
}

func TestSettingsOfAServiceThisProcessMade(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("own", iox.BufferSize(9), iox.History(3), iox.MaxPublishers(4),
		iox.MaxSubscribers(6), iox.MaxNodes(11), iox.MaxBorrowed(5), iox.SafeOverflow(false))
	require.NoError(t, err)
	defer svc.Close()
	assert.Equal(t, iox.PubSubSettings{MaxPublishers: 4, MaxSubscribers: 6, MaxNodes: 11, BufferSize: 9, History: 3,
		MaxBorrowed: 5, Payload: iox.Bytes, UserHeader: iox.PayloadType{Name: "()", Align: 1, Fixed: true}}, svc.Settings())

	ev, err := node.Event("own", iox.MaxNotifiers(2), iox.MaxListeners(3), iox.MaxEventID(9), iox.NotifierDeadEvent(4))
	require.NoError(t, err)
	defer ev.Close()
	s := ev.Settings()
	assert.Equal(t, iox.EventSettings{MaxNotifiers: 2, MaxListeners: 3, MaxNodes: s.MaxNodes, MaxEventID: 9,
		NotifierDeadEvent: iox.OptionalEventID{ID: 4, Set: true}}, s)
	assert.Positive(t, s.MaxNodes)

	_, err = node.PubSubSettings("absent")
	assert.ErrorIs(t, err, iox.ErrServiceNotFound)
	_, err = node.EventSettings("")
	assert.ErrorIs(t, err, iox.ErrInvalidName)
}
