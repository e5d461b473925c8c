//go:build linux || darwin

package forkserver

import (
	"fmt"
	"math/bits"
	"os"
	"syscall"
)

// How the server creates a child for a Fork or an Exec request: admitting
// the request, starting the child from the pool or cold, and recording it.

// launch is a Fork or Exec in flight, from its request to the recording of
// the child it creates.
type launch struct {
	from   *client  // the connection that asked
	id     uint32   // the request's id, which the reply and the exit event carry
	st     settings // confined to what from may ask for
	std    [3]int   // the child's descriptors 0 to 2; -1: the server's own
	socket []int    // the requester's socket, then the child's connection, as asked for
	files  []int    // Attr.Files
	own    *client  // the child's connection to the server, if it asked for one
}

// newLaunch admits the request id from cl, with flags, st and the
// descriptors fds it came with, which the caller keeps owning.
func (sv *supervisor) newLaunch(cl *client, id uint32, flags uint32, st settings, fds []int, external bool) (*launch, error) {
	if err := cl.admit(&st, external); err != nil {
		return nil, err
	}
	socket, given, files := splitFds(flags, fds)
	return &launch{from: cl, id: id, st: st, std: cl.stdio(flags, given), socket: socket, files: files}, nil
}

// record records pid as the child l created and answers the request,
// before any exit event of the child can be sent; with that exit too if
// the child ran and ended already, so that its pid may be another's now.
// sv.mu must be held.
func (sv *supervisor) record(l *launch, pid int, exited *exitMsg) {
	if exited == nil {
		sv.children[pid] = &entry{owner: l.from, id: l.id, group: l.st.set&(setSetsid|setSetpgid) != 0}
	}
	l.from.send(l.id, &replyMsg{value: uint32(pid)})
	if exited != nil {
		l.from.send(l.id, exited)
	}
	if l.own != nil {
		go l.own.serve()
	}
}

// adopt returns spawn's add function for l: it records the child, unless
// the server began to stop meanwhile.
func (sv *supervisor) adopt(l *launch) func(pid int) error {
	return func(pid int) error {
		if sv.stopping {
			sv.children[pid] = &entry{} // reaped, reported to no one
			syscall.Kill(pid, syscall.SIGKILL)
			return ErrClosed
		}
		sv.record(l, pid, nil)
		return nil
	}
}

// handleFork creates a child for the request id from cl, from the pool
// when one waits there and the settings allow, cold otherwise. It owns fds
// and closes them. On success the reply is sent, before the child's exit
// event can be; on failure the caller replies with the error.
func (sv *supervisor) handleFork(cl *client, id uint32, m *forkMsg, fds []int) error {
	defer closeFds(fds)
	if lookup(m.name) == nil {
		return ErrUnknownFunc
	}
	l, err := sv.newLaunch(cl, id, m.flags, m.settings, fds, false)
	if err != nil {
		return err
	}
	if m.flags&flagServer != 0 {
		end, err := sv.childClient(l)
		if err != nil {
			return err
		}
		defer closeFds([]int{end})
		l.socket = append(l.socket, end)
	}
	a := &assignMsg{flags: m.flags&^(stdFlags|flagSettings) | l.st.flag(), nfiles: m.nfiles, serverPid: uint32(os.Getpid()), name: m.name, arg: m.arg, settings: l.st}
	if err := sv.forkChild(l, a); err != nil {
		if l.own != nil {
			l.own.release()
		}
		return err
	}
	return nil
}

// forkChild hands the assignment a to a pooled child when l's settings
// allow, or starts one cold.
func (sv *supervisor) forkChild(l *launch, a *assignMsg) error {
	frame := appendFrame(nil, 0, a)
	if len(frame)-headerLen > maxBody {
		return fmt.Errorf("forkserver: assignment of %d bytes exceeds the limit of %d", len(frame)-headerLen, maxBody)
	}
	if l.st.namespaces == 0 && l.st.set&setNoNewPrivs == 0 {
		// A pooled child was executed with the server's standard
		// descriptors and gets other ones in its assignment.
		pa := *a
		var stdio []int
		for i, fd := range l.std {
			if fd >= 0 {
				pa.flags |= flagStdin << i
				stdio = append(stdio, fd)
			}
		}
		if sv.assignPooled(appendFrame(nil, 0, &pa), concat(l.socket, stdio, l.files), l) {
			return nil
		}
	}
	ctl, childCtl, err := socketConnPair()
	if err != nil {
		return err
	}
	sys, err := sysProcAttr(&l.st, false)
	if err == nil {
		attr := &syscall.ProcAttr{Env: childEnv(), Files: append(stdFds(l.std), uintptr(childCtl)), Sys: sys}
		err = sv.spawn(sv.exe, os.Args, attr, l.st.set&setNoNewPrivs != 0, sv.adopt(l))
	}
	closeFds([]int{childCtl})
	if err == nil {
		// The child reads its assignment as soon as it runs; the frame
		// may be larger than the socket's buffer, so it is written only
		// now. Should this fail, the child has died, and its exit says so.
		writeMsg(ctl, frame, concat(l.socket, l.files))
	}
	ctl.Close()
	return err
}

