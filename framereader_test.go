//go:build linux

package forkserver

// Tests of the frameReader that reads frames off a socket (cmsg.go): it
// returns what the codec decodes from the same bytes, closes every
// descriptor it does not hand over, allocates nothing a header only claims,
// and tells a clean end from a cut one.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/forkserver/forkserver/internal/wire"
)

// fzSeed is one valid message, and a name for it.
type fzSeed struct {
	name string
	id   uint32
	msg  wire.Message
}

// fzSeeds returns one valid example of every message type, as the codec's
// own fuzz targets start from. The frame reader target passes at most 7
// descriptors, so no seed here needs more.
func fzSeeds() []fzSeed {
	return []fzSeed{
		{"fork", 1, &wire.Fork{Flags: wire.FlagSocket | wire.FlagServer | wire.FlagStdin, NumFiles: 2, Name: "worker", Arg: []byte(`{"n":1}`)}},
		{"signal", 2, &wire.Signal{Pid: 4242, Sig: 15}},
		{"killall", 3, &wire.KillAll{Sig: 9}},
		{"eval", 4, &wire.Eval{Name: "sum", Arg: []byte{1, 2, 3}}},
		{"stop", 5, &wire.Stop{}},
		{"detach", 6, &wire.Detach{}},
		{"hello", 0, &wire.Hello{Pid: 1000}},
		{"reply", 1, &wire.Reply{Code: wire.CodeErrno, Value: 2, Text: "open"}},
		{"exit", 1, &wire.Exit{Pid: 4242, Status: 0x0f00, Rusage: [18]int64{
			0, 1500, 0, 300, 2048, 0, 0, 0, 120, 0, 0, 8, 0, 0, 0, 0, 3, 1,
		}}},
		{"assign", 0, &wire.Assign{Flags: wire.FlagSocket | wire.FlagServer, NumFiles: 1, ServerPid: 1000, Name: "worker", Arg: []byte("x")}},
		{"exec", 7, &wire.Exec{Flags: wire.FlagSocket | wire.FlagStdout, NumFiles: 1, Path: "/bin/cat", Argv: []string{"cat", "-u"}}},
		{"signalgroup", 8, &wire.Signal{Pid: 4242, Sig: 15, Group: true}},
		{"killallgroup", 9, &wire.KillAll{Sig: 9, Groups: true}},
		{"fork-settings", 10, &wire.Fork{Flags: wire.FlagSocket | wire.FlagSettings, Name: "parse", Settings: wire.Settings{
			Set: wire.SetSetsid | wire.SetCredential | wire.SetNoNewPrivs, Dir: "/", Chroot: "/var/empty", ExtraEnv: []string{"LANG=C"},
			Uid: 65534, Gid: 65534, Namespaces: uint32(NewNet | NewUser), UidMaps: []wire.IDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
			Pdeathsig: 9, Rlimits: []wire.Rlimit{{Resource: 7, Cur: 16, Max: 16}}, Rights: uint32(RightFork), Children: 4,
		}}},
		{"fork-sandbox", 11, &wire.Fork{Flags: wire.FlagSocket | wire.FlagSettings, Name: "parse", Settings: wire.Settings{
			Set: wire.SetNoNewPrivs, Syscalls: uint32(allSyscallGroups),
			PathLayers: []wire.PathLayer{{ReadOnly: []string{"/usr", "/etc/ssl"}}, {ReadWrite: []string{"/tmp/work"}}, {}},
		}}},
	}
}

// fzRawFrame is a frame of type t around body, with a correct length and
// the given descriptor count.
func fzRawFrame(t wire.Type, nfds uint16, body []byte) []byte {
	return append(rawHeader(wire.Version, t, nfds, 7, uint32(len(body))), body...)
}

// fzMaxAssign is an assignment with the longest name and the largest
// argument.
func fzMaxAssign() []byte {
	return wire.AppendFrame(nil, 9, &wire.Assign{
		Flags: wire.FlagSocket | wire.FlagServer | wire.FlagStdin | wire.FlagStdout | wire.FlagStderr | wire.FlagSettings, NumFiles: 1, ServerPid: 1 << 30,
		Name: strings.Repeat("n", MaxName), Arg: bytes.Repeat([]byte{0xa5}, MaxArg),
	})
}

