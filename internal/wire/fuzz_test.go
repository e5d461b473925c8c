package wire

// Fuzz targets of the codec: decoding never panics and never accepts what
// it should not, decode∘encode is the identity on the bytes of a valid
// frame, and encode∘decode on a valid message.
//
// The seeds every target starts from are fzSeeds: one valid frame of every
// message type. testdata/fuzz/FuzzDecodeFrame holds the same frames as
// corpus files; TestFrameCorpusFiles checks that the two agree.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fzSeed is one valid message, and the name of its corpus file.
type fzSeed struct {
	name string
	id   uint32
	msg  Message
}

// fzSeeds returns one valid example of every message type.
func fzSeeds() []fzSeed {
	return []fzSeed{
		{"fork", 1, &Fork{Flags: FlagSocket | FlagServer | FlagStdin, NumFiles: 2, Name: "worker", Arg: []byte(`{"n":1}`)}},
		{"signal", 2, &Signal{Pid: 4242, Sig: 15}},
		{"killall", 3, &KillAll{Sig: 9}},
		{"eval", 4, &Eval{Name: "sum", Arg: []byte{1, 2, 3}}},
		{"stop", 5, &Stop{}},
		{"detach", 6, &Detach{}},
		{"hello", 0, &Hello{Pid: 1000}},
		{"reply", 1, &Reply{Code: CodeErrno, Value: 2, Text: "open"}},
		{"exit", 1, &Exit{Pid: 4242, Status: 0x0f00, Rusage: [18]int64{
			0, 1500, 0, 300, 2048, 0, 0, 0, 120, 0, 0, 8, 0, 0, 0, 0, 3, 1,
		}}},
		{"assign", 0, &Assign{Flags: FlagSocket | FlagServer, NumFiles: 1, ServerPid: 1000, Name: "worker", Arg: []byte("x")}},
		{"exec", 7, &Exec{Flags: FlagSocket | FlagStdout, NumFiles: 1, Path: "/bin/cat", Argv: []string{"cat", "-u"}}},
		{"signalgroup", 8, &Signal{Pid: 4242, Sig: 15, Group: true}},
		{"killallgroup", 9, &KillAll{Sig: 9, Groups: true}},
		{"fork-settings", 10, &Fork{Flags: FlagSocket | FlagSettings, Name: "parse", Settings: Settings{
			Set: SetSetsid | SetCredential | SetNoNewPrivs, Dir: "/", Chroot: "/var/empty", ExtraEnv: []string{"LANG=C"},
			Uid: 65534, Gid: 65534, Namespaces: 1<<3 | 1<<0 /* NewNet | NewUser */, UidMaps: []IDMap{{0, 65534, 1}},
			Pdeathsig: 9, Rlimits: []Rlimit{{7, 16, 16}}, Rights: 1 /* RightFork */, Children: 4,
			MemoryLimit: 256 << 20,
		}}},
		{"fork-sandbox", 11, &Fork{Flags: FlagSocket | FlagSettings, Name: "parse", Settings: Settings{
			Set: SetNoNewPrivs, Syscalls: AllSyscallGroups,
			PathLayers: []PathLayer{{ReadOnly: []string{"/usr", "/etc/ssl"}}, {ReadWrite: []string{"/tmp/work"}}, {}},
		}}},
	}
}

// fzRawFrame is a frame of type t around body, with a correct length and
// the given descriptor count.
func fzRawFrame(t Type, nfds uint16, body []byte) []byte {
	return append(rawHeader(Version, t, nfds, 7, uint32(len(body))), body...)
}

// fzMaxAssign is an assignment with the longest name and the largest
// argument.
func fzMaxAssign() []byte {
	return AppendFrame(nil, 9, &Assign{
		Flags: assignFlags &^ FlagSocketAhead, NumFiles: 1, ServerPid: 1 << 30,
		Name: strings.Repeat("n", MaxName), Arg: bytes.Repeat([]byte{0xa5}, MaxArg),
	})
}

