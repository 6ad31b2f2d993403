package bridge

import (
	"fmt"
	"path"
	"strings"

	"github.com/iox-go/iox"
)

// Subjects. A service called NAME crosses on the NATS subject
//
//	ROOT.KIND.TOKEN
//
// ROOT is Config.Subject ("iox" unless set), KIND says how it crosses and
// TOKEN is NAME escaped into one NATS token:
//
//	ps   a lossy publish-subscribe service (NATS core)
//	ll   a lossless iox channel (JetStream stream ROOT_LOSSLESS, see Config)
//	ev   an event service; the payload is the event id, 8 bytes little endian
//	rpc  a request-response service (request/reply, queue group ROOT.rpc.TOKEN)
//	pr   a pair (ROOT.pr.TOKEN.a and .b, one per direction, in the same stream)
//	ann  announcements of what bridges export (JSON, see announcement)
//
// ROOT.disc asks every bridge to announce again; a bridge answers requests
// on ROOT.name.NAME (its Config.Name, escaped), so that a second bridge of
// its name is refused. Escaping: letters, digits and
// "-_/+=:,@" stay; every other byte, including NATS's reserved ".", "*", ">",
// whitespace and "~" itself, becomes "~" and two lower-case hex digits, so
// "sensors/imu.left" is "sensors/imu~2eleft" and the mapping is reversible.
//
// The payload type travels in every message's Iox-Type header (TypeString)
// and in the announcements; a bridge refuses a message whose type is not the
// one of the service it relays, as a local service refuses a port of another
// type (ErrIncompatibleType).

// Subject kinds.
const (
	kindLossy    = "ps"
	kindLossless = "ll"
	kindEvent    = "ev"
	kindRPC      = "rpc"
	kindAnnounce = "ann"
	kindDiscover = "disc"
	kindName     = "name"
)

// EscapeName returns the one-token form of a service name used in subjects.
func EscapeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_/+=:,@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "~%02x", c)
	}
	return b.String()
}

// UnescapeName reverses EscapeName; a token that EscapeName cannot have made
// is an ErrInvalidName.
func UnescapeName(tok string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != '~' {
			if EscapeName(string(c)) != string(c) {
				return "", &iox.Error{Op: "unescape subject token", Name: tok, Kind: iox.ErrInvalidName, Detail: fmt.Sprintf("byte %q is not allowed", c)}
			}
			b.WriteByte(c)
			continue
		}
		var v byte
		if i+2 >= len(tok) || !isHex(tok[i+1]) || !isHex(tok[i+2]) {
			return "", &iox.Error{Op: "unescape subject token", Name: tok, Kind: iox.ErrInvalidName, Detail: "~ must be followed by two lower-case hex digits"}
		}
		fmt.Sscanf(tok[i+1:i+3], "%02x", &v)
		b.WriteByte(v)
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// Subject returns the subject on which the service name crosses as kind
// ("ps", "ll", "ev" or "rpc") under root.
func Subject(root, kind, name string) string { return root + "." + kind + "." + EscapeName(name) }

// TypeString is the form of a payload type in the Iox-Type header and in
// announcements: NAME/SIZE/ALIGN, with "/fixed" for one value per message.
func TypeString(t iox.PayloadType) string {
	s := fmt.Sprintf("%s/%d/%d", t.Name, t.Size, t.Align)
	if t.Fixed {
		s += "/fixed"
	}
	return s
}

// badType is the error of a payload type that TypeString cannot have made
// (announced by a forger, or by a bridge of another version).
func badType(s string) error {
	return &iox.Error{Op: "parse payload type", Name: s, Kind: iox.ErrProtocol, Detail: "want NAME/SIZE/ALIGN"}
}

// parseType reverses TypeString.
func parseType(s string) (iox.PayloadType, error) {
	var t iox.PayloadType
	rest := s
	if r, ok := strings.CutSuffix(rest, "/fixed"); ok {
		t.Fixed, rest = true, r
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return t, badType(s)
	}
	j := strings.LastIndexByte(rest[:i], '/')
	if j <= 0 {
		return t, badType(s)
	}
	t.Name = rest[:j]
	if _, err := fmt.Sscanf(rest[j+1:], "%d/%d", &t.Size, &t.Align); err != nil || t.Size < 0 || t.Align <= 0 {
		return t, badType(s)
	}
	return t, nil
}

// match reports whether name matches one of the patterns. Patterns are
// path.Match globs over service names ("sensors/*" matches "sensors/imu" but
// not "sensors/imu/raw"; "*" does not cross "/"); the pattern "**" matches
// every name, and a pattern ending in "/**" every name below its folder.
func match(patterns []string, name string) bool {
	for _, p := range patterns {
		if p == "**" {
			return true
		}
		if dir, ok := strings.CutSuffix(p, "/**"); ok {
			for i := len(name) - 1; i > 0; i-- {
				if name[i] == '/' {
					if ok, _ := path.Match(dir, name[:i]); ok {
						return true
					}
				}
			}
			continue
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// checkPatterns refuses patterns path.Match cannot use.
func checkPatterns(what string, patterns []string) error {
	for _, p := range patterns {
		q := strings.TrimSuffix(p, "/**")
		if p == "**" {
			continue
		}
		if _, err := path.Match(q, ""); err != nil || p == "" {
			return &iox.Error{Op: "bridge " + what, Name: p, Kind: iox.ErrInvalidArgument, Detail: "not a glob pattern (path.Match syntax)"}
		}
	}
	return nil
}
