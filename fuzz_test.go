//go:build linux

package forkserver

// Fuzz targets and edge-case tests for the wire codec (msg.go) and for the
// frameReader that reads frames off a socket (cmsg.go).
//
// The seeds every target starts from are fzSeeds: one valid frame of every
// message type. testdata/fuzz/FuzzDecodeFrame holds the same frames as
// corpus files; TestFrameCorpusFiles checks that the two agree.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fzSeed is one valid message, and the name of its corpus file.
type fzSeed struct {
	name string
	id   uint32
	msg  message
}

// fzSeeds returns one valid example of every message type. The frame reader
// target passes at most 7 descriptors, so no seed here needs more.
func fzSeeds() []fzSeed {
	return []fzSeed{
		{"fork", 1, &forkMsg{flags: flagSocket | flagServer | flagStdin, nfiles: 2, name: "worker", arg: []byte(`{"n":1}`)}},
		{"signal", 2, &signalMsg{pid: 4242, sig: 15}},
		{"killall", 3, &killAllMsg{sig: 9}},
		{"eval", 4, &evalMsg{name: "sum", arg: []byte{1, 2, 3}}},
		{"stop", 5, &stopMsg{}},
		{"detach", 6, &detachMsg{}},
		{"hello", 0, &helloMsg{pid: 1000}},
		{"reply", 1, &replyMsg{code: codeErrno, value: 2, text: "open"}},
		{"exit", 1, &exitMsg{pid: 4242, status: 0x0f00, rusage: [18]int64{
			0, 1500, 0, 300, 2048, 0, 0, 0, 120, 0, 0, 8, 0, 0, 0, 0, 3, 1,
		}}},
		{"assign", 0, &assignMsg{flags: flagSocket | flagServer, nfiles: 1, serverPid: 1000, name: "worker", arg: []byte("x")}},
		{"exec", 7, &execMsg{flags: flagSocket | flagStdout, nfiles: 1, path: "/bin/cat", argv: []string{"cat", "-u"}}},
		{"signalgroup", 8, &signalMsg{pid: 4242, sig: 15, group: true}},
		{"killallgroup", 9, &killAllMsg{sig: 9, groups: true}},
		{"fork-settings", 10, &forkMsg{flags: flagSocket | flagSettings, name: "parse", settings: settings{
			set: setSetsid | setCredential | setNoNewPrivs, dir: "/", chroot: "/var/empty", extraEnv: []string{"LANG=C"},
			uid: 65534, gid: 65534, namespaces: uint32(NewNet | NewUser), uidMaps: []wireIDMap{{0, 65534, 1}},
			pdeathsig: 9, rlimits: []wireRlimit{{7, 16, 16}}, rights: uint32(RightFork), children: 4,
		}}},
		{"fork-sandbox", 11, &forkMsg{flags: flagSocket | flagSettings, name: "parse", settings: settings{
			set: setNoNewPrivs, syscalls: uint32(allSyscallGroups),
			pathLayers: []pathLayer{{readOnly: []string{"/usr", "/etc/ssl"}}, {readWrite: []string{"/tmp/work"}}, {}},
		}}},
	}
}

// fzRawFrame is a frame of type t around body, with a correct length and
// the given descriptor count.
func fzRawFrame(t msgType, nfds uint16, body []byte) []byte {
	return append(rawHeader(protoVersion, t, nfds, 7, uint32(len(body))), body...)
}

// fzMaxAssign is an assignment with the longest name and the largest
// argument.
func fzMaxAssign() []byte {
	return appendFrame(nil, 9, &assignMsg{
		flags: assignFlags, nfiles: 1, serverPid: 1 << 30,
		name: strings.Repeat("n", MaxName), arg: bytes.Repeat([]byte{0xa5}, MaxArg),
	})
}

// fzEdgeFrames are malformed or borderline frames every frame target also
// starts from.
func fzEdgeFrames() [][]byte {
	stop := appendFrame(nil, 5, &stopMsg{})
	return [][]byte{
		nil,
		stop[:headerLen-1],
		rawHeader(protoVersion, tStop, 0, 1, 0xffffffff),                         // a 4 GiB body
		rawHeader(protoVersion, tAssign, 0, 1, maxBody+1),                        // just too large
		rawHeader(0, tStop, 0, 1, 0),                                             // unknown version
		rawHeader(protoVersion, 7, 0, 1, 0),                                      // unknown type
		rawHeader(protoVersion, tStop, maxFds+1, 1, 0),                           // too many descriptors
		fzRawFrame(tStop, 0, []byte{0}),                                          // trailing byte
		fzRawFrame(tStop, 1, nil),                                                // descriptor where none belong
		fzRawFrame(tKillAll, 0, []byte{maxSignal + 1, 0, 0, 0}),                  // bad signal
		fzRawFrame(tHello, 0, []byte{0, 0, 0, 0}),                                // pid 0
		fzRawFrame(tFork, 0, []byte{0x20, 0, 0, 0, 0, 0, 1, 0, 'f', 0, 0, 0, 0}), // unknown flag
		appendFrame(nil, 8, &replyMsg{code: codeFailed, text: strings.Repeat("e", maxText)}),
		appendFrame(nil, 8, &evalMsg{name: "e"}), // empty argument
		append(append([]byte(nil), stop...), stop...),
		fzMaxAssign(),
	}
}

