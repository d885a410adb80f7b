package istio

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

// meshCA returns every cluster's cacerts directory, generating the mesh roots and the intermediates
// that do not exist yet (kept in the lab's state, 0600, so a converging up reuses them).
func (in *Installer) meshCA() (map[string]string, error) {
	roots := map[string]*pki.CA{}
	shared := in.S.Istio.Federation != nil && in.S.Istio.Federation.Trust == scenario.TrustSharedRoot
	for _, m := range in.S.Meshes {
		dir, name := filepath.Join(in.Dir, "pki", "meshes", m.ID), m.TrustDomain
		if shared {
			dir, name = filepath.Join(in.Dir, "pki", "shared-root"), "federation"
		}
		root, err := loadOrMakeRoot(dir, name)
		if err != nil {
			return nil, fmt.Errorf("root of mesh %s: %w", m.ID, err)
		}
		roots[m.ID] = root
	}
	dirs := map[string]string{}
	for _, c := range in.S.Clusters {
		dir := in.cacertsDir(c.Name)
		dirs[c.Name] = dir
		if existing, err := pki.ReadCACerts(dir); err == nil && existing.Verify() == nil {
			continue
		}
		root := roots[c.Mesh]
		inter, err := pki.NewIntermediate(root, c.Name, 0)
		if err != nil {
			return nil, err
		}
		if err := pki.NewCACerts(inter, root).Write(dir); err != nil {
			return nil, err
		}
	}
	return dirs, nil
}

func (in *Installer) cacertsDir(cluster string) string {
	return filepath.Join(in.Dir, "pki", "clusters", cluster, "cacerts")
}

func loadOrMakeRoot(dir, trustDomain string) (*pki.CA, error) {
	certPEM, errC := os.ReadFile(filepath.Join(dir, pki.RootCertFile))
	keyPEM, errK := os.ReadFile(filepath.Join(dir, "root-key.pem"))
	if errC == nil && errK == nil {
		cert, err := pki.FirstCert(certPEM)
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(keyPEM)
		if block == nil {
			return nil, errors.New("root-key.pem holds no key")
		}
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		return &pki.CA{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
	}
	root, err := pki.NewRoot(trustDomain, 0)
	if err != nil {
		return nil, err
	}
	if err := state.WriteFile(filepath.Join(dir, pki.RootCertFile), root.CertPEM); err != nil {
		return nil, err
	}
	return root, state.WriteFile(filepath.Join(dir, "root-key.pem"), root.KeyPEM)
}

func sortStrings(s []string) { sort.Strings(s) }

// PrepareCA makes (or reuses) the mesh roots and every cluster's intermediate, as `up` does.
func (in *Installer) PrepareCA() error {
	_, err := in.meshCA()
	return err
}
