package wire

// Edge cases of the codec, one bound or rule each.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestHeaderHugeBody checks that a header claiming a 4 GiB body is
// malformed, for every type.
func TestHeaderHugeBody(t *testing.T) {
	for _, typ := range fzKinds {
		b := rawHeader(Version, typ, 0, 1, 0xffffffff)
		if _, err := ParseHeader(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseHeader of a type %d header claiming 4 GiB: %v", typ, err)
		}
		if _, _, err := DecodeFrame(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("decodeFrame of a type %d header claiming 4 GiB: %v", typ, err)
		}
	}

}

// TestHeaderBounds checks that the body length and descriptor count are
// bounded by MaxBody and MaxFds, inclusive.
func TestHeaderBounds(t *testing.T) {
	for _, tc := range []struct {
		b  []byte
		ok bool
	}{
		{rawHeader(Version, TypeAssign, 0, 1, MaxBody), true},
		{rawHeader(Version, TypeAssign, 0, 1, MaxBody+1), false},
		{rawHeader(Version, TypeFork, MaxFds, 1, 0), true},
		{rawHeader(Version, TypeFork, MaxFds+1, 1, 0), false},
		{rawHeader(Version, TypeFork, 0xffff, 1, 0), false},
		{rawHeader(Version, TypeStop, 0, 1, 0)[:HeaderSize-1], false},
		{nil, false},
	} {
		_, err := ParseHeader(tc.b)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrMalformed) {
			t.Errorf("parseHeader(%x) = %v, want ok=%v", tc.b, err, tc.ok)
		}
	}
}

// TestHeaderUnknownVersion checks that a frame of another version is
// malformed.
func TestHeaderUnknownVersion(t *testing.T) {
	for _, v := range []byte{0, Version + 1, 0x80, 0xff} {
		b := rawHeader(v, TypeStop, 0, 1, 0)
		if _, err := ParseHeader(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseHeader with version %d: %v", v, err)
		}
		if _, _, err := DecodeFrame(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("decodeFrame with version %d: %v", v, err)
		}
	}
}

// TestHeaderUnknownType checks that every type byte but the known ones is
// malformed.
func TestHeaderUnknownType(t *testing.T) {
	known := map[Type]bool{}
	for _, k := range fzKinds {
		known[k] = true
	}
	for i := range 256 {
		typ := Type(i)
		_, err := ParseHeader(rawHeader(Version, typ, 0, 1, 0))
		if known[typ] {
			if err != nil {
				t.Errorf("parseHeader rejects type %d: %v", typ, err)
			}
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("parseHeader with unknown type %d: %v", typ, err)
		}
		if m, err := DecodeBody(typ, nil); !errors.Is(err, ErrMalformed) || m != nil {
			t.Errorf("decodeBody with unknown type %d: %v, %v", typ, m, err)
		}
	}
}

// TestDecodeTrailingBytes checks that a byte after a body, or after a
// frame, is malformed.
func TestDecodeTrailingBytes(t *testing.T) {
	for _, s := range fzSeeds() {
		body := append(s.msg.appendBody(nil), 0)
		if _, err := DecodeBody(s.msg.Type(), body); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s with a trailing byte: decodeBody: %v", s.name, err)
		}
		frame := fzRawFrame(s.msg.Type(), uint16(s.msg.NumFds()), body)
		if _, _, err := DecodeFrame(frame); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s with a trailing byte: decodeFrame: %v", s.name, err)
		}
		// A frame whose header counts the body right but has more bytes after it.
		frame = append(AppendFrame(nil, s.id, s.msg), 0)
		if _, _, err := DecodeFrame(frame); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s followed by a byte: decodeFrame: %v", s.name, err)
		}
	}
}

