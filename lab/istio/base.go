package istio

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/lab/scenario"
)

// Names Istio and istioctl use.
const (
	// NetworkLabel is the label that gives a namespace, pod or gateway Service its network.
	NetworkLabel = "topology.istio.io/network"
	// ControlPlaneClustersAnnotation names the clusters whose istiod manages a remote.
	ControlPlaneClustersAnnotation = "topology.istio.io/controlPlaneClusters"
	// ReaderServiceAccount is the identity remote secrets carry.
	ReaderServiceAccount = "istio-reader-service-account"
	// ReaderTokenSecret is the token Secret istioctl create-remote-secret makes for it.
	ReaderTokenSecret = ReaderServiceAccount + "-istio-remote-secret-token"
	// CACertsSecret is the plugged-in CA Secret istiod reads.
	CACertsSecret = "cacerts"
	// LabLabel names, on the cacerts Secret, the mclab lab that installed the mesh.
	LabLabel = "mclab.dev/lab"
)

// installBase creates istio-system (network label; controlPlaneClusters on remotes), installs the base
// chart as Helm release istio-base (CRDs, the reader service account), applies the cacerts Secret and
// the reader's token Secret.
func (in *Installer) installBase(ctx context.Context, c scenario.Cluster) error {
	kc, err := in.client(ctx, c.Name)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: IstioNamespace, Labels: map[string]string{NetworkLabel: c.Network}},
	}
	if c.Role == scenario.Remote {
		ns.Annotations = map[string]string{ControlPlaneClustersAnnotation: c.Primary}
	}
	if err := kc.ApplyTyped(ctx, ns); err != nil {
		return err
	}
	values, err := in.baseValues(c)
	if err != nil {
		return err
	}
	r, err := in.helmRelease(ctx, c, ReleaseBase, ChartBase, values, nil)
	if err != nil {
		return err
	}
	if err := kc.WaitEstablished(ctx, r.Manifest); err != nil {
		return err
	}
	kc.RESTClientGetter().Invalidate() // Istio's kinds exist now
	cc, err := pki.ReadCACerts(in.cacertsDir(c.Name))
	if err != nil {
		return fmt.Errorf("mesh CA of %s: %w", c.Name, err)
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: CACertsSecret, Namespace: IstioNamespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "mclab"}},
		Data:       cc.Files(),
	}
	if in.Lab != "" {
		secret.Labels[LabLabel] = in.Lab
	}
	if err := kc.ApplyTyped(ctx, secret); err != nil {
		return err
	}
	token := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: ReaderTokenSecret, Namespace: IstioNamespace,
			Annotations: map[string]string{corev1.ServiceAccountNameKey: ReaderServiceAccount}},
		Type: corev1.SecretTypeServiceAccountToken,
	}
	return kc.ApplyTyped(ctx, token)
}

// baseManifest renders the base chart for cluster c: CRDs, the reader service account and the default
// validating webhook (by URL when istiod runs as a process).
func (in *Installer) baseManifest(c scenario.Cluster) (string, error) {
	values, err := in.baseValues(c)
	if err != nil {
		return "", err
	}
	r, err := in.renderer(c)
	if err != nil {
		return "", err
	}
	base, err := r.Render(ChartBase, ReleaseBase, IstioNamespace, values)
	if err != nil {
		return "", err
	}
	return base.Manifest(), nil
}

// baseValues are the base chart's values for cluster c.
func (in *Installer) baseValues(c scenario.Cluster) (map[string]any, error) {
	values := map[string]any{"global": map[string]any{"istioNamespace": IstioNamespace}}
	if host, err := in.webhookHost(c); err != nil {
		return nil, err
	} else if host != "" {
		root, err := in.readRoot(c.Name)
		if err != nil {
			return nil, err
		}
		values["base"] = ValidationWebhookValues(host, root)
	}
	return values, nil
}

// readerToken waits for the token controller to fill the reader's token Secret and returns the token
// and the cluster's CA.
func readerToken(ctx context.Context, kc *kube.Client) (token, ca []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		s, err := kc.Kube.CoreV1().Secrets(IstioNamespace).Get(ctx, ReaderTokenSecret, metav1.GetOptions{})
		if err == nil && len(s.Data[corev1.ServiceAccountTokenKey]) > 0 {
			return s.Data[corev1.ServiceAccountTokenKey], s.Data[corev1.ServiceAccountRootCAKey], nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("the token of %s in %s was never filled in (is kube-controller-manager's token controller running?)", ReaderServiceAccount, kc.Name)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
