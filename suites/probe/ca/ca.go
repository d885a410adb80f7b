// Package ca is the certificate probe: it asks an istiod's CA (IstioCertificateService on the TLS xDS
// port) for a workload certificate as a pod's agent would, authenticated by a Kubernetes token with the
// istio-ca audience.
package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"
)

// Request is a workload certificate request.
type Request struct {
	// Addr is istiod's TLS xDS/CA address (15012).
	Addr string
	// Roots verify istiod's serving certificate (the mesh root).
	Roots []byte
	// Token is a service-account token with audience istio-ca.
	Token string
	// ClusterID names the cluster the token comes from (istiod reviews it there).
	ClusterID string
	// SPIFFEID is the identity asked for.
	SPIFFEID string
}

// Certificate asks for a certificate and returns the chain, leaf first.
func Certificate(ctx context.Context, r Request) ([]*x509.Certificate, error) {
	chain, _, err := CertificateAndKey(ctx, r)
	return chain, err
}

// CertificateAndKey is Certificate, also returning the leaf's private key.
func CertificateAndKey(ctx context.Context, r Request) ([]*x509.Certificate, *ecdsa.PrivateKey, error) {
	chain, key, err := certificate(ctx, r)
	return chain, key, err
}

func certificate(ctx context.Context, r Request) ([]*x509.Certificate, *ecdsa.PrivateKey, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(r.Roots) {
		return nil, nil, errors.New("no root to verify istiod with")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(r.SPIFFEID)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(r.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "istiod.istio-system.svc"})))
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.Token, "ClusterID", r.ClusterID)
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &pb.IstioCertificateRequest{
		Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})), ValidityDuration: 3600,
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{}},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("CreateCertificate at %s: %w", r.Addr, err)
	}
	var chain []*x509.Certificate
	for _, c := range resp.CertChain {
		rest := []byte(c)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, err
			}
			chain = append(chain, cert)
		}
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("istiod returned no certificate")
	}
	return chain, key, nil
}

// VerifyUnder checks that a chain's leaf verifies under roots (the chain's own intermediates may be
// used) and carries spiffeID.
func VerifyUnder(chain []*x509.Certificate, roots []byte, spiffeID string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return errors.New("no roots")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return err
	}
	var uris []string
	for _, u := range chain[0].URIs {
		uris = append(uris, u.String())
	}
	if len(uris) != 1 || uris[0] != spiffeID {
		return fmt.Errorf("leaf identity %s, want %s", strings.Join(uris, ","), spiffeID)
	}
	return nil
}
