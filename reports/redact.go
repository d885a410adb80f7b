package reports

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// Secrets that must never reach a report bundle: JSON web tokens (service-account tokens), PEM private
// keys, and bearer or token values in logged requests and kubeconfigs.
var secretPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----`), "<private key redacted>"},
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+`), "<token redacted>"},
	{regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{16,}`), "${1}<redacted>"},
	{regexp.MustCompile(`(?m)^(\s*(?:token|client-key-data|password):\s*)\S+`), "${1}<redacted>"},
}

// Redact rewrites every file under dir with secrets replaced, so logs copied into an evidence bundle
// carry no token or key. It returns how many files it changed.
func Redact(dir string) (int, error) {
	changed := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out := RedactBytes(data)
		if string(out) == string(data) {
			return nil
		}
		changed++
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(path, out, info.Mode().Perm())
	})
	return changed, err
}

// RedactBytes replaces the secrets in data.
func RedactBytes(data []byte) []byte {
	for _, p := range secretPatterns {
		data = p.re.ReplaceAll(data, []byte(p.with))
	}
	return data
}