func fzAddFrames(f *testing.F) {
	for _, s := range fzSeeds() {
		f.Add(appendFrame(nil, s.id, s.msg))
	}
	for _, b := range fzEdgeFrames() {
		f.Add(b)
	}
}

// fzCheckMalformed fails t unless err wraps errMalformed.
func fzCheckMalformed(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, errMalformed) {
		t.Fatalf("%s: error %v does not wrap errMalformed", what, err)
	}
}

func FuzzParseHeader(f *testing.F) {
	fzAddFrames(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			fzCheckMalformed(t, "parseHeader", err)
			if h != (header{}) {
				t.Fatalf("parseHeader failed but returned %+v", h)
			}
			return
		}
		if len(b) < headerLen {
			t.Fatalf("parseHeader accepted %d bytes", len(b))
		}
		if h.len > maxBody {
			t.Fatalf("body length %d exceeds %d", h.len, maxBody)
		}
		if h.nfds > maxFds {
			t.Fatalf("%d descriptors exceed %d", h.nfds, maxFds)
		}
		if newMessage(h.typ) == nil {
			t.Fatalf("accepted unknown type %d", h.typ)
		}
		if got := rawHeader(protoVersion, h.typ, h.nfds, h.id, h.len); !bytes.Equal(got, b[:headerLen]) {
			t.Fatalf("header %+v re-encodes as %x, input %x", h, got, b[:headerLen])
		}
		if h2, err := parseHeader(b[:headerLen]); err != nil || h2 != h {
			t.Fatalf("parseHeader looks past the header: %+v, %v", h2, err)
		}
	})
}

func FuzzDecodeBody(f *testing.F) {
	for _, s := range fzSeeds() {
		f.Add(byte(s.msg.kind()), appendFrame(nil, s.id, s.msg)[headerLen:])
	}
	for _, b := range fzEdgeFrames() {
		if len(b) >= headerLen {
			f.Add(b[1], b[headerLen:])
		}
	}
	f.Add(byte(0), []byte(nil))
	f.Add(byte(255), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		m, err := decodeBody(msgType(typ), body)
		if err != nil {
			fzCheckMalformed(t, "decodeBody", err)
			if m != nil {
				t.Fatalf("decodeBody failed (%v) but returned %#v", err, m)
			}
			return
		}
		if m.kind() != msgType(typ) {
			t.Fatalf("decoded a %d as a %d", typ, m.kind())
		}
		if n := m.numFds(); n < 0 || n > maxFds {
			t.Fatalf("%#v needs %d descriptors", m, n)
		}
		enc := m.appendBody(nil)
		if !bytes.Equal(enc, body) {
			t.Fatalf("%#v re-encodes as\n%x\ninput\n%x", m, enc, body)
		}
		m2, err := decodeBody(msgType(typ), enc)
		if err != nil {
			t.Fatalf("re-encoded body does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("decoding twice differs:\n%#v\n%#v", m, m2)
		}
	})
}

func FuzzDecodeFrame(f *testing.F) {
	fzAddFrames(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, m, err := decodeFrame(b)
		if err != nil {
			fzCheckMalformed(t, "decodeFrame", err)
			return
		}
		if m.kind() != h.typ || m.numFds() != int(h.nfds) || int(h.len) != len(b)-headerLen {
			t.Fatalf("decodeFrame disagrees with itself: header %+v, %#v (%d descriptors), %d bytes", h, m, m.numFds(), len(b))
		}
		if enc := appendFrame(nil, h.id, m); !bytes.Equal(enc, b) {
			t.Fatalf("%#v re-encodes as\n%x\ninput\n%x", m, enc, b)
		}
		// appendFrame must also work after existing bytes.
		prefix := []byte("prefix")
		if enc := appendFrame(prefix, h.id, m); !bytes.Equal(enc[len(prefix):], b) || string(enc[:len(prefix)]) != "prefix" {
			t.Fatalf("appendFrame after a prefix gives %x", enc)
		}
	})
}

