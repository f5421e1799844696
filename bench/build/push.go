package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// changes says, per sample, which file's line the one-line change edits:
// the line with the sample's greeting, which the app serves.
var changes = map[string]struct{ file, greeting string }{
	"nodejs": {"server.js", "hello from"},
	"go":     {"main.go", "hello from"},
	"python": {"app.py", "hello from"},
	"static": {"index.html", "Hello from"},
}

// sampleResult is one sample's pushes: the first cold, the others cached.
type sampleResult struct {
	name   string
	pushes []*pushResult
}

// pushResult is one push, timed from the start of `git push` until the
// router serves the new release's page.
type pushResult struct {
	cold  bool
	live  time.Duration
	load  float64 // the 1-minute load average when the push started
	steps []step
	// From the steps; zero when a step was not seen.
	received, building, built, releasing, starting, switching time.Duration
	lifecycle                                                 map[string]time.Duration // detect, restore, build, export
	// platform is the build's own steps from its log: prepare, lifecycle,
	// import, cache, cleanup, and phases (the lifecycle's phases).
	platform map[string]time.Duration
}

func benchSample(cfg *config, d *daemon, name string) (*sampleResult, error) {
	ch, ok := changes[name]
	if !ok {
		return nil, fmt.Errorf("no one-line change known for sample %q", name)
	}
	repo := filepath.Join(d.work, "repos", name)
	if err := copyTree(filepath.Join(cfg.apps, name), repo); err != nil {
		return nil, err
	}
	git := func(args ...string) error { return runGit(repo, args...) }
	if err := git("init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	app := "bench-" + name
	res := &sampleResult{name: name}
	// After the one-line change of each cached push, the app serves "(push i)".
	for i := 0; i <= cfg.cached; i++ {
		// The one-line change: the greeting line gains a mark the bench
		// then waits to see served.
		mark := fmt.Sprintf("(push %d)", i)
		if err := editLine(filepath.Join(repo, ch.file), ch.greeting, mark); err != nil {
			return nil, err
		}
		if err := git("add", "-A"); err != nil {
			return nil, err
		}
		if err := git("commit", "-q", "-m", "bench "+mark); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "build-bench: %s push %d\n", name, i)
		p, err := d.push(app, repo, mark)
		if err != nil {
			return nil, err
		}
		p.cold = i == 0
		if log, err := d.skiffCmd(nil, "builds:output", app); err == nil {
			p.platform = platformSteps(string(log))
			lifecycleSteps(string(log), p.lifecycle)
			if m := platformRE.FindString(string(log)); m != "" {
				fmt.Fprintf(os.Stderr, "build-bench: %s push %d: %s\n", name, i, m)
			}
		}
		res.pushes = append(res.pushes, p)
	}
	if out, err := d.skiffCmd(nil, "apps:destroy", app, "--force"); err != nil {
		return nil, fmt.Errorf("apps:destroy: %v: %s", err, out)
	}
	return res, nil
}

// warmUp pushes the Procfile sample once and scales it to nothing.
func warmUp(cfg *config, d *daemon) error {
	repo := filepath.Join(d.work, "repos", "warm-up")
	if err := copyTree(filepath.Join(cfg.apps, "procfile"), repo); err != nil {
		return err
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "warm-up"}} {
		if err := runGit(repo, args...); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "build-bench: warm-up push")
	cmd := exec.Command("git", "-C", repo, "push", fmt.Sprintf("ssh://skiff@%s/warm-up", d.addr.SSH), "main")
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+d.gitSH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	// Scaled to nothing, not destroyed: its release keeps its image, and so
	// the run image's unpacked layers, which destroying the app let the
	// layer collector remove (each first sample's cold push then unpacked
	// them again, 0.7 to 7.9 s of its first start).
	if out, err := d.skiffCmd(nil, "ps:scale", "warm-up", "web=0", "worker=0"); err != nil {
		return fmt.Errorf("ps:scale warm-up: %v: %s", err, out)
	}
	return nil
}

// runGit runs git in repo as the bench's author.
func runGit(repo string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@skiff.bench",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@skiff.bench")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v: %s", args[0], err, out)
	}
	return nil
}

