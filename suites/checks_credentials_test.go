package suites

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestCredentialTrouble: each way an API server refuses a remote secret's credentials is named with its
// cause and fix. The errors are the ones client-go returns: a *url.Error wrapping the TLS verification
// error (as recorded on a local lab: `Get "https://127.0.0.1:20034/version?timeout=5s": tls: failed to
// verify certificate: x509: certificate signed by unknown authority`), and a StatusError for 401/403.
func TestCredentialTrouble(t *testing.T) {
	tlsErr := &url.Error{Op: "Get", URL: "https://127.0.0.1:20034/version?timeout=5s",
		Err: fmt.Errorf("tls: failed to verify certificate: %w", x509.UnknownAuthorityError{})}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{tlsErr, "the remote secret of c1 for c2 does not trust c2's API server at https://127.0.0.1:20034"},
		{apierrors.NewUnauthorized("Unauthorized"), "rejects the token in the remote secret of c1 (401 Unauthorized"},
		{apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "x", errors.New("no")), "forbids the account in the remote secret of c1"},
		{errors.New("something else"), "refuses the credentials in the remote secret of c1 (something else)"},
	} {
		got := credentialTrouble(tc.err, "c1", "c2", "https://127.0.0.1:20034")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%v:\n got %q\nwant %q", tc.err, got, tc.want)
		}
		if strings.Contains(got, "secret: ") {
			t.Errorf("%q reads as a secret field to the report redactor", got)
		}
	}
}
