package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a program started in a process group of its own, so that it
// and anything it starts can be stopped together.
type Process struct {
	Name string
	// Log is the file that has its standard output and error.
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Launch starts path with args, its output appended to logPath.
func Launch(name, path string, args []string, logPath string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: log: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's id, also its process group's.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited says whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, waits up to grace for the
// process to exit, then sends SIGKILL to the group. It returns an error if
// the process had to be killed.
func (p *Process) Stop(grace time.Duration) error {
	pgid := p.PID()
	if exited, _ := p.Exited(); exited {
		// Children it left behind go too.
		syscall.Kill(-pgid, syscall.SIGKILL)
		return nil
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		syscall.Kill(-pgid, syscall.SIGKILL)
		return nil
	case <-time.After(grace):
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return errors.New(p.Name + ": killed, it did not stop within " + grace.String() + " of SIGTERM")
}
