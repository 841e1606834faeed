package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Defaults of a Step's zero fields.
const (
	DefaultStepTimeout = 5 * time.Minute
	// OutputBytes is how much of the end of a step's combined output is
	// reported.
	OutputBytes = 4 << 10
)

// Step is one command of a runbook.
type Step struct {
	// Name identifies the step in reports and in the failure message.
	Name string
	// Run is the command as argv. A bare first element is looked up in
	// the runbook's PATH.
	Run []string
	// Timeout bounds one attempt (default DefaultStepTimeout); the order's
	// timeout bounds the whole runbook.
	Timeout time.Duration
	// Retries is how many more times a failed attempt is tried.
	Retries int
	// RetryDelay is the wait before each retry.
	RetryDelay time.Duration
}

// Runbook runs its steps in order and stops at the first one that still
// fails after its retries.
type Runbook struct {
	Steps []Step
	// Path is the commands' PATH (default DefaultPath).
	Path string
	// Dir is the commands' working directory (default "/").
	Dir string
}

// Run implements Executor.
func (r *Runbook) Run(ctx context.Context, order *hwhealv1.ActionOrder, env Env, report func(*hwhealv1.ActionStep)) error {
	dry := env.DryRun || order.GetDryRun()
	for i, s := range r.Steps {
		if dry {
			report(&hwhealv1.ActionStep{
				Index: uint32(i), Name: s.Name, Command: slices.Clone(s.Run), Attempt: 1,
				Started: timestamppb.Now(), Duration: durationpb.New(0), ExitCode: -1, DryRun: true,
			})
			continue
		}
		if err := r.runStep(ctx, i, s, order, env, report); err != nil {
			return err
		}
	}
	return nil
}

// runStep runs step i with its retries.
func (r *Runbook) runStep(ctx context.Context, i int, s Step, order *hwhealv1.ActionOrder, env Env, report func(*hwhealv1.ActionStep)) error {
	var err error
	attempt := 1
	for ; ; attempt++ {
		var st *hwhealv1.ActionStep
		st, err = r.attempt(ctx, i, s, attempt, order, env)
		report(st)
		if err == nil {
			return nil
		}
		// The order's own end (its timeout, the agent stopping) is no
		// reason to try again.
		if ctx.Err() != nil || attempt > s.Retries {
			break
		}
		if s.RetryDelay > 0 {
			t := time.NewTimer(s.RetryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return &StepError{Index: i, Name: s.Name, Attempts: attempt,
					Err: fmt.Errorf("%w (while waiting to retry)", context.Cause(ctx))}
			case <-t.C:
			}
		}
	}
	return &StepError{Index: i, Name: s.Name, Attempts: attempt, Err: err}
}