// childEnv is the environment of a child executed to run a function.
func childEnv() []string { return append(os.Environ(), roleEnv+"=child") }

// childClient makes the connection the child of l gets, sets l.own to it
// and returns the child's end: its rights are those l's settings ask for,
// at most those of the requester, and it confines what is forked through
// it to those settings and l's standard descriptors.
func (sv *supervisor) childClient(l *launch) (int, error) {
	rights := Rights(l.st.rights)
	if rights == 0 {
		rights = rightsChild
	}
	if rights&^l.from.rights != 0 {
		return -1, ErrPermission
	}
	conn, end, err := socketConnPair()
	if err != nil {
		return -1, err
	}
	own := sv.newClient(conn, l.from, rights)
	own.base = &l.st
	for i, fd := range l.std {
		if fd >= 0 {
			if own.std[i], err = dupCloexec(fd); err != nil {
				own.release()
				syscall.Close(end)
				return -1, err
			}
		}
	}
	l.own = own
	return end, nil
}

// handleExec starts an external program for the request id from cl: its
// descriptors 0 to 2 are as a Fork's, Attr.Files follow from 3, and the
// socket, if asked for, comes after them. It owns fds and closes them.
func (sv *supervisor) handleExec(cl *client, id uint32, m *execMsg, fds []int) error {
	defer closeFds(fds)
	l, err := sv.newLaunch(cl, id, m.flags, m.settings, fds, true)
	if err != nil {
		return err
	}
	sys, err := sysProcAttr(&l.st, true)
	if err != nil {
		return err
	}
	env := os.Environ()
	if l.st.set&setEnv != 0 {
		env = l.st.env
	}
	attr := &syscall.ProcAttr{Dir: l.st.dir, Env: mergeEnv(env, l.st.extraEnv), Files: stdFds(l.std), Sys: sys}
	for _, fd := range concat(l.files, l.socket) {
		attr.Files = append(attr.Files, uintptr(fd))
	}
	return sv.spawn(m.path, m.argv, attr, l.st.set&setNoNewPrivs != 0, sv.adopt(l))
}

// stdFlags are the flags of the standard descriptors, 0 to 2 in order.
const stdFlags = flagStdin | flagStdout | flagStderr

// splitFds splits the descriptors of a Fork or Exec request by role.
func splitFds(flags uint32, fds []int) (socket, stdio, files []int) {
	next := 0
	if flags&flagSocket != 0 {
		socket = []int{fds[0]}
		next++
	}
	n := bits.OnesCount32(flags & stdFlags)
	return socket, fds[next : next+n], fds[next+n:]
}

// stdio returns the descriptors 0 to 2 for a child forked through cl: those
// the request gave, else those of the child cl was handed to, else -1 for
// the server's own.
func (cl *client) stdio(flags uint32, given []int) [3]int {
	std := cl.std
	for i := range std {
		if flags&(flagStdin<<i) != 0 {
			std[i], given = given[0], given[1:]
		}
	}
	return std
}

// stdFds returns the descriptors 0 to 2 of a cold child.
func stdFds(std [3]int) []uintptr {
	out := []uintptr{0, 1, 2}
	for i, fd := range std {
		if fd >= 0 {
			out[i] = uintptr(fd)
		}
	}
	return out
}

func concat(fds ...[]int) []int {
	var all []int
	for _, f := range fds {
		all = append(all, f...)
	}
	return all
}

// spawn executes path as attr says, from a thread with no_new_privs if nnp
// is set, then calls add with its pid, with sv.mu held, to record it in
// children. The reaper cannot run between the two, so every pid it reaps
// is already recorded.
func (sv *supervisor) spawn(path string, argv []string, attr *syscall.ProcAttr, nnp bool, add func(pid int) error) error {
	sv.forkMu.RLock()
	defer sv.forkMu.RUnlock()
	var pid int
	var err error
	forkExec := func() { pid, err = syscall.ForkExec(path, argv, attr) }
	if nnp {
		if terr := withNoNewPrivs(forkExec); terr != nil {
			return terr
		}
	} else {
		forkExec()
	}
	if err != nil {
		return os.NewSyscallError("fork/exec", err)
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return add(pid)
}