var fzKinds = []msgType{tFork, tSignal, tKillAll, tEval, tStop, tDetach, tHello, tReply, tExit, tAssign, tExec, tSignalGroup, tKillAllGroup, tWarm, tTaken}

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
func fzBuild(kind byte, a, b uint32, c uint16, s string, p []byte) message {
	switch fzKinds[int(kind)%len(fzKinds)] {
	case tFork:
		m := &forkMsg{flags: a & forkFlags, nfiles: c % (MaxFiles + 1), name: fzName(s), arg: fzArg(p)}
		m.settings = fzSettings(m.flags, b, s)
		return m
	case tSignal:
		return &signalMsg{pid: fzPid(a), sig: b % (maxSignal + 1)}
	case tKillAll:
		return &killAllMsg{sig: a % (maxSignal + 1)}
	case tEval:
		return &evalMsg{name: fzName(s), arg: fzArg(p)}
	case tStop:
		return &stopMsg{}
	case tDetach:
		return &detachMsg{}
	case tHello:
		return &helloMsg{pid: fzPid(a)}
	case tReply:
		return &replyMsg{code: c % numCodes, value: a, text: s[:min(len(s), maxText)]}
	case tExit:
		m := &exitMsg{pid: fzPid(a), status: b}
		var buf [8 * 18]byte
		copy(buf[:], p)
		for i := range m.rusage {
			m.rusage[i] = int64(binary.LittleEndian.Uint64(buf[8*i:]))
		}
		return m
	case tAssign:
		m := &assignMsg{flags: a & assignFlags, nfiles: c % (MaxFiles + 1), serverPid: fzPid(b), name: fzName(s), arg: fzArg(p)}
		m.settings = fzSettings(m.flags, b, s)
		return m
	case tExec:
		m := &execMsg{flags: a & execFlags, nfiles: c % (MaxFiles + 1), path: fzName(s), argv: fzList(p)}
		m.settings = fzSettings(m.flags, b, s)
		return m
	case tSignalGroup:
		return &signalMsg{pid: fzPid(a), sig: b % (maxSignal + 1), group: true}
	case tKillAllGroup:
		return &killAllMsg{sig: a % (maxSignal + 1), groups: true}
	case tWarm:
		return &warmMsg{pidBody{fzPid(a)}}
	case tTaken:
		return &takenMsg{pid: fzPid(a), group: b&1 != 0}
	}
	panic("unreachable")
}

// fzSettings makes valid settings from fuzzed fields, if flags calls for
// them.
func fzSettings(flags, b uint32, s string) settings {
	if flags&flagSettings == 0 {
		return settings{}
	}
	st := settings{
		set: b & setAll, dir: s[:min(len(s), maxPath)], chroot: s[:min(len(s), 3)],
		uid: b, gid: b >> 1, namespaces: b & uint32(allNamespaces), pdeathsig: b % (maxSignal + 1),
		rights: b & uint32(allRights),
	}
	if b&1 != 0 {
		st.env = []string{s, "A=B"}
		st.groups = []uint32{b, 0}
		st.uidMaps = []wireIDMap{{0, b, 1}}
		st.rlimits = []wireRlimit{{7, uint64(b), ^uint64(0)}}
	}
	if b&2 != 0 {
		st.extraEnv = []string{""}
		st.gidMaps = []wireIDMap{{b, 0, 65536}}
	}
	st.syscalls = b >> 8 & uint32(allSyscallGroups)
	for i := range b >> 16 % (maxLayers + 1) {
		var l pathLayer
		if i%2 == 0 {
			l.readOnly = []string{s[:min(len(s), maxPath)]}
		} else {
			l.readWrite = []string{"/", s[:min(len(s), 1)]}
		}
		st.pathLayers = append(st.pathLayers, l)
	}
	return st
}

// fzList splits p into at most maxList strings; none decodes as nil.
func fzList(p []byte) []string {
	var list []string
	for _, f := range bytes.Split(p, []byte{0}) {
		if len(list) < maxList {
			list = append(list, string(f[:min(len(f), MaxArg)]))
		}
	}
	if len(p) == 0 {
		return nil
	}
	return list
}

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
		enc := appendFrame(nil, id, m)
		h, got, err := decodeFrame(enc)
		if err != nil {
			t.Fatalf("valid %#v does not decode: %v", m, err)
		}
		if h.id != id || h.typ != m.kind() || int(h.nfds) != m.numFds() || int(h.len) != len(enc)-headerLen {
			t.Fatalf("header %+v for %#v, id %d, %d bytes", h, m, id, len(enc))
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip changed the message:\n%#v\n%#v", m, got)
		}
	})
}

// Frame reader.

// fzMarker is a file of its own whose descriptors the frame reader tests
// pass, so that every received descriptor, and every leaked one, can be
// told apart from anything else the process has open.
type fzMarker struct {
	path     string
	dev, ino uint64
}

