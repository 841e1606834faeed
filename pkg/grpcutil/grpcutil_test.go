package grpcutil

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRecoverUnaryTurnsPanicIntoInternal(t *testing.T) {
	icpt := RecoverUnary(slog.New(slog.DiscardHandler))
	_, err := icpt(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if status.Code(err) != codes.Internal {
		t.Fatalf("code = %v, want Internal", status.Code(err))
	}
}

func TestRecoverStreamPassesErrorsThrough(t *testing.T) {
	icpt := RecoverStream(slog.New(slog.DiscardHandler))
	want := status.Error(codes.InvalidArgument, "bad")
	err := icpt(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Y"}, func(any, grpc.ServerStream) error { return want })
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	err = icpt(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Y"}, func(any, grpc.ServerStream) error { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic: code = %v, want Internal", status.Code(err))
	}
}

func TestTransportCredentialsRefusesWithoutInsecure(t *testing.T) {
	if _, err := TransportCredentials(false); !errors.Is(err, ErrNoTLS) {
		t.Fatalf("err = %v, want ErrNoTLS", err)
	}
	c, err := TransportCredentials(true)
	if err != nil || c == nil {
		t.Fatalf("insecure: %v, %v", c, err)
	}
}