// TestDecodeUnknownFlags checks that a Fork or Assign accepts its own flag
// bits and no other.
func TestDecodeUnknownFlags(t *testing.T) {
	for bit := range 32 {
		f := uint32(1) << bit
		fork := (&Fork{Flags: f, Name: "f"}).appendBody(nil)
		_, err := DecodeBody(TypeFork, fork)
		if f&forkFlags != 0 {
			if err != nil {
				t.Errorf("fork with flag %#x: %v", f, err)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("fork with unknown flag %#x: %v", f, err)
		}
		assign := (&Assign{Flags: f, ServerPid: 1, Name: "f"}).appendBody(nil)
		_, err = DecodeBody(TypeAssign, assign)
		if f&assignFlags != 0 {
			if err != nil {
				t.Errorf("assign with flag %#x: %v", f, err)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("assign with unknown flag %#x: %v", f, err)
		}
	}
}

// fzWithName returns a message of type t carrying name and arg.
func fzWithName(t Type, name string, arg []byte) Message {
	switch t {
	case TypeFork:
		return &Fork{Name: name, Arg: arg}
	case TypeEval:
		return &Eval{Name: name, Arg: arg}
	case TypeAssign:
		return &Assign{ServerPid: 1, Name: name, Arg: arg}
	}
	panic("no name in this type")
}

// TestDecodeNameLength checks that a name is 1 to MaxName bytes.
func TestDecodeNameLength(t *testing.T) {
	for _, typ := range []Type{TypeFork, TypeEval, TypeAssign} {
		for _, n := range []int{0, 1, MaxName, MaxName + 1, 0xffff} {
			m := fzWithName(typ, strings.Repeat("n", n), nil)
			_, err := DecodeBody(typ, m.appendBody(nil))
			if n >= 1 && n <= MaxName {
				if err != nil {
					t.Errorf("type %d with a name of %d bytes: %v", typ, n, err)
				}
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("type %d with a name of %d bytes: %v", typ, n, err)
			}
		}
	}
}

// TestDecodeArgLength checks that an argument is at most MaxArg bytes, that
// its length prefix is checked before anything is allocated, and that the
// largest assignment fits in MaxBody.
func TestDecodeArgLength(t *testing.T) {
	for _, typ := range []Type{TypeFork, TypeEval, TypeAssign} {
		for _, n := range []int{0, MaxArg, MaxArg + 1} {
			m := fzWithName(typ, "f", make([]byte, n))
			body := m.appendBody(nil)
			_, err := DecodeBody(typ, body)
			if n <= MaxArg {
				if err != nil {
					t.Errorf("type %d with an argument of %d bytes: %v", typ, n, err)
				}
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("type %d with an argument of %d bytes: %v", typ, n, err)
			}
			_, _, err = DecodeFrame(fzRawFrame(typ, 0, body))
			if n <= MaxArg {
				if err != nil {
					t.Errorf("frame of type %d with an argument of %d bytes: %v", typ, n, err)
				}
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("frame of type %d with an argument of %d bytes: %v", typ, n, err)
			}
		}
		// A length prefix of 4 GiB - 1 with nothing after it.
		body := appendString(nil, "f")
		if typ == TypeFork || typ == TypeAssign {
			body = (fzWithName(typ, "f", nil)).appendBody(nil)
			body = body[:len(body)-4]
		}
		body = binary.LittleEndian.AppendUint32(body, 0xffffffff)
		if _, err := DecodeBody(typ, body); !errors.Is(err, ErrMalformed) {
			t.Errorf("type %d with an argument claiming 4 GiB: %v", typ, err)
		}
	}
	// An assignment with the longest name and argument fits.
	b := fzMaxAssign()
	if len(b) > HeaderSize+MaxBody {
		t.Errorf("largest assignment is %d bytes, maxBody is %d", len(b)-HeaderSize, MaxBody)
	}
	if _, _, err := DecodeFrame(b); err != nil {
		t.Errorf("largest assignment: %v", err)
	}
}

// TestDecodeOtherBounds checks that pids, signals, reply codes, texts,
// file counts and memory limits are bounded, and that every body cut
// short is malformed.
func TestDecodeOtherBounds(t *testing.T) {
	for _, tc := range []struct {
		what string
		m    Message
		ok   bool
	}{
		{"pid 0", &Signal{Pid: 0, Sig: 1}, false},
		{"pid 1<<30", &Signal{Pid: 1 << 30, Sig: 1}, true},
		{"pid 1<<30+1", &Signal{Pid: 1<<30 + 1, Sig: 1}, false},
		{"signal 64", &Signal{Pid: 1, Sig: MaxSignal}, true},
		{"signal 65", &Signal{Pid: 1, Sig: MaxSignal + 1}, false},
		{"kill-all signal 65", &KillAll{Sig: MaxSignal + 1}, false},
		{"hello pid 0", &Hello{}, false},
		{"exit pid 0", &Exit{}, false},
		{"assign server pid 0", &Assign{Name: "f"}, false},
		{"reply code numCodes-1", &Reply{Code: numCodes - 1}, true},
		{"reply code numCodes", &Reply{Code: numCodes}, false},
		{"reply text maxText", &Reply{Text: strings.Repeat("t", MaxText)}, true},
		{"reply text maxText+1", &Reply{Text: strings.Repeat("t", MaxText+1)}, false},
		{"fork nfiles MaxFiles", &Fork{NumFiles: MaxFiles, Name: "f"}, true},
		{"fork nfiles MaxFiles+1", &Fork{NumFiles: MaxFiles + 1, Name: "f"}, false},
		{"assign nfiles MaxFiles+1", &Assign{NumFiles: MaxFiles + 1, ServerPid: 1, Name: "f"}, false},
		{"memory limit MaxMemoryLimit", &Fork{Flags: FlagSettings, Name: "f", Settings: Settings{MemoryLimit: MaxMemoryLimit}}, true},
		{"memory limit MaxMemoryLimit+1", &Fork{Flags: FlagSettings, Name: "f", Settings: Settings{MemoryLimit: MaxMemoryLimit + 1}}, false},
	} {
		_, err := DecodeBody(tc.m.Type(), tc.m.appendBody(nil))
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ok=%v", tc.what, err, tc.ok)
		}
	}
	// Every body cut short is rejected.
	for _, s := range fzSeeds() {
		body := s.msg.appendBody(nil)
		for n := range len(body) {
			if _, err := DecodeBody(s.msg.Type(), body[:n]); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s cut to %d of %d bytes: %v", s.name, n, len(body), err)
			}
		}
	}
}