func newFzMarker(tb testing.TB) *fzMarker {
	if runtime.GOOS != "linux" {
		tb.Skip("counts descriptors in /proc/self/fd")
	}
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		tb.Skipf("cannot list descriptors: %v", err)
	}
	path := filepath.Join(tb.TempDir(), "marker")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		tb.Fatal(err)
	}
	return &fzMarker{path: path, dev: uint64(st.Dev), ino: uint64(st.Ino)}
}

func (mk *fzMarker) open(tb testing.TB, n int) []int {
	fds := make([]int, 0, n)
	for range n {
		fd, err := syscall.Open(mk.path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			closeFds(fds)
			tb.Fatal(err)
		}
		fds = append(fds, fd)
	}
	return fds
}

// is reports whether fd is open on the marker file.
func (mk *fzMarker) is(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && uint64(st.Dev) == mk.dev && uint64(st.Ino) == mk.ino
}

// count returns how many of this process's descriptors are open on the
// marker file.
func (mk *fzMarker) count(tb testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Stat("/proc/self/fd/"+e.Name(), &st) == nil && uint64(st.Dev) == mk.dev && uint64(st.Ino) == mk.ino {
			n++
		}
	}
	return n
}

// fzModelRead predicts what frameReader.read does with the unread bytes
// rest when arrived descriptors come with their first byte: on success the
// frame's length and contents, otherwise the error.
func fzModelRead(rest []byte, arrived int) (n int, h header, m message, err error) {
	if len(rest) == 0 {
		return 0, h, nil, io.EOF
	}
	if len(rest) < headerLen {
		return 0, h, nil, io.ErrUnexpectedEOF
	}
	h, err = parseHeader(rest)
	if err != nil {
		return 0, h, nil, err
	}
	if int(h.nfds) != arrived {
		return 0, h, nil, fmt.Errorf("%w: descriptor count", errMalformed)
	}
	if uint64(len(rest)-headerLen) < uint64(h.len) {
		return 0, h, nil, io.ErrUnexpectedEOF
	}
	n = headerLen + int(h.len)
	_, m, err = decodeFrame(rest[:n])
	return n, h, m, err
}

// fzErrClass names the kinds of error frameReader.read may return.
func fzErrClass(err error) string {
	switch {
	case err == nil:
		return "success"
	case err == io.EOF:
		return "EOF"
	case err == io.ErrUnexpectedEOF:
		return "unexpected EOF"
	case errors.Is(err, errMalformed):
		return "malformed"
	case fzWrappedEOF(err):
		return "wrapped EOF"
	}
	return fmt.Sprintf("other error %T: %v", err, err)
}

// fzWrappedEOF reports whether err is io.EOF wrapped in something, as
// (*net.UnixConn).ReadMsgUnix returns it.
func fzWrappedEOF(err error) bool {
	return err != io.EOF && errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)
}

// fzSameErr reports whether read's error got matches the model's want.
func fzSameErr(got, want error) bool {
	return fzErrClass(got) == fzErrClass(want)
}

// fzFrameResult is what one frameReader.read returned; the frame's
// descriptors are closed by the time anyone sees it.
type fzFrameResult struct {
	frame frame
	err   error
}

// fzConnPair returns both ends of a fresh socket pair, reads from rc
// bounded by hangBound. The caller closes both.
func fzConnPair(tb testing.TB) (rc, wc *net.UnixConn) {
	tb.Helper()
	rc, wfd, err := socketConnPair()
	if err != nil {
		tb.Fatal(err)
	}
	if wc, err = unixConn(wfd); err != nil {
		rc.Close()
		tb.Fatal(err)
	}
	rc.SetReadDeadline(time.Now().Add(hangBound))
	return rc, wc
}

