package main

import (
	"math"
	"testing"
)

// TestTimehist: idle time on one CPU counts as stranded only while another
// CPU has a task waiting to run (woken or preempted, not yet running), and
// each role's runs and waits are summed by process id, threads included.
func TestTimehist(t *testing.T) {
	out := []byte(`           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
    100.000000 [0000]  perf[9]                              0.000      0.000      0.000
    100.100000 [0000]  <idle>                               0.000      0.000    100.000
    100.200000 [0001]  wrk[7/5]                             0.000     50.000    150.000
    100.300000 [0000]  router.test[12/11]                   0.000     20.000     40.000
    100.400000 [0001]  Web Content[13]                      1.000      0.000    100.000
    100.400000 [0000]  <idle>                               0.000      0.000    100.000
`)
	// CPU 0 idle over 100.0-100.1 and 100.3-100.4; CPU 1 had wrk waiting
	// over 100.0-100.05 (woken 50 ms before it ran at 100.05); CPU 0's
	// router.test waited over 100.24-100.26, when CPU 1 was not idle.
	th := parseTimehist(out, map[int]string{5: "wrk", 11: "proxy"})
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(th.idle, 0.2) {
		t.Errorf("idle %v s, want 0.2", th.idle)
	}
	if got := th.stranded(); !near(got, 0.05) {
		t.Errorf("stranded %v s, want 0.05", got)
	}
	if th.runs["wrk"] != 1 || !near(th.delays["wrk"], 0.05) || th.runs["proxy"] != 1 || !near(th.delays["proxy"], 0.02) {
		t.Errorf("runs %v delays %v", th.runs, th.delays)
	}
	if !near(th.end-th.start, 0.4) {
		t.Errorf("span %v", th.end-th.start)
	}
}