// fzEdgeFrames are malformed or borderline frames every frame target also
// starts from.
func fzEdgeFrames() [][]byte {
	stop := AppendFrame(nil, 5, &Stop{})
	return [][]byte{
		nil,
		stop[:HeaderSize-1],
		rawHeader(Version, TypeStop, 0, 1, 0xffffffff),                              // a 4 GiB body
		rawHeader(Version, TypeAssign, 0, 1, MaxBody+1),                             // just too large
		rawHeader(0, TypeStop, 0, 1, 0),                                             // unknown version
		rawHeader(Version, 7, 0, 1, 0),                                              // unknown type
		rawHeader(Version, TypeStop, MaxFds+1, 1, 0),                                // too many descriptors
		fzRawFrame(TypeStop, 0, []byte{0}),                                          // trailing byte
		fzRawFrame(TypeStop, 1, nil),                                                // descriptor where none belong
		fzRawFrame(TypeKillAll, 0, []byte{MaxSignal + 1, 0, 0, 0}),                  // bad signal
		fzRawFrame(TypeHello, 0, []byte{0, 0, 0, 0}),                                // pid 0
		fzRawFrame(TypeFork, 0, []byte{0x20, 0, 0, 0, 0, 0, 1, 0, 'f', 0, 0, 0, 0}), // unknown flag
		AppendFrame(nil, 8, &Reply{Code: CodeFailed, Text: strings.Repeat("e", MaxText)}),
		AppendFrame(nil, 8, &Eval{Name: "e"}), // empty argument
		append(append([]byte(nil), stop...), stop...),
		fzMaxAssign(),
	}
}

func fzAddFrames(f *testing.F) {
	for _, s := range fzSeeds() {
		f.Add(AppendFrame(nil, s.id, s.msg))
	}
	for _, b := range fzEdgeFrames() {
		f.Add(b)
	}
}

// fzCheckMalformed fails t unless err wraps ErrMalformed.
func fzCheckMalformed(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("%s: error %v does not wrap ErrMalformed", what, err)
	}
}

// rawHeader builds a frame header with any fields, valid or not.
func rawHeader(version byte, typ Type, nfds uint16, id, n uint32) []byte {
	b := []byte{version, byte(typ)}
	b = binary.LittleEndian.AppendUint16(b, nfds)
	b = binary.LittleEndian.AppendUint32(b, id)
	return binary.LittleEndian.AppendUint32(b, n)
}

// FuzzParseHeader checks that a header parses only within its bounds and
// re-encodes as the bytes it came from.
func FuzzParseHeader(f *testing.F) {
	fzAddFrames(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			fzCheckMalformed(t, "parseHeader", err)
			if h != (Header{}) {
				t.Fatalf("parseHeader failed but returned %+v", h)
			}
			return
		}
		if len(b) < HeaderSize {
			t.Fatalf("parseHeader accepted %d bytes", len(b))
		}
		if h.Len > MaxBody {
			t.Fatalf("body length %d exceeds %d", h.Len, MaxBody)
		}
		if h.NumFds > MaxFds {
			t.Fatalf("%d descriptors exceed %d", h.NumFds, MaxFds)
		}
		if newMessage(h.Type) == nil {
			t.Fatalf("accepted unknown type %d", h.Type)
		}
		if got := rawHeader(Version, h.Type, h.NumFds, h.ID, h.Len); !bytes.Equal(got, b[:HeaderSize]) {
			t.Fatalf("header %+v re-encodes as %x, input %x", h, got, b[:HeaderSize])
		}
		if h2, err := ParseHeader(b[:HeaderSize]); err != nil || h2 != h {
			t.Fatalf("parseHeader looks past the header: %+v, %v", h2, err)
		}
	})
}

// FuzzDecodeBody checks that a body decodes only if it re-encodes to the
// same bytes, and that a decoded message decodes again to itself.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range fzSeeds() {
		f.Add(byte(s.msg.Type()), AppendFrame(nil, s.id, s.msg)[HeaderSize:])
	}
	for _, b := range fzEdgeFrames() {
		if len(b) >= HeaderSize {
			f.Add(b[1], b[HeaderSize:])
		}
	}
	f.Add(byte(0), []byte(nil))
	f.Add(byte(255), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		m, err := DecodeBody(Type(typ), body)
		if err != nil {
			fzCheckMalformed(t, "decodeBody", err)
			if m != nil {
				t.Fatalf("decodeBody failed (%v) but returned %#v", err, m)
			}
			return
		}
		if m.Type() != Type(typ) {
			t.Fatalf("decoded a %d as a %d", typ, m.Type())
		}
		if n := m.NumFds(); n < 0 || n > MaxFds {
			t.Fatalf("%#v needs %d descriptors", m, n)
		}
		enc := m.appendBody(nil)
		if !bytes.Equal(enc, body) {
			t.Fatalf("%#v re-encodes as\n%x\ninput\n%x", m, enc, body)
		}
		m2, err := DecodeBody(Type(typ), enc)
		if err != nil {
			t.Fatalf("re-encoded body does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("decoding twice differs:\n%#v\n%#v", m, m2)
		}
	})
}

