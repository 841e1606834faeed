// Package auth owns who may call the collector's fleet API until mutual
// TLS arrives: the identities of a tokens file (token, user, role), the
// admin token a collector without one makes for itself, the roles and the
// table that gives each FleetService method the least role it needs, and
// the gRPC interceptors that authenticate a call, check its role and put
// the caller's Identity in its context. AgentService and the health
// service are not its business: they stay open until mutual TLS.
package auth

import (
	"context"
	"fmt"
	"strings"
)

// Role is what a user may do. Each role includes the ones before it.
type Role int

// Roles, least first. The zero value is no role: it includes nothing.
const (
	// Viewer reads: nodes, faults, events, actions, status, the audit log.
	Viewer Role = iota + 1
	// Operator acknowledges and resolves faults, and requests and cancels
	// actions.
	Operator
	// Approver approves and denies actions.
	Approver
	// Admin pauses and resumes remediation, and anything the table does
	// not name.
	Admin
)

var roleNames = [...]string{Viewer: "viewer", Operator: "operator", Approver: "approver", Admin: "admin"}

func (r Role) String() string {
	if r >= Viewer && r <= Admin {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Includes reports whether a user with role r may do what role need
// allows.
func (r Role) Includes(need Role) bool {
	return r >= Viewer && r <= Admin && need >= Viewer && r >= need
}

// ParseRole reads a role by its name, in any case.
func ParseRole(s string) (Role, error) {
	for r := Viewer; r <= Admin; r++ {
		if strings.EqualFold(s, roleNames[r]) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%q is not a role (use viewer, operator, approver or admin)", s)
}

// Identity is an authenticated caller.
type Identity struct {
	// User is the name the tokens file gives; it is what actions, notes
	// and the audit log record as the actor.
	User string
	Role Role
}

type ctxKey struct{}

// NewContext returns ctx carrying id. The interceptors do this for every
// fleet API call; tests of handlers do it by hand.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the caller's identity; ok is false when the call did
// not pass the interceptors.
func FromContext(ctx context.Context) (id Identity, ok bool) {
	id, ok = ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