// fzReadFrames writes data to one end of a socket pair with nfd marker
// descriptors attached to its first byte, closes that end for writing, and
// reads frames from the other end with a frameReader until read fails. It
// checks every result against fzModelRead, that no marker descriptor is
// left open, and that nothing hangs, and returns the results.
func fzReadFrames(tb testing.TB, mk *fzMarker, nfd int, data []byte) []fzFrameResult {
	tb.Helper()

	rc, wc := fzConnPair(tb)
	wc.SetWriteDeadline(time.Now().Add(hangBound))

	fds := mk.open(tb, nfd)
	sent := nfd
	if len(data) == 0 {
		sent = 0 // descriptors cannot travel without data
	}
	wrote := make(chan error, 1)
	go func() {
		err := writeMsg(wc, data, fds)
		closeFds(fds) // ours; the kernel holds its own references to those in flight
		wc.CloseWrite()
		wrote <- err
	}()

	var results []fzFrameResult
	var failure string
	r := newFrameReader(rc)
	for off := 0; failure == ""; {
		fr, err := r.read()
		for _, fd := range fr.fds {
			if !mk.is(fd) {
				failure = fmt.Sprintf("frame %d: received descriptor %d is not one that was sent", len(results), fd)
			}
		}
		closeFds(fr.fds)
		results = append(results, fzFrameResult{fr, err})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			failure = fmt.Sprintf("frame %d: read hung for %v: %v", len(results)-1, hangBound, err)
			break
		}
		arrived := 0
		if off == 0 {
			arrived = sent
		}
		n, h, m, merr := fzModelRead(data[off:], arrived)
		if !fzSameErr(err, merr) {
			got, want := fzErrClass(err), fzErrClass(merr)
			failure = fmt.Sprintf("frame %d at offset %d (%d descriptors sent): read returned %s (%v), want %s (%v)",
				len(results)-1, off, arrived, got, err, want, merr)
			break
		}
		if err != nil {
			break
		}
		switch {
		case fr.id != h.id:
			failure = fmt.Sprintf("frame %d: id %d, want %d", len(results)-1, fr.id, h.id)
		case !reflect.DeepEqual(fr.msg, m):
			failure = fmt.Sprintf("frame %d: read %#v, want %#v", len(results)-1, fr.msg, m)
		case len(fr.fds) != arrived || len(fr.fds) != fr.msg.numFds():
			failure = fmt.Sprintf("frame %d: %d descriptors, %d sent, message needs %d", len(results)-1, len(fr.fds), arrived, fr.msg.numFds())
		case !bytes.Equal(appendFrame(nil, fr.id, fr.msg), data[off:off+n]):
			failure = fmt.Sprintf("frame %d does not re-encode as the bytes it came from", len(results)-1)
		}
		off += n
	}

	rc.Close()
	var werr error
	select {
	case werr = <-wrote:
	case <-time.After(hangBound):
		failure += "; the writer hung"
	}
	wc.Close()
	if nfd > 0 && len(data) == 0 && werr != errNoData {
		failure += fmt.Sprintf("; writeMsg of descriptors without data returned %v, want errNoData", werr)
	}
	if failure != "" {
		tb.Fatal(failure)
	}

	// Exact: every descriptor a frame can carry is a marker, and the
	// writer has closed its own by now.
	if n := mk.count(tb); n != 0 {
		tb.Fatalf("%d descriptors of the %d sent are still open", n, nfd)
	}
	return results
}

func FuzzFrameReader(f *testing.F) {
	mk := newFzMarker(f)
	var all []byte
	for _, s := range fzSeeds() {
		b := appendFrame(nil, s.id, s.msg)
		f.Add(byte(s.msg.numFds()), b)
		if s.msg.numFds() == 0 {
			all = append(all, b...)
		}
	}
	f.Add(byte(0), all)
	for _, b := range fzEdgeFrames() {
		f.Add(byte(0), b)
		f.Add(byte(1), b)
	}
	fork := appendFrame(nil, 1, &forkMsg{flags: flagStdin | flagStdout | flagStderr | flagServer, nfiles: 4, name: "w"})
	f.Add(byte(7), fork)                                    // the most descriptors the target sends
	f.Add(byte(6), fork)                                    // one short
	f.Add(byte(7), append(fork, all...))                    // then frames without any
	f.Add(byte(7), fork[:len(fork)-1])                      // a body cut short
	f.Add(byte(1), fzRawFrame(tStop, 1, nil))               // the header agrees, the type does not
	f.Add(byte(3), rawHeader(protoVersion, tFork, 3, 1, 0)) // the header agrees, no body
	f.Fuzz(func(t *testing.T, nfd byte, data []byte) {
		fzReadFrames(t, mk, int(nfd%8), data)
	})
}

// Edge cases.

func TestHeaderHugeBody(t *testing.T) {
	for _, typ := range fzKinds {
		b := rawHeader(protoVersion, typ, 0, 1, 0xffffffff)
		if _, err := parseHeader(b); !errors.Is(err, errMalformed) {
			t.Errorf("parseHeader of a type %d header claiming 4 GiB: %v", typ, err)
		}
		if _, _, err := decodeFrame(b); !errors.Is(err, errMalformed) {
			t.Errorf("decodeFrame of a type %d header claiming 4 GiB: %v", typ, err)
		}
	}

	// The frame reader must reject the header before it allocates a body.
	mk := newFzMarker(t)
	rc, wc := fzConnPair(t)
	defer rc.Close()
	defer wc.Close()
	if _, err := wc.Write(rawHeader(protoVersion, tAssign, 0, 1, 0xffffffff)); err != nil {
		t.Fatal(err)
	}
	r := newFrameReader(rc)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := r.read()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errMalformed) {
		t.Errorf("frameReader.read of a header claiming 4 GiB: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("frameReader.read allocated %d bytes for a header claiming 4 GiB", n)
	}

	// Also with descriptors attached, which must be closed.
	results := fzReadFrames(t, mk, 2, rawHeader(protoVersion, tFork, 2, 1, 0xffffffff))
	if err := results[0].err; !errors.Is(err, errMalformed) {
		t.Errorf("frameReader.read of a header claiming 4 GiB with descriptors: %v", err)
	}
}

