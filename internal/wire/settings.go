package wire

import "encoding/binary"

// Bounds of the settings section and of an exec request.
const (
	MaxPath    = 4096
	MaxList    = 1024 // environment entries, arguments
	MaxGroups  = 256
	MaxIDMaps  = 32
	MaxRlimits = 32
	MaxLayers  = 16  // Landlock's own limit on stacked policies
	MaxRules   = 256 // paths in each list of a PathPolicy

	// MaxMemoryLimit bounds Settings.MemoryLimit, 1 PiB, so that the
	// child's data limit computed from it cannot overflow.
	MaxMemoryLimit = 1 << 50
)

// Settings are what a child is set up with beyond its descriptors. The
// Set bits say which of the optional ones apply.
type Settings struct {
	Set         uint32 // SetSetsid | ...
	Dir         string
	Chroot      string
	Env         []string // the whole environment if Set has SetEnv
	ExtraEnv    []string
	Uid, Gid    uint32 // if Set has SetCredential
	Groups      []uint32
	Namespaces  uint32 // Namespace bits
	UidMaps     []IDMap
	GidMaps     []IDMap
	Pdeathsig   uint32
	Rlimits     []Rlimit
	Rights      uint32      // of the child's connection to the server; 0 means the default
	PathLayers  []PathLayer // Landlock layers the request asks for (a confining connection holds its own as rulesets)
	Syscalls    uint32      // SyscallGroup bits denied
	Children    uint32      // the bound on children alive through that connection; 0: none of its own
	MemoryLimit uint64      // bytes of Go heap, at most MaxMemoryLimit; 0: none
}

// PathLayer is one PathPolicy.
type PathLayer struct{ ReadOnly, ReadWrite []string }

// Bits of Settings.Set.
const (
	SetSetsid uint32 = 1 << iota
	SetSetpgid
	SetEnv
	SetCredential
	SetNoNewPrivs
	setAll = SetSetsid | SetSetpgid | SetEnv | SetCredential | SetNoNewPrivs
)

// The bits the decoder accepts in Settings.Namespaces, Settings.Rights and
// Settings.Syscalls: every Namespace, Rights and SyscallGroup bit of the
// forkserver package, which checks that they agree.
const (
	AllNamespaces    uint32 = 1<<6 - 1
	AllRights        uint32 = 1<<4 - 1
	AllSyscallGroups uint32 = 1<<5 - 1
)

// IDMap is one IDMap of a user namespace.
type IDMap struct{ ContainerID, HostID, Size uint32 }

// Rlimit is one resource limit; Resource is an RLIMIT_* number.
type Rlimit struct {
	Resource uint32
	Cur, Max uint64
}

func (st *Settings) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, st.Set)
	b = appendString(b, st.Dir)
	b = appendString(b, st.Chroot)
	b = appendStrings(b, st.Env)
	b = appendStrings(b, st.ExtraEnv)
	b = binary.LittleEndian.AppendUint32(b, st.Uid)
	b = binary.LittleEndian.AppendUint32(b, st.Gid)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(st.Groups)))
	for _, g := range st.Groups {
		b = binary.LittleEndian.AppendUint32(b, g)
	}
	b = binary.LittleEndian.AppendUint32(b, st.Namespaces)
	for _, maps := range [][]IDMap{st.UidMaps, st.GidMaps} {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(maps)))
		for _, m := range maps {
			b = binary.LittleEndian.AppendUint32(b, m.ContainerID)
			b = binary.LittleEndian.AppendUint32(b, m.HostID)
			b = binary.LittleEndian.AppendUint32(b, m.Size)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, st.Pdeathsig)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(st.Rlimits)))
	for _, r := range st.Rlimits {
		b = binary.LittleEndian.AppendUint32(b, r.Resource)
		b = binary.LittleEndian.AppendUint64(b, r.Cur)
		b = binary.LittleEndian.AppendUint64(b, r.Max)
	}
	b = binary.LittleEndian.AppendUint32(b, st.Rights)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(st.PathLayers)))
	for _, l := range st.PathLayers {
		for _, list := range [][]string{l.ReadOnly, l.ReadWrite} {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(list)))
			for _, p := range list {
				b = appendString(b, p)
			}
		}
	}
	b = binary.LittleEndian.AppendUint32(b, st.Syscalls)
	b = binary.LittleEndian.AppendUint32(b, st.Children)
	return binary.LittleEndian.AppendUint64(b, st.MemoryLimit)
}

func (st *Settings) parse(d *decoder) {
	st.Set = d.flags(setAll)
	st.Dir = d.path()
	st.Chroot = d.path()
	st.Env = d.strings()
	st.ExtraEnv = d.strings()
	st.Uid = d.u32()
	st.Gid = d.u32()
	if n := d.count(MaxGroups, 4); n > 0 {
		st.Groups = make([]uint32, n)
		for i := range st.Groups {
			st.Groups[i] = d.u32()
		}
	}
	st.Namespaces = d.flags(AllNamespaces)
	for _, maps := range []*[]IDMap{&st.UidMaps, &st.GidMaps} {
		if n := d.count(MaxIDMaps, 12); n > 0 {
			*maps = make([]IDMap, n)
			for i := range *maps {
				(*maps)[i] = IDMap{d.u32(), d.u32(), d.u32()}
			}
		}
	}
	st.Pdeathsig = d.signal()
	if n := d.count(MaxRlimits, 20); n > 0 {
		st.Rlimits = make([]Rlimit, n)
		for i := range st.Rlimits {
			st.Rlimits[i] = Rlimit{d.u32(), d.u64(), d.u64()}
		}
	}
	st.Rights = d.flags(AllRights)
	if n := d.count(MaxLayers, 4); n > 0 {
		st.PathLayers = make([]PathLayer, n)
		for i := range st.PathLayers {
			for _, list := range []*[]string{&st.PathLayers[i].ReadOnly, &st.PathLayers[i].ReadWrite} {
				if n := d.count(MaxRules, 2); n > 0 {
					*list = make([]string, n)
					for j := range *list {
						(*list)[j] = d.path()
					}
				}
			}
		}
	}
	st.Syscalls = d.flags(AllSyscallGroups)
	st.Children = d.u32()
	if st.MemoryLimit = d.u64(); st.MemoryLimit > MaxMemoryLimit {
		d.fail("memory limit %d exceeds %d", st.MemoryLimit, uint64(MaxMemoryLimit))
	}
}

// Empty reports whether st asks for nothing.
func (st *Settings) Empty() bool {
	return st.Set == 0 && st.Dir == "" && st.Chroot == "" && len(st.Env) == 0 && len(st.ExtraEnv) == 0 &&
		len(st.Groups) == 0 && st.Namespaces == 0 && len(st.UidMaps) == 0 && len(st.GidMaps) == 0 &&
		st.Pdeathsig == 0 && len(st.Rlimits) == 0 && st.Rights == 0 && st.Children == 0 && len(st.PathLayers) == 0 && st.Syscalls == 0 &&
		st.MemoryLimit == 0
}

// Flag returns FlagSettings if st asks for anything, so that a frame
// carries a settings section only then.
func (st *Settings) Flag() uint32 {
	if st.Empty() {
		return 0
	}
	return FlagSettings
}