// TestFrameNfdsMismatch checks that a header must count exactly the
// descriptors its body calls for.
func TestFrameNfdsMismatch(t *testing.T) {
	for _, s := range fzSeeds() {
		b := AppendFrame(nil, s.id, s.msg)
		need := uint16(s.msg.NumFds())
		for _, n := range []uint16{need - 1, need + 1, MaxFds} {
			if n == need || n > MaxFds { // need-1 wraps for 0
				continue
			}
			binary.LittleEndian.PutUint16(b[2:], n)
			if _, _, err := DecodeFrame(b); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s (%d descriptors) with %d in its header: %v", s.name, need, n, err)
			}
		}
	}
	// The flag for the server's connection carries no descriptor in a fork
	// request, but does in an assignment; only a fork request carries an
	// exit pipe; a socket sent ahead is no descriptor of the assignment.
	fork := &Fork{Flags: forkFlags, NumFiles: 2, Name: "f"}
	assign := &Assign{Flags: assignFlags &^ FlagSocket, NumFiles: 2, ServerPid: 1, Name: "f"}
	if fork.NumFds() != 5+2 || assign.NumFds() != 4+2 || (&Socket{}).NumFds() != 1 {
		t.Errorf("fork needs %d descriptors, assign %d", fork.NumFds(), assign.NumFds())
	}
}

// TestAssignSocketTwice checks that an assignment may not carry a socket
// and also say that one came ahead.
func TestAssignSocketTwice(t *testing.T) {
	for _, flags := range []uint32{FlagSocket, FlagSocketAhead, FlagSocket | FlagSocketAhead} {
		body := (&Assign{Flags: flags, ServerPid: 1, Name: "f"}).appendBody(nil)
		_, err := DecodeBody(TypeAssign, body)
		if both := flags == FlagSocket|FlagSocketAhead; both != errors.Is(err, ErrMalformed) || !both && err != nil {
			t.Errorf("assignment with flags %#x: %v", flags, err)
		}
	}
}

// TestFrameCorpusFiles checks that testdata/fuzz/FuzzDecodeFrame holds
// exactly the frames of fzSeeds, one file each.
func TestFrameCorpusFiles(t *testing.T) {
	for _, s := range fzSeeds() {
		path := filepath.Join("testdata", "fuzz", "FuzzDecodeFrame", s.name)
		got, err := fzReadCorpusFile(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if want := AppendFrame(nil, s.id, s.msg); !bytes.Equal(got, want) {
			t.Errorf("%s holds\n%x\nwant\n%x", path, got, want)
		}
	}
}

// fzReadCorpusFile reads a "go test fuzz v1" file holding one []byte.
func fzReadCorpusFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("not a corpus file of one value: %q", lines)
	}
	q, ok := strings.CutPrefix(lines[1], "[]byte(")
	if q, ok = strings.CutSuffix(q, ")"); !ok {
		return nil, fmt.Errorf("not a []byte: %q", lines[1])
	}
	s, err := strconv.Unquote(q)
	return []byte(s), err
}
