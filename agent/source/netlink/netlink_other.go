//go:build !linux

package netlink

import (
	"context"

	"github.com/hwheal/hwheal/agent/source"
)

const unsupported = "rtnetlink link events need Linux"

// Run says once that there is nothing to read and returns.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	if s.invalid != nil {
		return s.invalid
	}
	s.log.Info(unsupported + ", source stopped")
	return nil
}

// Probe reports the source unavailable.
func (s *Source) Probe(ctx context.Context) source.Probe {
	return source.Probe{Source: Name, Unavailable: unsupported}
}