func TestHeaderBounds(t *testing.T) {
	for _, tc := range []struct {
		b  []byte
		ok bool
	}{
		{rawHeader(protoVersion, tAssign, 0, 1, maxBody), true},
		{rawHeader(protoVersion, tAssign, 0, 1, maxBody+1), false},
		{rawHeader(protoVersion, tFork, maxFds, 1, 0), true},
		{rawHeader(protoVersion, tFork, maxFds+1, 1, 0), false},
		{rawHeader(protoVersion, tFork, 0xffff, 1, 0), false},
		{rawHeader(protoVersion, tStop, 0, 1, 0)[:headerLen-1], false},
		{nil, false},
	} {
		_, err := parseHeader(tc.b)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, errMalformed) {
			t.Errorf("parseHeader(%x) = %v, want ok=%v", tc.b, err, tc.ok)
		}
	}
}

func TestHeaderUnknownVersion(t *testing.T) {
	for _, v := range []byte{0, protoVersion + 1, 0x80, 0xff} {
		b := rawHeader(v, tStop, 0, 1, 0)
		if _, err := parseHeader(b); !errors.Is(err, errMalformed) {
			t.Errorf("parseHeader with version %d: %v", v, err)
		}
		if _, _, err := decodeFrame(b); !errors.Is(err, errMalformed) {
			t.Errorf("decodeFrame with version %d: %v", v, err)
		}
	}
}

func TestHeaderUnknownType(t *testing.T) {
	known := map[msgType]bool{}
	for _, k := range fzKinds {
		known[k] = true
	}
	for i := range 256 {
		typ := msgType(i)
		_, err := parseHeader(rawHeader(protoVersion, typ, 0, 1, 0))
		if known[typ] {
			if err != nil {
				t.Errorf("parseHeader rejects type %d: %v", typ, err)
			}
			continue
		}
		if !errors.Is(err, errMalformed) {
			t.Errorf("parseHeader with unknown type %d: %v", typ, err)
		}
		if m, err := decodeBody(typ, nil); !errors.Is(err, errMalformed) || m != nil {
			t.Errorf("decodeBody with unknown type %d: %v, %v", typ, m, err)
		}
	}
}

func TestDecodeTrailingBytes(t *testing.T) {
	for _, s := range fzSeeds() {
		body := append(s.msg.appendBody(nil), 0)
		if _, err := decodeBody(s.msg.kind(), body); !errors.Is(err, errMalformed) {
			t.Errorf("%s with a trailing byte: decodeBody: %v", s.name, err)
		}
		frame := fzRawFrame(s.msg.kind(), uint16(s.msg.numFds()), body)
		if _, _, err := decodeFrame(frame); !errors.Is(err, errMalformed) {
			t.Errorf("%s with a trailing byte: decodeFrame: %v", s.name, err)
		}
		// A frame whose header counts the body right but has more bytes after it.
		frame = append(appendFrame(nil, s.id, s.msg), 0)
		if _, _, err := decodeFrame(frame); !errors.Is(err, errMalformed) {
			t.Errorf("%s followed by a byte: decodeFrame: %v", s.name, err)
		}
	}
}

func TestDecodeUnknownFlags(t *testing.T) {
	for bit := range 32 {
		f := uint32(1) << bit
		fork := (&forkMsg{flags: f, name: "f"}).appendBody(nil)
		_, err := decodeBody(tFork, fork)
		if f&forkFlags != 0 {
			if err != nil {
				t.Errorf("fork with flag %#x: %v", f, err)
			}
		} else if !errors.Is(err, errMalformed) {
			t.Errorf("fork with unknown flag %#x: %v", f, err)
		}
		assign := (&assignMsg{flags: f, serverPid: 1, name: "f"}).appendBody(nil)
		_, err = decodeBody(tAssign, assign)
		if f&assignFlags != 0 {
			if err != nil {
				t.Errorf("assign with flag %#x: %v", f, err)
			}
		} else if !errors.Is(err, errMalformed) {
			t.Errorf("assign with unknown flag %#x: %v", f, err)
		}
	}
}

// fzWithName returns a message of type t carrying name and arg.
func fzWithName(t msgType, name string, arg []byte) message {
	switch t {
	case tFork:
		return &forkMsg{name: name, arg: arg}
	case tEval:
		return &evalMsg{name: name, arg: arg}
	case tAssign:
		return &assignMsg{serverPid: 1, name: name, arg: arg}
	}
	panic("no name in this type")
}

