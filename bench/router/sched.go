package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sched asks where the machine's idle time goes while wrk runs through
// nginx and through skiff's router: it records the kernel's scheduler
// events (`perf sched record -a`) over a window of each run and reports,
// beside req/s, the idle share of the machine, the part of it during which
// another CPU had a runnable task waiting (work the kernel left stacked
// rather than on the idle CPU), how often wrk ran per request (each run a
// wake-up or a resumption after a preemption) and how long each process
// waited from runnable to running.
func sched(args []string) error {
	fs := newFlags("sched")
	out := fs.String("out", "bench/out", "output directory")
	reps := fs.Int("reps", 3, "repetitions (the two proxies alternating)")
	dur := fs.Duration("duration", 8*time.Second, "wrk duration per measurement")
	window := fs.Duration("window", 2*time.Second, "how long perf records, from the middle of each run")
	closing := fs.Bool("close", false, "Connection: close instead of keep-alive")
	workers := fs.Int("workers", runtime.NumCPU(), "nginx's worker processes and the router's GOMAXPROCS")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	if err := lookTools("linux-perf", "perf"); err != nil {
		return err
	}
	if *window > *dur-2*time.Second {
		return fmt.Errorf("-window must leave a second of the run on either side")
	}
	b, pair, err := startPair(*out, "sched", *workers)
	if err != nil {
		return err
	}
	defer b.close()
	for _, p := range pair {
		defer stop(p.cmd)
	}
	c := cell{name: "KA-small", path: "/small", conns: 50}
	if *closing {
		c = cell{name: "CLOSE-small", path: "/small", conns: 50, close: true}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("%s through nginx and skiff, %d reps, perf sched over %v of each %v run, %d CPUs; load average before: %s",
		c.name, *reps, *window, *dur, runtime.NumCPU(), load)
	got := map[string][]schedStats{}
	for rep := range *reps {
		order := pair
		if rep%2 == 1 {
			order = []*proxy{pair[1], pair[0]}
		}
		for _, p := range order {
			s, err := schedRun(b, p, c, *dur, *window, filepath.Join(b.work, "perf-"+p.name+".data"))
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			got[p.name] = append(got[p.name], s)
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("load average after: %s", load)
	fmt.Println("| proxy | req/s | idle % | idle while another CPU had a task waiting % | wrk runs per request | runnable to running, µs: wrk | proxy | upstream |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, p := range pair {
		ss := got[p.name]
		med := func(f func(schedStats) float64) float64 {
			v := make([]float64, len(ss))
			for i, s := range ss {
				v[i] = f(s)
			}
			return median(v)
		}
		fmt.Printf("| %s | %.0f | %.1f | %.1f | %.2f | %.0f | %.0f | %.0f |\n", p.name,
			med(func(s schedStats) float64 { return s.rps }),
			med(func(s schedStats) float64 { return 100 * s.idle }),
			med(func(s schedStats) float64 { return 100 * s.stranded }),
			med(func(s schedStats) float64 { return s.wrkRuns }),
			med(func(s schedStats) float64 { return s.delay["wrk"] }),
			med(func(s schedStats) float64 { return s.delay["proxy"] }),
			med(func(s schedStats) float64 { return s.delay["upstream"] }))
	}
	return nil
}

// schedStats is one run's figures: idle and stranded are shares of the
// machine's CPU time over the window; delay is the mean time, in µs, from
// a process's thread being made runnable (woken or preempted) to its
// running, by role.
type schedStats struct {
	rps, idle, stranded, wrkRuns float64
	delay                        map[string]float64
}

// schedRun runs wrk through p for d and records the scheduler over window
// from its middle.
func schedRun(b *bed, p *proxy, c cell, d, window time.Duration, data string) (schedStats, error) {
	cmd := exec.Command("wrk", wrkArgs(p, c, d)...)
	var wout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &wout, &wout
	if err := cmd.Start(); err != nil {
		return schedStats{}, err
	}
	time.Sleep((d - window) / 2)
	rec := exec.Command("perf", "sched", "record", "-a", "-o", data, "--", "sleep", strconv.FormatFloat(window.Seconds(), 'f', 3, 64))
	if o, err := rec.CombinedOutput(); err != nil {
		_ = cmd.Wait()
		return schedStats{}, fmt.Errorf("perf sched record: %v\n%s", err, o)
	}
	if err := cmd.Wait(); err != nil {
		return schedStats{}, fmt.Errorf("wrk: %v\n%s", err, wout.String())
	}
	var s schedStats
	if m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindStringSubmatch(wout.String()); m != nil {
		s.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if s.rps <= 0 {
		return schedStats{}, fmt.Errorf("wrk made no requests through %s (is it up? curl -H 'Host: bench.test' http://%s/small):\n%s", p.name, p.http, wout.String())
	}
	roles := map[int]string{cmd.Process.Pid: "wrk", b.upPids[0]: "upstream", p.cmd.Process.Pid: "proxy"}
	for _, child := range childPids(p.cmd.Process.Pid) { // nginx's workers
		roles[child] = "proxy"
	}
	th, err := exec.Command("perf", "sched", "timehist", "-i", data).Output()
	if err != nil {
		return schedStats{}, fmt.Errorf("perf sched timehist: %w", err)
	}
	t := parseTimehist(th, roles)
	span := t.end - t.start
	if span <= 0 {
		return schedStats{}, fmt.Errorf("perf sched recorded no events")
	}
	cpus := float64(runtime.NumCPU())
	s.idle = t.idle / (span * cpus)
	s.stranded = t.stranded() / (span * cpus)
	s.wrkRuns = float64(t.runs["wrk"]) / (s.rps * span)
	s.delay = map[string]float64{}
	for role, n := range t.runs {
		s.delay[role] = 1e6 * t.delays[role] / float64(n)
	}
	return s, nil
}

// childPids lists pid's children (nginx's workers under its master).
func childPids(pid int) []int {
	var out []int
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// timehist is what `perf sched timehist` says, in seconds: each CPU's idle
// intervals and the intervals during which a task on it was runnable and
// not running, and per role the runs and their summed wait to run.
type timehist struct {
	start, end float64
	idle       float64
	idles      map[int][][2]float64
	waits      map[int][][2]float64
	runs       map[string]int
	delays     map[string]float64
}

// parseTimehist reads lines of the form
//
//	time [cpu] comm[tid/pid] wait sch-delay run   (the last three in ms)
//
// one for each time a task leaves a CPU. The task ran for run before that
// and, before running, waited sch-delay from its wake-up (or preemption).
// roles names the processes of interest by pid.
func parseTimehist(out []byte, roles map[int]string) *timehist {
	t := &timehist{start: -1, idles: map[int][][2]float64{}, waits: map[int][][2]float64{}, runs: map[string]int{}, delays: map[string]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[1], "[") {
			continue
		}
		at, err1 := strconv.ParseFloat(f[0], 64)
		cpu, err2 := strconv.Atoi(strings.Trim(f[1], "[]"))
		ms := make([]float64, 3)
		var err3 error
		for i := range ms {
			if ms[i], err3 = strconv.ParseFloat(f[len(f)-3+i], 64); err3 != nil {
				break
			}
		}
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		delay, run := ms[1]/1e3, ms[2]/1e3
		in := at - run // when it started running
		if t.start < 0 {
			t.start = at
		}
		t.end = at
		comm := strings.Join(f[2:len(f)-3], " ")
		if strings.HasPrefix(comm, "<idle>") {
			t.idle += run
			t.idles[cpu] = append(t.idles[cpu], [2]float64{in, at})
			continue
		}
		if delay > 0 {
			t.waits[cpu] = append(t.waits[cpu], [2]float64{in - delay, in})
		}
		if role, ok := roles[commPid(comm)]; ok {
			t.runs[role]++
			t.delays[role] += delay
		}
	}
	return t
}

// commPid is the process id in perf's "comm[tid/pid]" or "comm[pid]".
func commPid(comm string) int {
	i := strings.LastIndexByte(comm, '[')
	if i < 0 {
		return 0
	}
	ids := strings.TrimSuffix(comm[i+1:], "]")
	if _, pid, ok := strings.Cut(ids, "/"); ok {
		ids = pid
	}
	n, _ := strconv.Atoi(ids)
	return n
}

// stranded is the time, summed over CPUs, that a CPU was idle while some
// other CPU had a task waiting to run.
func (t *timehist) stranded() float64 {
	var sum float64
	for cpu, idle := range t.idles {
		var others [][2]float64
		for c, w := range t.waits {
			if c != cpu {
				others = append(others, w...)
			}
		}
		busy := mergeIntervals(others)
		for _, iv := range idle {
			sum += overlap(iv, busy)
		}
	}
	return sum
}

// mergeIntervals sorts and joins overlapping intervals.
func mergeIntervals(iv [][2]float64) [][2]float64 {
	iv = slices.Clone(iv)
	sort.Slice(iv, func(i, j int) bool { return iv[i][0] < iv[j][0] })
	var out [][2]float64
	for _, x := range iv {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

// overlap is how much of iv the merged, sorted intervals cover.
func overlap(iv [2]float64, merged [][2]float64) float64 {
	i := sort.Search(len(merged), func(i int) bool { return merged[i][1] > iv[0] })
	var sum float64
	for ; i < len(merged) && merged[i][0] < iv[1]; i++ {
		sum += min(iv[1], merged[i][1]) - max(iv[0], merged[i][0])
	}
	return sum
}
