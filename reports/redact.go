package reports

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// Secrets that must never reach a report or a bundle, in the forms they take in logs, YAML and JSON:
// JSON web tokens (service-account tokens), PEM private keys, the same keys base64-encoded (Secret data,
// kubeconfig client-key-data, cacerts' ca-key.pem, tls.key), kubeconfig *-data fields, token and password
// fields, Bearer and Basic credentials, and --token flags.
var secretPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`), "<private key redacted>"},
	// JWS compact form: base64url header (always starts {" -> eyJ), payload, signature.
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`), "<token redacted>"},
	{regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}`), "${1}${2}<redacted>"},
	{regexp.MustCompile(`(?i)(--(?:token|password|client-key)[= ])\S+`), "${1}<redacted>"},
	// YAML fields (block style, also inside flow maps after a comma or brace) and JSON fields: a quoted
	// value is replaced by a quoted placeholder, a bare one by a bare placeholder that stops before any
	// quote or backslash, so a document that was JSON (a report holding such text in a string) stays
	// JSON.
	{regexp.MustCompile(`(?im)((?:^|[\s{,])["']?` + secretKeys + `["']?\s*:\s*)("(?:[^"\\]|\\.)*"|'[^']*')`), "${1}\"<redacted>\""},
	{regexp.MustCompile(`(?im)((?:^|[\s{,])["']?` + secretKeys + `["']?\s*:\s*)([^\s,}\]"'\\<][^\s,}\]"\\]*)`), "${1}<redacted>"},
}

// secretKeys are the field names whose values are secrets.
const secretKeys = `(?:token|id-token|refresh-token|access-token|password|secret|[a-z-]+-data|client-key|tls\.key|ca-key\.pem|key\.pem)`

// base64PEM finds runs of base64 long enough to hold a PEM block; those that decode to a private key
// are redacted (a base64-encoded key begins "LS0tLS1CRUdJTi", "-----BEGIN" encoded).
var base64PEM = regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`)

// Redact rewrites every file under dir with secrets replaced, and makes files 0600 and folders 0700, so
// what a run writes (reports, evidence, logs copied in) carries no token or key. A file it cannot
// redact is removed, so nothing unredacted stays on disk; the error names it. It returns how many files
// it changed.
func Redact(dir string) (int, error) {
	changed := 0
	var failed []error
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			failed = append(failed, err)
			if path != dir {
				_ = os.RemoveAll(path)
			}
			return nil
		}
		if d.IsDir() {
			return os.Chmod(path, 0o700)
		}
		if !d.Type().IsRegular() {
			return os.Remove(path) // no links or devices in a bundle
		}
		if err := redactFile(path, &changed); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w (removed)", path, err))
			_ = os.Remove(path)
		}
		return nil
	})
	if err != nil {
		failed = append(failed, err)
	}
	return changed, errors.Join(failed...)
}

func redactFile(path string, changed *int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out := RedactBytes(data)
	if !bytes.Equal(out, data) {
		*changed++
		tmp := path + ".redacting"
		if err := os.WriteFile(tmp, out, 0o600); err != nil {
			_ = os.Remove(tmp)
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			_ = os.Remove(tmp)
			return err
		}
	}
	return os.Chmod(path, 0o600)
}

// RedactBytes replaces the secrets in data. A JSON document (reports, Ginkgo's ginkgo.json) is
// redacted value by value and stays valid JSON: every string is redacted as text, and the value of a
// secret field is replaced whole.
func RedactBytes(data []byte) []byte {
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
		if out, err := redactJSON(data); err == nil {
			return out
		}
	}
	return redactText(data)
}

var secretKey = regexp.MustCompile(`(?i)^` + secretKeys + `$`)

// redactJSON rebuilds a JSON document token by token (keeping the order of keys), redacting strings.
func redactJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object, wantKey, secret bool
		n                       int
	}
	var stack []*frame
	var out bytes.Buffer
	done := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		top.n++
		top.wantKey, top.secret = top.object, false
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		closing := tok == json.Delim('}') || tok == json.Delim(']')
		if len(stack) > 0 && !closing {
			top := stack[len(stack)-1]
			switch {
			case top.object && !top.wantKey:
				out.WriteByte(':')
			case top.n > 0:
				out.WriteByte(',')
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			out.WriteString(t.String())
			if closing {
				stack = stack[:len(stack)-1]
				done()
			} else {
				stack = append(stack, &frame{object: t == '{', wantKey: t == '{'})
			}
		case string:
			if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey {
				top := stack[len(stack)-1]
				b, _ := json.Marshal(t)
				out.Write(b)
				top.wantKey, top.secret = false, secretKey.MatchString(t)
				continue
			}
			v := string(redactText([]byte(t)))
			if len(stack) > 0 && stack[len(stack)-1].secret && t != "" {
				v = "<redacted>"
			}
			b, _ := json.Marshal(v)
			out.Write(b)
			done()
		default:
			b, err := json.Marshal(t)
			if err != nil {
				return nil, err
			}
			out.Write(b)
			done()
		}
	}
	if !bytes.Contains(bytes.TrimSpace(data), []byte("\n")) {
		if bytes.HasSuffix(data, []byte("\n")) {
			out.WriteByte('\n')
		}
		return out.Bytes(), nil
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, out.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	indented.WriteByte('\n')
	return indented.Bytes(), nil
}

// redactText replaces the secrets in text (logs, YAML, command lines).
func redactText(data []byte) []byte {
	data = base64PEM.ReplaceAllFunc(data, func(b []byte) []byte {
		if encodedKey(b) {
			return []byte("<private key redacted>")
		}
		return b
	})
	for _, p := range secretPatterns {
		data = p.re.ReplaceAll(data, []byte(p.with))
	}
	return data
}

// encodedKey reports whether b is base64 (standard, with or without padding) of a PEM private key.
func encodedKey(b []byte) bool {
	if !bytes.HasPrefix(b, []byte("LS0t")) {
		return false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		// A prefix that is a whole number of quanta decodes even when the run was cut short.
		n := len(bytes.TrimRight(b, "=")) / 4 * 4
		dec, err := enc.DecodeString(string(b[:n]))
		if err == nil && bytes.Contains(dec, []byte("PRIVATE KEY")) {
			return true
		}
	}
	return false
}