// FuzzDecodeFrame checks that a frame decodes only if its header and body
// agree and it re-encodes to the same bytes, after any prefix.
func FuzzDecodeFrame(f *testing.F) {
	fzAddFrames(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, m, err := DecodeFrame(b)
		if err != nil {
			fzCheckMalformed(t, "decodeFrame", err)
			return
		}
		if m.Type() != h.Type || m.NumFds() != int(h.NumFds) || int(h.Len) != len(b)-HeaderSize {
			t.Fatalf("decodeFrame disagrees with itself: header %+v, %#v (%d descriptors), %d bytes", h, m, m.NumFds(), len(b))
		}
		if enc := AppendFrame(nil, h.ID, m); !bytes.Equal(enc, b) {
			t.Fatalf("%#v re-encodes as\n%x\ninput\n%x", m, enc, b)
		}
		// appendFrame must also work after existing bytes.
		prefix := []byte("prefix")
		if enc := AppendFrame(prefix, h.ID, m); !bytes.Equal(enc[len(prefix):], b) || string(enc[:len(prefix)]) != "prefix" {
			t.Fatalf("appendFrame after a prefix gives %x", enc)
		}
	})
}

var fzKinds = []Type{TypeFork, TypeSignal, TypeKillAll, TypeEval, TypeStop, TypeDetach, TypeHello, TypeReply, TypeExit, TypeAssign, TypeExec, TypeSignalGroup, TypeKillAllGroup, TypeWarm, TypeTaken, TypeSocket}

func fzName(s string) string {
	if s == "" {
		return "f"
	}
	return s[:min(len(s), MaxName)]
}

func fzArg(p []byte) []byte {
	if len(p) == 0 {
		return nil // an empty argument decodes as nil
	}
	return p[:min(len(p), MaxArg)]
}

func fzPid(v uint32) uint32 { return v%(1<<30) + 1 }

// fzBuild makes a valid message of the kind picked by kind from the fuzzed
// fields a, b, c, s and p.
func fzBuild(kind byte, a, b uint32, c uint16, s string, p []byte) Message {
	switch fzKinds[int(kind)%len(fzKinds)] {
	case TypeFork:
		m := &Fork{Flags: a & forkFlags, NumFiles: c % (MaxFiles + 1), Name: fzName(s), Arg: fzArg(p)}
		m.Settings = fzSettings(m.Flags, b, s)
		return m
	case TypeSignal:
		return &Signal{Pid: fzPid(a), Sig: b % (MaxSignal + 1)}
	case TypeKillAll:
		return &KillAll{Sig: a % (MaxSignal + 1)}
	case TypeEval:
		return &Eval{Name: fzName(s), Arg: fzArg(p)}
	case TypeStop:
		return &Stop{}
	case TypeDetach:
		return &Detach{}
	case TypeHello:
		return &Hello{Pid: fzPid(a)}
	case TypeReply:
		return &Reply{Code: c % numCodes, Value: a, Text: s[:min(len(s), MaxText)]}
	case TypeExit:
		m := &Exit{Pid: fzPid(a), Status: b}
		var buf [8 * 18]byte
		copy(buf[:], p)
		for i := range m.Rusage {
			m.Rusage[i] = int64(binary.LittleEndian.Uint64(buf[8*i:]))
		}
		return m
	case TypeAssign:
		m := &Assign{Flags: a & assignFlags, NumFiles: c % (MaxFiles + 1), ServerPid: fzPid(b), Name: fzName(s), Arg: fzArg(p)}
		if m.Flags&FlagSocket != 0 {
			m.Flags &^= FlagSocketAhead // a socket comes one way or the other
		}
		m.Settings = fzSettings(m.Flags, b, s)
		return m
	case TypeExec:
		m := &Exec{Flags: a & execFlags, NumFiles: c % (MaxFiles + 1), Path: fzName(s), Argv: fzList(p)}
		m.Settings = fzSettings(m.Flags, b, s)
		return m
	case TypeSignalGroup:
		return &Signal{Pid: fzPid(a), Sig: b % (MaxSignal + 1), Group: true}
	case TypeKillAllGroup:
		return &KillAll{Sig: a % (MaxSignal + 1), Groups: true}
	case TypeWarm:
		return &Warm{Pid: fzPid(a), Sandbox: b % (MaxSandboxes + 1)}
	case TypeTaken:
		return &Taken{Pid: fzPid(a), Group: b&1 != 0}
	case TypeSocket:
		return &Socket{}
	}
	panic("unreachable")
}

