package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dist summarises latencies in milliseconds.
type dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarise(d []time.Duration) dist {
	if len(d) == 0 {
		return dist{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		i = min(max(i, 0), len(s)-1)
		return ms(s[i])
	}
	return dist{N: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// procStat is a process's resident memory (now and its peak) and CPU time so far, from /proc.
type procStat struct {
	RSSBytes     int64
	PeakRSSBytes int64
	CPU          time.Duration
}

func readProc(pid int) (procStat, error) {
	var st procStat
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return st, err
	}
	kb := func(rest string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return n * 1024
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			st.RSSBytes = kb(rest)
		} else if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			st.PeakRSSBytes = kb(rest)
		}
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, err
	}
	// Fields after the command name (which may hold spaces) start at ")": utime and stime
	// are fields 14 and 15 of the line, 12 and 13 after it.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) > 12 {
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		// USER_HZ is 100 on Linux.
		st.CPU = time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return st, nil
}

// machineCPU is the CPU time of every process on the machine and the machine's busy
// time, from /proc: where a phase's CPU went (bridge, homeserver, PostgreSQL, this bench's
// clients, the kernel's writeback), on a machine they all share.
type machineCPU struct {
	byPID map[int]procCPU
	busy  time.Duration
}

// procCPU is one process's command name and CPU time so far.
type procCPU struct {
	command string
	cpu     time.Duration
}

func readMachineCPU() machineCPU {
	m := machineCPU{byPID: map[int]procCPU{}}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		line := string(stat)
		open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(line[end+1:])
		if len(fields) <= 12 {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		command := line[open+1 : end]
		// A kernel worker's name changes with the work it does: they count as one.
		if strings.HasPrefix(command, "kworker/") {
			command = "kworker"
		}
		m.byPID[pid] = procCPU{command: command, cpu: time.Duration(utime+stime) * 10 * time.Millisecond}
	}
	if stat, err := os.ReadFile("/proc/stat"); err == nil {
		first, _, _ := strings.Cut(string(stat), "\n")
		// cpu user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
		for i, f := range strings.Fields(first)[1:] {
			n, _ := strconv.ParseInt(f, 10, 64)
			if i != 3 && i != 4 && i < 8 {
				m.busy += time.Duration(n) * 10 * time.Millisecond
			}
		}
	}
	return m
}

// since is the share of one core each command used from before until m, over wall (the
// commands under 1% left out), and the machine's busy share (100 per core).
func (m machineCPU) since(before machineCPU, wall time.Duration) (map[string]float64, float64) {
	if wall <= 0 {
		return nil, 0
	}
	used := map[string]time.Duration{}
	for pid, p := range m.byPID {
		used[p.command] += p.cpu - before.byPID[pid].cpu
	}
	pct := map[string]float64{}
	for command, cpu := range used {
		if p := 100 * float64(cpu) / float64(wall); p >= 1 {
			pct[command] = p
		}
	}
	return pct, 100 * float64(m.busy-before.busy) / float64(wall)
}
