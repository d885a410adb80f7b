package kube

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// RESTClientGetter is the client's cluster as the RESTClientGetter Helm's action.Configuration takes
// (what kubectl's and helm's --kubeconfig flags build), without a kubeconfig file on disk.
type RESTClientGetter struct {
	c    *Client
	once sync.Once
	disc discovery.CachedDiscoveryInterface
	err  error
}

// RESTClientGetter returns the client's getter for Helm's actions: one per client, so the API discovery
// (and the OpenAPI schema Helm validates against) is fetched once for every release installed through it.
func (c *Client) RESTClientGetter() *RESTClientGetter {
	c.getterOnce.Do(func() { c.getter = &RESTClientGetter{c: c} })
	return c.getter
}

// ToRESTConfig implements genericclioptions.RESTClientGetter.
func (g *RESTClientGetter) ToRESTConfig() (*rest.Config, error) {
	return rest.CopyConfig(g.c.Config), nil
}

// ToDiscoveryClient implements genericclioptions.RESTClientGetter.
func (g *RESTClientGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	g.once.Do(func() {
		d, err := discovery.NewDiscoveryClientForConfig(g.c.Config)
		if err != nil {
			g.err = err
			return
		}
		g.disc = memory.NewMemCacheClient(d)
	})
	return g.disc, g.err
}

// ToRESTMapper implements genericclioptions.RESTClientGetter.
func (g *RESTClientGetter) ToRESTMapper() (meta.RESTMapper, error) {
	d, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	return restmapper.NewDeferredDiscoveryRESTMapper(d), nil
}

// ToRawKubeConfigLoader implements genericclioptions.RESTClientGetter: a kubeconfig of the client's
// server and credentials, so Helm's namespace defaulting and config reads work as with a file.
func (g *RESTClientGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	cfg := g.c.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters[g.c.Name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData, CertificateAuthority: cfg.CAFile,
		InsecureSkipTLSVerify: cfg.Insecure, TLSServerName: cfg.ServerName}
	kc.AuthInfos[g.c.Name] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData,
		ClientCertificate: cfg.CertFile, ClientKey: cfg.KeyFile, Token: cfg.BearerToken, TokenFile: cfg.BearerTokenFile}
	kc.Contexts[g.c.Name] = &clientcmdapi.Context{Cluster: g.c.Name, AuthInfo: g.c.Name}
	kc.CurrentContext = g.c.Name
	return clientcmd.NewDefaultClientConfig(*kc, nil)
}

// WaitEstablished waits until every CRD of manifest is established, then forgets the cached API
// discovery so the new kinds resolve.
func (c *Client) WaitEstablished(ctx context.Context, manifest string) error {
	objs, err := Decode(manifest)
	if err != nil {
		return err
	}
	var crds []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		}
	}
	if len(crds) == 0 {
		return nil
	}
	if err := c.waitEstablished(ctx, crds); err != nil {
		return err
	}
	c.mapper.Reset()
	return nil
}

// Invalidate forgets the discovered APIs (after CRDs were installed).
func (g *RESTClientGetter) Invalidate() {
	if d, err := g.ToDiscoveryClient(); err == nil {
		d.Invalidate()
	}
}
