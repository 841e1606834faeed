package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// fleetPrefix starts the full name of every FleetService method: the
// calls the Guard checks. Every other service passes untouched.
const fleetPrefix = "/hwheal.v1.FleetService/"

// methodRoles gives every FleetService method the least role that may
// call it. A method missing here needs Admin: a new RPC is closed until
// someone decides who may call it (a test fails until then).
var methodRoles = map[string]Role{
	hwhealv1.FleetService_ListNodes_FullMethodName:            Viewer,
	hwhealv1.FleetService_GetNode_FullMethodName:              Viewer,
	hwhealv1.FleetService_ListFaults_FullMethodName:           Viewer,
	hwhealv1.FleetService_GetFault_FullMethodName:             Viewer,
	hwhealv1.FleetService_WatchEvents_FullMethodName:          Viewer,
	hwhealv1.FleetService_ListActions_FullMethodName:          Viewer,
	hwhealv1.FleetService_GetAction_FullMethodName:            Viewer,
	hwhealv1.FleetService_GetRemediationStatus_FullMethodName: Viewer,
	hwhealv1.FleetService_ListAudit_FullMethodName:            Viewer,

	hwhealv1.FleetService_AcknowledgeFault_FullMethodName: Operator,
	hwhealv1.FleetService_ResolveFault_FullMethodName:     Operator,
	hwhealv1.FleetService_RequestAction_FullMethodName:    Operator,
	hwhealv1.FleetService_CancelAction_FullMethodName:     Operator,

	hwhealv1.FleetService_ApproveAction_FullMethodName: Approver,
	hwhealv1.FleetService_DenyAction_FullMethodName:    Approver,

	hwhealv1.FleetService_PauseRemediation_FullMethodName:  Admin,
	hwhealv1.FleetService_ResumeRemediation_FullMethodName: Admin,
}

// RequiredRole is the least role that may call the FleetService method
// fullMethod ("/hwheal.v1.FleetService/ListNodes"); listed is false for a
// method the table does not name, which needs Admin.
func RequiredRole(fullMethod string) (role Role, listed bool) {
	if r, ok := methodRoles[fullMethod]; ok {
		return r, true
	}
	return Admin, false
}

// noTokenMsg is what a fleet API call without a token is told.
const noTokenMsg = "no token: pass --token, HWHEAL_TOKEN or --token-file"

// Config configures a Guard.
type Config struct {
	Tokens *Tokens
	Logger *slog.Logger
	// Registerer takes the denial counter (nil: not registered).
	Registerer prometheus.Registerer
}

// Guard authenticates and authorizes fleet API calls.
type Guard struct {
	tokens *Tokens
	log    *slog.Logger
	denied *prometheus.CounterVec
}

// NewGuard returns a Guard over cfg.Tokens.
func NewGuard(cfg Config) (*Guard, error) {
	if cfg.Tokens.Len() == 0 {
		return nil, errors.New("auth: no tokens: the fleet API would be closed to everyone")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{
		tokens: cfg.Tokens,
		log:    cfg.Logger,
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "hwheal", Subsystem: "api", Name: "auth_denied_total",
			Help: "Fleet API calls refused: without a known token (unauthenticated) or by a user whose role is short (permission_denied), by method.",
		}, []string{"method", "reason"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(g.denied); err != nil {
			return nil, fmt.Errorf("auth: register metrics: %w", err)
		}
	}
	return g, nil
}

// UnaryInterceptor checks unary FleetService calls.
func (g *Guard) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, fleetPrefix) {
			return handler(ctx, req)
		}
		ctx, err := g.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor checks streaming FleetService calls (WatchEvents).
func (g *Guard) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !strings.HasPrefix(info.FullMethod, fleetPrefix) {
			return handler(srv, ss)
		}
		ctx, err := g.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identityStream) Context() context.Context { return s.ctx }

// authorize returns ctx with the caller's identity, or the status that
// refuses the call.
func (g *Guard) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	need, listed := RequiredRole(fullMethod)
	name := strings.TrimPrefix(fullMethod, fleetPrefix)
	label := name
	if !listed {
		label = "unlisted"
	}
	token, err := bearer(ctx)
	if err != nil {
		g.denied.WithLabelValues(label, "unauthenticated").Inc()
		g.log.Info("fleet API call refused: not authenticated", "method", name, "peer", peerAddr(ctx), "why", err.Error())
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	id, ok := g.tokens.Lookup(token)
	if !ok {
		g.denied.WithLabelValues(label, "unauthenticated").Inc()
		g.log.Info("fleet API call refused: not authenticated", "method", name, "peer", peerAddr(ctx), "why", "unknown token")
		return nil, status.Error(codes.Unauthenticated, "unknown token: pass one the collector's tokens file holds with --token, HWHEAL_TOKEN or --token-file")
	}
	if !id.Role.Includes(need) {
		g.denied.WithLabelValues(label, "permission_denied").Inc()
		g.log.Info("fleet API call refused: role too low", "method", name, "user", id.User, "role", id.Role.String(), "needs", need.String())
		return nil, status.Errorf(codes.PermissionDenied, "%s needs role %s; %s has %s", name, need, id.User, id.Role)
	}
	return NewContext(ctx, id), nil
}

// bearer is the token of "authorization: Bearer <token>".
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", errors.New(noTokenMsg)
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", errors.New(`authorization metadata must be "Bearer <token>": ` + noTokenMsg)
	}
	return token, nil
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
