//go:build linux || darwin

package forkserver

import (
	"fmt"
	"os"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// reapExited collects every child that has exited and sends each exit to the
// connection that asked for the child. It holds sv.forkMu, so that every
// pid it reaps has been recorded, and sv.mu while it waits, so that a pid
// stays in the table until its process is gone for good: a signal sent
// under sv.mu can never reach a reused pid.
func (sv *supervisor) reapExited() {
	sv.forkMu.Lock()
	defer sv.forkMu.Unlock()
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sweep := sv.dying > 0 || sv.strays > 0
	for {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		pid, err := wait4(-1, &ws, syscall.WNOHANG, &ru)
		if err != nil || pid <= 0 {
			break
		}
		if sv.reaped(pid, ws, &ru) {
			sweep = true
		}
	}
	sv.afterReaping(sweep)
}

// reaped sends the exit of pid, reaped with status ws and usage ru, to
// whom it concerns, and reports whether it was killed for its owner's end,
// so that what it left behind must be swept. sv.mu must be held.
func (sv *supervisor) reaped(pid int, ws syscall.WaitStatus, ru *syscall.Rusage) (killed bool) {
	e, ok := sv.children[pid]
	if !ok {
		return false
	}
	delete(sv.children, pid)
	if e.killed {
		sv.dying-- // what it leaves behind is now the server's: sweep
	}
	switch {
	case e.owner != nil:
		if e.warm != nil { // it died unassigned: it is replaced
			e.warm.handed--
			go sv.refill()
		}
		e.owner.unreserve()
		e.owner.exited(e.id, e.exit, exitToMsg(pid, ws, ru))
	case e.held != nil: // finish decides
		e.held.exit = exitToMsg(pid, ws, ru)
	case e.pooled != nil && e.pooled.taken: // assignPooled decides
		e.pooled.exit = exitToMsg(pid, ws, ru)
	case e.pooled != nil:
		sv.leftPool(pid) // it died while waiting: nobody to tell
	}
	// Only now, as waking its waiter costs a wake-up of one of the
	// runtime's threads, which the requester need not wait for.
	if e.gone != nil {
		close(e.gone)
	}
	return e.killed
}

// afterReaping does what reaping makes due: pooled children handed to
// connections an exit made room for, strays killed if sweep, and the
// callers of whenIdle told once nothing is left. sv.mu must be held, and
// sv.forkMu too if sweep.
func (sv *supervisor) afterReaping(sweep bool) {
	sv.handOffPooled()
	if sweep {
		sv.strays = sv.killStrays()
	}
	if len(sv.children) == 0 && sv.strays == 0 {
		for _, ch := range sv.idle {
			close(ch)
		}
		sv.idle = nil
	}
}

func exitToMsg(pid int, ws syscall.WaitStatus, ru *syscall.Rusage) *wire.Exit {
	return &wire.Exit{Pid: uint32(pid), Status: uint32(ws), Rusage: [18]int64{
		int64(ru.Utime.Sec), int64(ru.Utime.Usec), int64(ru.Stime.Sec), int64(ru.Stime.Usec),
		int64(ru.Maxrss), int64(ru.Ixrss), int64(ru.Idrss), int64(ru.Isrss),
		int64(ru.Minflt), int64(ru.Majflt), int64(ru.Nswap), int64(ru.Inblock),
		int64(ru.Oublock), int64(ru.Msgsnd), int64(ru.Msgrcv), int64(ru.Nsignals),
		int64(ru.Nvcsw), int64(ru.Nivcsw),
	}}
}

func exitFromMsg(m *wire.Exit) *Exit {
	e := &Exit{Pid: int(m.Pid), Status: syscall.WaitStatus(m.Status)}
	ru := &e.Rusage
	v := m.Rusage
	set(&ru.Utime.Sec, v[0])
	set(&ru.Utime.Usec, v[1])
	set(&ru.Stime.Sec, v[2])
	set(&ru.Stime.Usec, v[3])
	set(&ru.Maxrss, v[4])
	set(&ru.Ixrss, v[5])
	set(&ru.Idrss, v[6])
	set(&ru.Isrss, v[7])
	set(&ru.Minflt, v[8])
	set(&ru.Majflt, v[9])
	set(&ru.Nswap, v[10])
	set(&ru.Inblock, v[11])
	set(&ru.Oublock, v[12])
	set(&ru.Msgsnd, v[13])
	set(&ru.Msgrcv, v[14])
	set(&ru.Nsignals, v[15])
	set(&ru.Nvcsw, v[16])
	set(&ru.Nivcsw, v[17])
	return e
}

// set stores v in a field whose width differs between systems.
func set[T ~int32 | ~int64](p *T, v int64) { *p = T(v) }

// exitPipe checks that fd, received with a request, is a pipe, and makes
// it non-blocking: the server writes to it with notifyPipe.
func exitPipe(fd int) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return fmt.Errorf("%w: the exit descriptor is not a pipe", wire.ErrMalformed)
	}
	return os.NewSyscallError("setnonblock", syscall.SetNonblock(fd, true))
}

// notifyPipe writes m's frame to the exit pipe fd without blocking. A frame is
// smaller than PIPE_BUF, so it is written whole or not at all: a requester
// that never reads its pipe loses what does not fit, never the server's
// time.
func notifyPipe(fd int, id uint32, m wire.Message) {
	b := wire.AppendFrame(nil, id, m)
	ignoringEINTR(func() error {
		_, err := syscall.Write(fd, b)
		return err
	})
}
