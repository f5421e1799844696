package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPairedRatio: each repetition's ratio is against nginx in the same
// repetition, so a machine that doubles its speed between repetitions
// does not move it, where the ratio of the two medians would.
func TestPairedRatio(t *testing.T) {
	var rs []result
	for rep, speed := range []float64{1, 2, 4} {
		rs = append(rs,
			result{Cell: "KA-small", Proxy: "nginx", Rep: rep, RPS: 1000 * speed},
			result{Cell: "KA-small", Proxy: "skiff", Rep: rep, RPS: 900 * speed * map[int]float64{0: 1, 1: 1.2, 2: 1}[rep]},
			result{Cell: "CLOSE-small", Proxy: "skiff", Rep: rep, RPS: 1}, // another cell: not counted
		)
	}
	rps := func(r result) float64 { return r.RPS }
	if got, want := pairedRatio(rs, "KA-small", "skiff", rps), "0.90 [0.90–1.08]"; got != want {
		t.Errorf("skiff: %q, want %q", got, want)
	}
	if got, want := pairedRatio(rs, "KA-small", "nginx", rps), "1.00"; got != want {
		t.Errorf("nginx: %q, want %q", got, want)
	}
	if got, want := pairedRatio(rs, "CLOSE-small", "skiff", rps), "–"; got != want { // no nginx to compare with
		t.Errorf("a cell without nginx: %q, want %q", got, want)
	}
}

// TestMarkdownFromARun renders a run's results as the table, with the
// machine's stolen share.
func TestMarkdownFromARun(t *testing.T) {
	rs := []result{
		{Cell: "KA-small", Proxy: "nginx", Rep: 0, RPS: 10000, P99ms: 2, CPUusReq: 40, IdlePct: 10, StealPct: 30},
		{Cell: "KA-small", Proxy: "skiff", Rep: 0, RPS: 11000, P99ms: 1, CPUusReq: 36, IdlePct: 12, StealPct: 20},
	}
	js, _ := json.Marshal(rs)
	var back []result
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	md := markdown(back, []string{"nginx", "skiff"}, []cell{{name: "KA-small"}}, 1, 0, 2, "0.1", "0.2")
	for _, want := range []string{"| KA-small | skiff | 11000 | 1.10 | 0.00 | 1.00 | 0.50 | 36.0 | 0.90 |", "| 12.0, 20.0 % |"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}