// fzEdgeFrames are malformed or borderline frames every frame target also
// starts from.
func fzEdgeFrames() [][]byte {
	stop := wire.AppendFrame(nil, 5, &wire.Stop{})
	return [][]byte{
		nil,
		stop[:wire.HeaderSize-1],
		rawHeader(wire.Version, wire.TypeStop, 0, 1, 0xffffffff),                         // a 4 GiB body
		rawHeader(wire.Version, wire.TypeAssign, 0, 1, wire.MaxBody+1),                   // just too large
		rawHeader(0, wire.TypeStop, 0, 1, 0),                                             // unknown version
		rawHeader(wire.Version, 7, 0, 1, 0),                                              // unknown type
		rawHeader(wire.Version, wire.TypeStop, wire.MaxFds+1, 1, 0),                      // too many descriptors
		fzRawFrame(wire.TypeStop, 0, []byte{0}),                                          // trailing byte
		fzRawFrame(wire.TypeStop, 1, nil),                                                // descriptor where none belong
		fzRawFrame(wire.TypeKillAll, 0, []byte{wire.MaxSignal + 1, 0, 0, 0}),             // bad signal
		fzRawFrame(wire.TypeHello, 0, []byte{0, 0, 0, 0}),                                // pid 0
		fzRawFrame(wire.TypeFork, 0, []byte{0x20, 0, 0, 0, 0, 0, 1, 0, 'f', 0, 0, 0, 0}), // unknown flag
		wire.AppendFrame(nil, 8, &wire.Reply{Code: wire.CodeFailed, Text: strings.Repeat("e", wire.MaxText)}),
		wire.AppendFrame(nil, 8, &wire.Eval{Name: "e"}), // empty argument
		append(append([]byte(nil), stop...), stop...),
		fzMaxAssign(),
	}
}

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
func fzModelRead(rest []byte, arrived int) (n int, h wire.Header, m wire.Message, err error) {
	if len(rest) == 0 {
		return 0, h, nil, io.EOF
	}
	if len(rest) < wire.HeaderSize {
		return 0, h, nil, io.ErrUnexpectedEOF
	}
	h, err = wire.ParseHeader(rest)
	if err != nil {
		return 0, h, nil, err
	}
	if int(h.NumFds) != arrived {
		return 0, h, nil, fmt.Errorf("%w: descriptor count", wire.ErrMalformed)
	}
	if uint64(len(rest)-wire.HeaderSize) < uint64(h.Len) {
		return 0, h, nil, io.ErrUnexpectedEOF
	}
	n = wire.HeaderSize + int(h.Len)
	_, m, err = wire.DecodeFrame(rest[:n])
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
	case errors.Is(err, wire.ErrMalformed):
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
		case fr.id != h.ID:
			failure = fmt.Sprintf("frame %d: id %d, want %d", len(results)-1, fr.id, h.ID)
		case !reflect.DeepEqual(fr.msg, m):
			failure = fmt.Sprintf("frame %d: read %#v, want %#v", len(results)-1, fr.msg, m)
		case len(fr.fds) != arrived || len(fr.fds) != fr.msg.NumFds():
			failure = fmt.Sprintf("frame %d: %d descriptors, %d sent, message needs %d", len(results)-1, len(fr.fds), arrived, fr.msg.NumFds())
		case !bytes.Equal(wire.AppendFrame(nil, fr.id, fr.msg), data[off:off+n]):
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

// FuzzFrameReader checks that frameReader.read returns what the codec
// decodes from the same bytes and descriptors, and leaves none open.
func FuzzFrameReader(f *testing.F) {
	mk := newFzMarker(f)
	var all []byte
	for _, s := range fzSeeds() {
		b := wire.AppendFrame(nil, s.id, s.msg)
		f.Add(byte(s.msg.NumFds()), b)
		if s.msg.NumFds() == 0 {
			all = append(all, b...)
		}
	}
	f.Add(byte(0), all)
	for _, b := range fzEdgeFrames() {
		f.Add(byte(0), b)
		f.Add(byte(1), b)
	}
	fork := wire.AppendFrame(nil, 1, &wire.Fork{Flags: wire.FlagStdin | wire.FlagStdout | wire.FlagStderr | wire.FlagServer, NumFiles: 4, Name: "w"})
	f.Add(byte(7), fork)                                            // the most descriptors the target sends
	f.Add(byte(6), fork)                                            // one short
	f.Add(byte(7), append(fork, all...))                            // then frames without any
	f.Add(byte(7), fork[:len(fork)-1])                              // a body cut short
	f.Add(byte(1), fzRawFrame(wire.TypeStop, 1, nil))               // the header agrees, the type does not
	f.Add(byte(3), rawHeader(wire.Version, wire.TypeFork, 3, 1, 0)) // the header agrees, no body
	f.Fuzz(func(t *testing.T, nfd byte, data []byte) {
		fzReadFrames(t, mk, int(nfd%8), data)
	})
}

// TestFrameReaderHugeBody checks that the frame reader rejects a header
// claiming 4 GiB before it allocates a body, and closes what came with it.
func TestFrameReaderHugeBody(t *testing.T) {
	mk := newFzMarker(t)
	// The frame reader must reject the header before it allocates a body.
	rc, wc := fzConnPair(t)
	defer rc.Close()
	defer wc.Close()
	if _, err := wc.Write(rawHeader(wire.Version, wire.TypeAssign, 0, 1, 0xffffffff)); err != nil {
		t.Fatal(err)
	}
	r := newFrameReader(rc)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := r.read()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("frameReader.read of a header claiming 4 GiB: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("frameReader.read allocated %d bytes for a header claiming 4 GiB", n)
	}

	// Also with descriptors attached, which must be closed.
	results := fzReadFrames(t, mk, 2, rawHeader(wire.Version, wire.TypeFork, 2, 1, 0xffffffff))
	if err := results[0].err; !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("frameReader.read of a header claiming 4 GiB with descriptors: %v", err)
	}
}