// fzSettings makes valid settings from fuzzed fields, if flags calls for
// them.
func fzSettings(flags, b uint32, s string) Settings {
	if flags&FlagSettings == 0 {
		return Settings{}
	}
	st := Settings{
		Set: b & setAll, Dir: s[:min(len(s), MaxPath)], Chroot: s[:min(len(s), 3)],
		Uid: b, Gid: b >> 1, Namespaces: b & AllNamespaces, Pdeathsig: b % (MaxSignal + 1),
		Rights: b & AllRights,
	}
	if b&1 != 0 {
		st.Env = []string{s, "A=B"}
		st.Groups = []uint32{b, 0}
		st.UidMaps = []IDMap{{0, b, 1}}
		st.Rlimits = []Rlimit{{7, uint64(b), ^uint64(0)}}
	}
	if b&2 != 0 {
		st.ExtraEnv = []string{""}
		st.GidMaps = []IDMap{{b, 0, 65536}}
	}
	st.Syscalls = b >> 8 & AllSyscallGroups
	if b&4 != 0 {
		st.MemoryLimit = uint64(b) << 18 % (MaxMemoryLimit + 1)
	}
	for i := range b >> 16 % (MaxLayers + 1) {
		var l PathLayer
		if i%2 == 0 {
			l.ReadOnly = []string{s[:min(len(s), MaxPath)]}
		} else {
			l.ReadWrite = []string{"/", s[:min(len(s), 1)]}
		}
		st.PathLayers = append(st.PathLayers, l)
	}
	return st
}

// fzList splits p into at most maxList strings; none decodes as nil.
func fzList(p []byte) []string {
	var list []string
	for _, f := range bytes.Split(p, []byte{0}) {
		if len(list) < MaxList {
			list = append(list, string(f[:min(len(f), MaxArg)]))
		}
	}
	if len(p) == 0 {
		return nil
	}
	return list
}

// FuzzRoundTrip checks that every valid message decodes from its encoding
// to itself, under the header it was sent with.
func FuzzRoundTrip(f *testing.F) {
	for k := range fzKinds {
		f.Add(byte(k), uint32(k), uint32(0x1f), uint32(15), uint16(3), "worker", []byte("arg"))
		f.Add(byte(k), ^uint32(0), ^uint32(0), ^uint32(0), ^uint16(0), strings.Repeat("s", 2000), []byte(nil))
		f.Add(byte(k), uint32(0), uint32(0), uint32(0), uint16(0), "", []byte{})
	}
	f.Add(byte(0), uint32(1), uint32(0x1f), uint32(0), uint16(MaxFiles), strings.Repeat("n", MaxName+1), bytes.Repeat([]byte{1}, MaxArg+1))
	f.Add(byte(9), uint32(1), uint32(3), uint32(1<<30-1), uint16(MaxFiles), strings.Repeat("n", MaxName), bytes.Repeat([]byte{1}, MaxArg))
	f.Add(byte(8), uint32(1<<30-1), uint32(0x7f), uint32(0), uint16(0), "", bytes.Repeat([]byte{0xff}, 8*18))
	f.Fuzz(func(t *testing.T, kind byte, id, a, b uint32, c uint16, s string, p []byte) {
		m := fzBuild(kind, a, b, c, s, p)
		enc := AppendFrame(nil, id, m)
		h, got, err := DecodeFrame(enc)
		if err != nil {
			t.Fatalf("valid %#v does not decode: %v", m, err)
		}
		if h.ID != id || h.Type != m.Type() || int(h.NumFds) != m.NumFds() || int(h.Len) != len(enc)-HeaderSize {
			t.Fatalf("header %+v for %#v, id %d, %d bytes", h, m, id, len(enc))
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip changed the message:\n%#v\n%#v", m, got)
		}
	})
}
