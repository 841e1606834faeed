package grpcutil

import (
	"errors"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ErrNoTLS is returned when a binary is started without transport security
// and without --insecure. Mutual TLS arrives with the authentication work;
// until then plaintext must be asked for by name.
var ErrNoTLS = errors.New("transport security is required: mutual TLS is not available in this version yet, so pass --insecure to run in plaintext (trusted networks and trials only)")

// InsecureWarning is what every binary logs when it runs with --insecure.
const InsecureWarning = "running without transport security (--insecure): anyone on the network can read and forge this traffic"

// TransportCredentials returns the credentials for a client or a server.
func TransportCredentials(insecureOK bool) (credentials.TransportCredentials, error) {
	if !insecureOK {
		return nil, ErrNoTLS
	}
	return insecure.NewCredentials(), nil
}