func TestDecodeNameLength(t *testing.T) {
	for _, typ := range []msgType{tFork, tEval, tAssign} {
		for _, n := range []int{0, 1, MaxName, MaxName + 1, 0xffff} {
			m := fzWithName(typ, strings.Repeat("n", n), nil)
			_, err := decodeBody(typ, m.appendBody(nil))
			if n >= 1 && n <= MaxName {
				if err != nil {
					t.Errorf("type %d with a name of %d bytes: %v", typ, n, err)
				}
			} else if !errors.Is(err, errMalformed) {
				t.Errorf("type %d with a name of %d bytes: %v", typ, n, err)
			}
		}
	}
}

func TestDecodeArgLength(t *testing.T) {
	for _, typ := range []msgType{tFork, tEval, tAssign} {
		for _, n := range []int{0, MaxArg, MaxArg + 1} {
			m := fzWithName(typ, "f", make([]byte, n))
			body := m.appendBody(nil)
			_, err := decodeBody(typ, body)
			if n <= MaxArg {
				if err != nil {
					t.Errorf("type %d with an argument of %d bytes: %v", typ, n, err)
				}
			} else if !errors.Is(err, errMalformed) {
				t.Errorf("type %d with an argument of %d bytes: %v", typ, n, err)
			}
			_, _, err = decodeFrame(fzRawFrame(typ, 0, body))
			if n <= MaxArg {
				if err != nil {
					t.Errorf("frame of type %d with an argument of %d bytes: %v", typ, n, err)
				}
			} else if !errors.Is(err, errMalformed) {
				t.Errorf("frame of type %d with an argument of %d bytes: %v", typ, n, err)
			}
		}
		// A length prefix of 4 GiB - 1 with nothing after it.
		body := appendString(nil, "f")
		if typ == tFork || typ == tAssign {
			body = (fzWithName(typ, "f", nil)).appendBody(nil)
			body = body[:len(body)-4]
		}
		body = binary.LittleEndian.AppendUint32(body, 0xffffffff)
		if _, err := decodeBody(typ, body); !errors.Is(err, errMalformed) {
			t.Errorf("type %d with an argument claiming 4 GiB: %v", typ, err)
		}
	}
	// An assignment with the longest name and argument fits.
	b := fzMaxAssign()
	if len(b) > headerLen+maxBody {
		t.Errorf("largest assignment is %d bytes, maxBody is %d", len(b)-headerLen, maxBody)
	}
	if _, _, err := decodeFrame(b); err != nil {
		t.Errorf("largest assignment: %v", err)
	}
}

func TestDecodeOtherBounds(t *testing.T) {
	for _, tc := range []struct {
		what string
		m    message
		ok   bool
	}{
		{"pid 0", &signalMsg{pid: 0, sig: 1}, false},
		{"pid 1<<30", &signalMsg{pid: 1 << 30, sig: 1}, true},
		{"pid 1<<30+1", &signalMsg{pid: 1<<30 + 1, sig: 1}, false},
		{"signal 64", &signalMsg{pid: 1, sig: maxSignal}, true},
		{"signal 65", &signalMsg{pid: 1, sig: maxSignal + 1}, false},
		{"kill-all signal 65", &killAllMsg{sig: maxSignal + 1}, false},
		{"hello pid 0", &helloMsg{}, false},
		{"exit pid 0", &exitMsg{}, false},
		{"assign server pid 0", &assignMsg{name: "f"}, false},
		{"reply code numCodes-1", &replyMsg{code: numCodes - 1}, true},
		{"reply code numCodes", &replyMsg{code: numCodes}, false},
		{"reply text maxText", &replyMsg{text: strings.Repeat("t", maxText)}, true},
		{"reply text maxText+1", &replyMsg{text: strings.Repeat("t", maxText+1)}, false},
		{"fork nfiles MaxFiles", &forkMsg{nfiles: MaxFiles, name: "f"}, true},
		{"fork nfiles MaxFiles+1", &forkMsg{nfiles: MaxFiles + 1, name: "f"}, false},
		{"assign nfiles MaxFiles+1", &assignMsg{nfiles: MaxFiles + 1, serverPid: 1, name: "f"}, false},
	} {
		_, err := decodeBody(tc.m.kind(), tc.m.appendBody(nil))
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want ok=%v", tc.what, err, tc.ok)
		}
	}
	// Every body cut short is rejected.
	for _, s := range fzSeeds() {
		body := s.msg.appendBody(nil)
		for n := range len(body) {
			if _, err := decodeBody(s.msg.kind(), body[:n]); !errors.Is(err, errMalformed) {
				t.Errorf("%s cut to %d of %d bytes: %v", s.name, n, len(body), err)
			}
		}
	}
}

