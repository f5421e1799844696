package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// report renders the tables: builder:create's steps, every push with its
// phases, and per sample the cold push against the cached median.
func report(results []*sampleResult, create []step, load loadStats, started time.Time) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "bench/build/run.sh, %s, %s (%d CPUs), load average %.1f on average during the run (%.1f to %.1f)\n\n",
		started.UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), load.mean, load.min, load.max)

	b.WriteString("builder:create, per step (the time each step took):\n\n| step | s |\n|---|---:|\n")
	var prev time.Duration
	for i, s := range create {
		if i > 0 {
			fmt.Fprintf(&b, "| %s | %.1f |\n", create[i-1].text, (s.at - prev).Seconds())
		}
		prev = s.at
	}
	if len(create) > 0 {
		fmt.Fprintf(&b, "| total | %.1f |\n", create[len(create)-1].at.Seconds())
	}

	b.WriteString("\nEvery push, in " + unit() + ": live = from `git push` until the router serves the new page; " +
		"receive = until the build starts; build = skiff's build step, of which the lifecycle's detect, restore, " +
		"build (the buildpacks' bin/build) and export, and the rest (source, sandbox, image import); release = until " +
		"the new instance starts; start = until it accepts connections; switch = until the router serves it; " +
		"fixed = live minus the buildpacks' build and the instance's start.\n\n")
	b.WriteString("| sample | push | load | live | receive | build | detect | restore | bin/build | export | rest | release | start | switch | fixed |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		for i, p := range r.pushes {
			kind := "cold"
			if !p.cold {
				kind = fmt.Sprintf("cached %d", i)
			}
			lc := p.lifecycle
			build := p.built - p.building
			rest := build - lc["detect"] - lc["restore"] - lc["build"] - lc["export"]
			fmt.Fprintf(&b, "| %s | %s | %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				r.name, kind, p.load, sec(p.live), sec(p.building), sec(build), sec(lc["detect"]), sec(lc["restore"]),
				sec(lc["build"]), sec(lc["export"]), sec(rest), sec(p.starting-p.built), sec(p.switching-p.starting),
				sec(p.live-p.switching), sec(p.fixed()))
		}
	}

	b.WriteString("\nPer sample: the cold push, the median of the cached pushes, their ratio (goal: at most 25 %), " +
		"and the median fixed cost of the cached pushes (goal: under 1.5 s).\n\n")
	b.WriteString("| sample | cold live | cached live p50 | cached / cold | cached fixed p50 |\n|---|---:|---:|---:|---:|\n")
	for _, r := range results {
		if len(r.pushes) < 2 {
			continue
		}
		cold := r.pushes[0]
		var lives, fixed []time.Duration
		for _, p := range r.pushes[1:] {
			lives = append(lives, p.live)
			fixed = append(fixed, p.fixed())
		}
		med := median(lives)
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f %% | %s |\n", r.name, sec(cold.live), sec(med),
			100*med.Seconds()/cold.live.Seconds(), sec(median(fixed)))
	}
	b.WriteString("\nskiff's fixed cost per phase, the median of the cached pushes, in " + unit() + ": receive (SSH, git, the hook); " +
		"the build's prepare (source, cache mount, image loans), sandbox (runc around the lifecycle), the lifecycle's " +
		"detect, restore and export, import (into the store); release " +
		"(the release's records until the instance starts); switch (until the router serves it).\n\n")
	// Keeping the cache and removing the build's container and scratch
	// space come after the build, off the push's path (build/settle.go).
	cols := []string{"receive", "prepare", "sandbox", "detect", "restore", "export", "import", "release", "switch"}
	b.WriteString("| sample | " + strings.Join(cols, " | ") + " | fixed |\n|---|" + strings.Repeat("---:|", len(cols)+1) + "\n")
	for _, r := range results {
		if len(r.pushes) < 2 {
			continue
		}
		fmt.Fprintf(&b, "| %s |", r.name)
		for _, c := range append(cols, "fixed") {
			var ds []time.Duration
			for _, p := range r.pushes[1:] {
				ds = append(ds, p.phase(c))
			}
			fmt.Fprintf(&b, " %s |", sec(median(ds)))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// phase is one column of the fixed-cost table.
func (p *pushResult) phase(name string) time.Duration {
	pl := p.platform
	switch name {
	case "receive":
		return p.building
	case "sandbox":
		// runc create (with the network), start, the lifecycle's run
		// outside its phases, and delete.
		return pl["create"] + pl["start"] + pl["lifecycle"] + pl["delete"] - pl["phases"]
	case "prepare":
		// And the wait for the source beyond runc's create, which it
		// overlaps.
		return pl["prepare"] + pl["inputs"]
	case "detect", "restore", "export":
		return p.lifecycle[name]
	case "release":
		return p.starting - p.built
	case "switch":
		return p.live - p.switching
	case "fixed":
		return p.fixed()
	}
	return pl[name]
}

// fixed is the push's time to live minus what skiff does not control: the
// buildpacks' bin/build and the instance's start until it accepts
// connections (the app's own start, with the container's).
func (p *pushResult) fixed() time.Duration {
	return p.live - p.lifecycle["build"] - (p.switching - p.starting)
}

// inMS makes the tables' durations milliseconds (-ms) instead of seconds
// to 0.1 s, for pushes whose phases are tens of milliseconds.
var inMS bool

func sec(d time.Duration) string {
	if inMS {
		return fmt.Sprintf("%d", d.Round(time.Millisecond).Milliseconds())
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}

// unit names sec's unit in the tables' captions.
func unit() string {
	if inMS {
		return "milliseconds"
	}
	return "seconds"
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

type loadStats struct{ mean, min, max float64 }

type loadSampler struct {
	mu      sync.Mutex
	samples []float64
	done    chan struct{}
}

// startLoadSampler reads the load average every 5 seconds until stop.
func startLoadSampler() *loadSampler {
	s := &loadSampler{done: make(chan struct{})}
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			s.mu.Lock()
			s.samples = append(s.samples, loadAvg())
			s.mu.Unlock()
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *loadSampler) stop() loadStats {
	close(s.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := loadStats{min: 1e9}
	for _, v := range s.samples {
		st.mean += v / float64(len(s.samples))
		st.min, st.max = min(st.min, v), max(st.max, v)
	}
	return st
}