// editLine rewrites the first line of file containing greeting so that it
// carries mark, and only that line.
func editLine(file, greeting, mark string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.Contains(l, greeting) {
			lines[i] = markRE.ReplaceAllString(l, "")
			lines[i] = strings.Replace(lines[i], greeting, greeting+" "+mark, 1)
			return os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644)
		}
	}
	return fmt.Errorf("%s has no line with %q", file, greeting)
}

var markRE = regexp.MustCompile(` \(push \d+\)`)

// push pushes the repository's main and times it until the app's page
// shows mark.
func (d *daemon) push(app, repo, mark string) (*pushResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	p := &pushResult{load: loadAvg()}
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "push", "--force",
		fmt.Sprintf("ssh://skiff@%s/%s", d.addr.SSH, app), "main")
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+d.gitSH)
	var out bytes.Buffer
	liveAt := make(chan time.Duration, 1)
	t0 := time.Now()
	go func() {
		for ctx.Err() == nil {
			if body, err := d.get(app); err == nil && strings.Contains(body, mark) {
				liveAt <- time.Since(t0)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	steps, err := timedSteps(cmd, &out, "remote: ")
	if d.cfg.verbose {
		_, _ = os.Stderr.Write(out.Bytes())
	}
	if err != nil {
		return nil, fmt.Errorf("git push: %v\n%s", err, out.String())
	}
	select {
	case p.live = <-liveAt:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("the push succeeded but %q was not served within 30 s", mark)
	}
	p.steps = steps
	p.parse()
	return p, nil
}

var finishedRE = regexp.MustCompile(`^Build finished in [\d.]+s \((.*)\)`)

func (p *pushResult) parse() {
	p.lifecycle = map[string]time.Duration{}
	for _, s := range p.steps {
		first := func(d *time.Duration) {
			if *d == 0 {
				*d = s.at
			}
		}
		switch {
		case strings.HasPrefix(s.text, "Received "):
			first(&p.received)
		case strings.HasPrefix(s.text, "Building "):
			first(&p.building)
		case strings.HasPrefix(s.text, "Build finished"):
			first(&p.built)
			if m := finishedRE.FindStringSubmatch(s.text); m != nil {
				for _, part := range strings.Split(m[1], ", ") {
					k, v, _ := strings.Cut(part, " ")
					if f, err := strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64); err == nil {
						p.lifecycle[k] = time.Duration(f * float64(time.Second))
					}
				}
			}
		case strings.HasPrefix(s.text, "Releasing "):
			first(&p.releasing)
		case strings.HasPrefix(s.text, "Starting "):
			first(&p.starting)
		case strings.HasPrefix(s.text, "Switching traffic"):
			first(&p.switching)
		}
	}
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path) //nolint:gosec // G122: copying the repository's own sample apps
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
}

var platformRE = regexp.MustCompile(`platform: (.*) \(the lifecycle's phases ([\d.]+)s\)`)

// platformSteps reads the build log's line of the platform's own steps.
func platformSteps(log string) map[string]time.Duration {
	m := platformRE.FindStringSubmatch(log)
	if m == nil {
		return nil
	}
	out := map[string]time.Duration{}
	sec := func(v string) time.Duration {
		f, _ := strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64)
		return time.Duration(f * float64(time.Second))
	}
	for _, part := range strings.Split(m[1], ", ") {
		k, v, _ := strings.Cut(part, " ")
		out[k] = sec(v)
	}
	out["phases"] = sec(m[2])
	return out
}

var lifecycleRE = regexp.MustCompile(`lifecycle: (analyze [\d.]+s, [^\n]*)`)

// lifecycleSteps replaces the lifecycle's phases read from the push's
// output (to 0.1 s) with the build log's, to the millisecond, where the log
// has them; the log's analyze counts into restore, as the output's does.
func lifecycleSteps(log string, lc map[string]time.Duration) {
	m := lifecycleRE.FindStringSubmatch(log)
	if m == nil {
		return
	}
	ms := map[string]time.Duration{}
	for _, part := range strings.Split(m[1], ", ") {
		k, v, _ := strings.Cut(part, " ")
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64)
		if err != nil {
			return
		}
		ms[k] = time.Duration(f * float64(time.Second))
	}
	lc["detect"], lc["restore"], lc["build"], lc["export"] = ms["detect"], ms["analyze"]+ms["restore"], ms["build"], ms["export"]
}