// attempt runs a step's command once.
func (r *Runbook) attempt(ctx context.Context, i int, s Step, attempt int, order *hwhealv1.ActionOrder, env Env) (*hwhealv1.ActionStep, error) {
	started := time.Now()
	st := &hwhealv1.ActionStep{
		Index: uint32(i), Name: s.Name, Command: slices.Clone(s.Run), Attempt: uint32(attempt),
		Started: timestamppb.New(started), ExitCode: -1,
	}
	finish := func(err error) (*hwhealv1.ActionStep, error) {
		st.Duration = durationpb.New(time.Since(started))
		return st, err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultStepTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	res, err := runCommand(sctx, s.Run, environ(order, env, r.path(), s.Name, attempt), r.dir(), r.path())
	st.Output = res.output
	switch {
	case res.startErr != nil:
		st.Error = res.startErr.Error()
		return finish(fmt.Errorf("could not start: %w", res.startErr))
	case res.killed && sctx.Err() != nil:
		st.TimedOut = errors.Is(sctx.Err(), context.DeadlineExceeded)
		if ctx.Err() != nil {
			// The order ended, not the step: say which way.
			return finish(fmt.Errorf("killed: %w", context.Cause(ctx)))
		}
		return finish(fmt.Errorf("timed out after %s: %w", timeout, sctx.Err()))
	case err != nil:
		return finish(err)
	}
	st.ExitCode = int32(res.exitCode)
	if res.exitCode != 0 {
		return finish(fmt.Errorf("exit code %d", res.exitCode))
	}
	return finish(nil)
}

func (r *Runbook) path() string {
	if r.Path == "" {
		return DefaultPath
	}
	return r.Path
}

func (r *Runbook) dir() string {
	if r.Dir == "" {
		return "/"
	}
	return r.Dir
}

// cmdResult is how a command ended.
type cmdResult struct {
	// startErr: it could not start (not found, not executable, ...).
	startErr error
	// exitCode is valid when the command exited by itself.
	exitCode int
	// killed: the context ended it, or a signal did.
	killed bool
	// output is the end of its combined stdout and stderr.
	output string
}

// pipeDrainWait bounds the wait for the output pipe to close after the
// process group is killed: a process that left the group (setsid) may
// still hold it.
const pipeDrainWait = 2 * time.Second

// runCommand runs argv in a process group of its own, with stdout and
// stderr on one pipe, and kills the group when ctx ends and again once
// the command exits, so that nothing it started outlives it.
func runCommand(ctx context.Context, argv []string, env []string, dir, path string) (cmdResult, error) {
	if len(argv) == 0 || argv[0] == "" {
		return cmdResult{startErr: errors.New("empty command")}, nil
	}
	bin, err := lookPath(argv[0], path)
	if err != nil {
		return cmdResult{startErr: err}, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return cmdResult{startErr: fmt.Errorf("output pipe: %w", err)}, nil
	}
	defer pr.Close()
	// An *os.File is handed to the child as is: exec starts no copying
	// goroutine that Wait would wait for.
	cmd := &exec.Cmd{
		Path:        bin,
		Args:        argv,
		Env:         env,
		Dir:         dir,
		Stdout:      pw,
		Stderr:      pw,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return cmdResult{startErr: err}, nil
	}
	pw.Close()
	pgid := cmd.Process.Pid

	tail := &tailBuffer{max: OutputBytes}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(tail, pr)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var res cmdResult
	select {
	case err = <-waited:
	case <-ctx.Done():
		// The leader is not reaped before Wait returns, so its pid, the
		// group's id, is not reused by then.
		syscall.Kill(-pgid, syscall.SIGKILL)
		err = <-waited
		res.killed = true
	}
	// Whatever the leader left behind in its group goes with it (ESRCH
	// when nothing did).
	syscall.Kill(-pgid, syscall.SIGKILL)
	t := time.NewTimer(pipeDrainWait)
	select {
	case <-copied:
	case <-t.C:
		pr.Close()
		<-copied
	}
	t.Stop()
	res.output = tail.String()

	var ee *exec.ExitError
	switch {
	case err == nil:
		res.exitCode = 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.killed = true
			res.exitCode = -1
			if ctx.Err() == nil {
				return res, fmt.Errorf("killed by signal %s", ws.Signal())
			}
			return res, nil
		}
		res.exitCode = ee.ExitCode()
	default:
		return res, fmt.Errorf("wait: %w", err)
	}
	return res, nil
}

// lookPath finds name in path (a PATH list), not in the agent's own PATH;
// a name with a slash is used as it is.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", err
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %s", name, path)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", p)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > b.max {
		p = p[len(p)-b.max:]
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return n, nil
}

// String is the last max bytes as valid UTF-8 (a proto string must be):
// a character cut at the start is dropped, invalid bytes become '?'.
func (b *tailBuffer) String() string {
	p := b.buf
	if len(p) > b.max {
		p = p[len(p)-b.max:]
		for i := 0; i < 3 && len(p) > 0 && p[0]&0xC0 == 0x80; i++ {
			p = p[1:]
		}
	}
	return strings.ToValidUTF8(string(p), "?")
}