func TestFrameNfdsMismatch(t *testing.T) {
	for _, s := range fzSeeds() {
		b := appendFrame(nil, s.id, s.msg)
		need := uint16(s.msg.numFds())
		for _, n := range []uint16{need - 1, need + 1, maxFds} {
			if n == need || n > maxFds { // need-1 wraps for 0
				continue
			}
			binary.LittleEndian.PutUint16(b[2:], n)
			if _, _, err := decodeFrame(b); !errors.Is(err, errMalformed) {
				t.Errorf("%s (%d descriptors) with %d in its header: %v", s.name, need, n, err)
			}
		}
	}
	// The flag for the server's connection carries no descriptor in a fork
	// request, but does in an assignment; only a fork request carries an
	// exit pipe.
	fork := &forkMsg{flags: forkFlags, nfiles: 2, name: "f"}
	assign := &assignMsg{flags: assignFlags, nfiles: 2, serverPid: 1, name: "f"}
	if fork.numFds() != 5+2 || assign.numFds() != 5+2 {
		t.Errorf("fork needs %d descriptors, assign %d", fork.numFds(), assign.numFds())
	}

	// Over a socket: the header must count the descriptors that arrive, and
	// the body must call for them; either way every one is closed.
	mk := newFzMarker(t)
	fork3 := appendFrame(nil, 1, &forkMsg{flags: flagStdin, nfiles: 2, name: "f"})
	for _, tc := range []struct {
		what string
		nfd  int
		data []byte
	}{
		{"fewer descriptors than the header says", 2, fork3},
		{"more descriptors than the header says", 4, fork3},
		{"descriptors with a header that says none", 1, appendFrame(nil, 1, &stopMsg{})},
		{"the header agrees but the type carries none", 1, fzRawFrame(tStop, 1, nil)},
		{"the header agrees but the body calls for fewer", 3, fzRawFrame(tFork, 3, (&forkMsg{flags: flagStdin, nfiles: 1, name: "f"}).appendBody(nil))},
		{"a second frame that claims descriptors", 3, append(fork3, fork3...)},
	} {
		results := fzReadFrames(t, mk, tc.nfd, tc.data)
		last := results[len(results)-1]
		if !errors.Is(last.err, errMalformed) {
			t.Errorf("%s: %v", tc.what, last.err)
		}
	}
	// And the valid case, for contrast.
	results := fzReadFrames(t, mk, 3, append(fork3, appendFrame(nil, 2, &stopMsg{})...))
	if len(results) != 3 || len(results[0].frame.fds) != 3 || !fzSameErr(results[2].err, io.EOF) {
		t.Errorf("a fork with its 3 descriptors and a stop: %+v", results)
	}
}

// TestFrameReaderEOF checks that a close between frames reads as io.EOF and
// one inside a frame as io.ErrUnexpectedEOF, although ReadMsgUnix wraps
// end-of-file in a *net.OpError; ReadFds likewise reads as io.ReadFull does.
func TestFrameReaderEOF(t *testing.T) {
	stop := appendFrame(nil, 5, &stopMsg{})
	for _, tc := range []struct {
		what string
		data []byte
		want []error // read's results in order; nil is a frame
	}{
		{"nothing", nil, []error{io.EOF}},
		{"a frame, then a close", stop, []error{nil, io.EOF}},
		{"5 bytes of a header", stop[:5], []error{io.ErrUnexpectedEOF}},
		{"a header, then half its body", append(rawHeader(protoVersion, tKillAll, 0, 1, 4), 9, 0), []error{io.ErrUnexpectedEOF}},
		{"a frame, then a cut header", append(stop, 1, 5), []error{nil, io.ErrUnexpectedEOF}},
	} {
		rc, wc := fzConnPair(t)
		if _, err := wc.Write(tc.data); err != nil {
			t.Fatal(err)
		}
		wc.CloseWrite()
		r := newFrameReader(rc)
		for i, want := range tc.want {
			f, err := r.read()
			closeFds(f.fds)
			if err != want {
				t.Errorf("%s: read %d returned %v (%T), want %v", tc.what, i, err, err, want)
			}
		}
		rc.Close()
		wc.Close()
	}

	// The exported ReadFds.
	rc, wc := fzConnPair(t)
	defer rc.Close()
	defer wc.Close()
	wc.Write([]byte{1, 2})
	wc.CloseWrite()
	if n, _, err := ReadFds(rc, make([]byte, 4), 0); n != 2 || err != io.ErrUnexpectedEOF {
		t.Errorf("ReadFds of 4 bytes when 2 arrive: %d, %v (%T), want 2, io.ErrUnexpectedEOF", n, err, err)
	}
	if n, _, err := ReadFds(rc, make([]byte, 4), 0); n != 0 || err != io.EOF {
		t.Errorf("ReadFds at the end: %d, %v (%T), want 0, io.EOF", n, err, err)
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
		if want := appendFrame(nil, s.id, s.msg); !bytes.Equal(got, want) {
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