// TestFrameReaderNfdsMismatch checks that the header must count the
// descriptors that arrive and the body call for them, and that either way
// every one is closed.
func TestFrameReaderNfdsMismatch(t *testing.T) {
	mk := newFzMarker(t)
	fork3 := wire.AppendFrame(nil, 1, &wire.Fork{Flags: wire.FlagStdin, NumFiles: 2, Name: "f"})
	for _, tc := range []struct {
		what string
		nfd  int
		data []byte
	}{
		{"fewer descriptors than the header says", 2, fork3},
		{"more descriptors than the header says", 4, fork3},
		{"descriptors with a header that says none", 1, wire.AppendFrame(nil, 1, &wire.Stop{})},
		{"the header agrees but the type carries none", 1, fzRawFrame(wire.TypeStop, 1, nil)},
		{"the header agrees but the body calls for fewer", 3, fzRawFrame(wire.TypeFork, 3, wire.AppendFrame(nil, 1, &wire.Fork{Flags: wire.FlagStdin, NumFiles: 1, Name: "f"})[wire.HeaderSize:])},
		{"a second frame that claims descriptors", 3, append(fork3, fork3...)},
	} {
		results := fzReadFrames(t, mk, tc.nfd, tc.data)
		last := results[len(results)-1]
		if !errors.Is(last.err, wire.ErrMalformed) {
			t.Errorf("%s: %v", tc.what, last.err)
		}
	}
	// And the valid case, for contrast.
	results := fzReadFrames(t, mk, 3, append(fork3, wire.AppendFrame(nil, 2, &wire.Stop{})...))
	if len(results) != 3 || len(results[0].frame.fds) != 3 || !fzSameErr(results[2].err, io.EOF) {
		t.Errorf("a fork with its 3 descriptors and a stop: %+v", results)
	}
}

// TestFrameReaderEOF checks that a close between frames reads as io.EOF and
// one inside a frame as io.ErrUnexpectedEOF, although ReadMsgUnix wraps
// end-of-file in a *net.OpError; ReadFds likewise reads as io.ReadFull does.
func TestFrameReaderEOF(t *testing.T) {
	stop := wire.AppendFrame(nil, 5, &wire.Stop{})
	for _, tc := range []struct {
		what string
		data []byte
		want []error // read's results in order; nil is a frame
	}{
		{"nothing", nil, []error{io.EOF}},
		{"a frame, then a close", stop, []error{nil, io.EOF}},
		{"5 bytes of a header", stop[:5], []error{io.ErrUnexpectedEOF}},
		{"a header, then half its body", append(rawHeader(wire.Version, wire.TypeKillAll, 0, 1, 4), 9, 0), []error{io.ErrUnexpectedEOF}},
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
