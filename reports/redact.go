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
	// Query strings and key=value pairs in logs and URLs: ?token=..., &access_token=..., password=...
	{regexp.MustCompile(`(?i)((?:^|[?&;\s"'(,])` + secretKeys + `=)([^&;\s"'#),]+)`), "${1}<redacted>"},
	// Escaped JSON inside a string or a log line: {\"token\":\"...\"}.
	{regexp.MustCompile(`(?i)(\\["']` + secretKeys + `\\["']\s*:\s*)\\["'](?:[^\\]|\\[^"'])*\\["']`), `${1}\"<redacted>\"`},
	// YAML flow sequences and JSON arrays as text: token: [a, b].
	{regexp.MustCompile(`(?im)((?:^|[\s{,])["']?` + secretKeys + `["']?\s*:\s*)\[[^\]\n]*\]`), `${1}["<redacted>"]`},
	// YAML fields (block style, also inside flow maps after a comma or brace) and JSON fields: a quoted
	// value is replaced by a quoted placeholder, a bare one by a bare placeholder that stops before any
	// quote or backslash, so a document that was JSON (a report holding such text in a string) stays
	// JSON.
	{regexp.MustCompile(`(?im)((?:^|[\s{,])["']?` + secretKeys + `["']?\s*:\s*)("(?:[^"\\]|\\.)*"|'[^']*')`), "${1}\"<redacted>\""},
	{regexp.MustCompile(`(?im)((?:^|[\s{,])["']?` + secretKeys + `["']?\s*:\s*)([^\s,}\]"'\\<\[][^\s,}\]"\\]*)`), "${1}<redacted>"},
}

// secretKeys are the field names whose values are secrets: any *token and *password (sa-token,
// access_token, id-token), secrets, kubeconfig *-data fields, keys and API keys, Authorization.
const secretKeys = `(?:[a-z0-9_-]*tokens?|[a-z0-9_-]*passwords?|passwd|secret|client[_-]secret|[a-z-]+-data|client-key|tls\.key|ca-key\.pem|key\.pem|x-api-key|api[_-]?key|apikey|authorization)`

// base64Run finds runs of base64 (standard or URL alphabet) long enough to hold a credential,
// including base64 wrapped over lines (PEM bodies, `base64` output at 76 columns, escaped \n in JSON
// logs). Each run is decoded, and one that holds a kubeconfig, a JWT, a PEM private key or a bearer
// token is redacted whole, whatever field or key it sits under: Istio's remote secret keeps its
// kubeconfig under the cluster's name (data: {c2: <base64>}).
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]{24,}={0,2}(?:(?:\r?\n|\\n)[ \t]*[A-Za-z0-9+/_-]{4,}={0,2})*`)

// yamlBlockKey is a YAML field of a secret key whose value is a block scalar (password: |).
var yamlBlockKey = regexp.MustCompile(`(?i)^(\s*)(?:-\s+)?["']?` + secretKeys + `["']?\s*:\s*[|>][-+0-9]*\s*$`)

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
		// all: the frame is a secret field's array, so every string in it is redacted.
		object, wantKey, secret, all bool
		n                            int
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
				// A secret field's array (token: ["a", "b"]) is redacted whole; an object under a secret
				// name (a JWT rule's "token": {...}) is redacted field by field, like any other.
				all := t == '[' && len(stack) > 0 && (stack[len(stack)-1].secret || stack[len(stack)-1].all)
				stack = append(stack, &frame{object: t == '{', wantKey: t == '{', all: all})
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
			if len(stack) > 0 && (stack[len(stack)-1].secret || stack[len(stack)-1].all) && t != "" {
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
	data = redactBase64Runs(data)
	data = redactBlockScalars(data)
	for _, p := range secretPatterns {
		data = p.re.ReplaceAll(data, []byte(p.with))
	}
	return data
}

// redactBase64Runs replaces every base64 run that decodes to a credential. A run as base64Run finds it
// can run on past the value into the next line when that line starts with something base64-shaped (a
// log line's timestamp, 2026-12-07T10, is in the URL alphabet): splitRun cuts it where the value ends,
// and what follows is looked at on its own.
func redactBase64Runs(data []byte) []byte {
	return base64Run.ReplaceAllFunc(data, func(b []byte) []byte {
		head, rest := splitRun(b)
		out := head
		if sensitiveBase64(head) {
			out = []byte("<redacted>")
		} else if i := lastLine(head); i > 0 && sensitiveBase64(head[:i]) {
			out = append([]byte("<redacted>"), head[i:]...)
		}
		if len(rest) == 0 {
			return out
		}
		return append(append([]byte{}, out...), redactBase64Runs(rest)...)
	})
}

// splitRun cuts a base64 run after its last line that belongs to one wrapped value: every line but the
// last has the first line's width, no line is wider, none follows a line ending in = padding, and all
// use one alphabet (standard: + and /, URL: - and _). A value whose alphabet its lines do not show (no
// +, /, - or _) may still take one base64-shaped line too many: redactBase64Runs tries it without its
// last line too.
func splitRun(b []byte) (head, rest []byte) {
	alphabet := byte(0) // '+' standard, '-' URL, 0 not known yet
	width, prev := -1, -1
	padded := false // the line before ended in padding: the value ended there
	start := 0      // where the current line's content starts
	for i := 0; i <= len(b); i++ {
		sep := 0
		switch {
		case i == len(b):
		case b[i] == '\n':
			sep = 1
		case b[i] == '\\' && i+1 < len(b) && b[i+1] == 'n':
			sep = 2
		case b[i] == '\r':
			continue
		default:
			continue
		}
		line := bytes.TrimRight(bytes.TrimLeft(b[start:i], " \t"), "\r")
		for _, c := range line {
			var a byte
			switch c {
			case '+', '/':
				a = '+'
			case '-', '_':
				a = '-'
			}
			if a != 0 && alphabet != 0 && a != alphabet && start > 0 {
				return b[:lineStart(b, start)], b[lineStart(b, start):]
			}
			if a != 0 {
				alphabet = a
			}
		}
		if width < 0 {
			width = len(line)
		} else if prev != width || len(line) > width || padded {
			return b[:lineStart(b, start)], b[lineStart(b, start):]
		}
		prev, padded = len(line), bytes.HasSuffix(line, []byte("="))
		if i == len(b) {
			break
		}
		start = i + sep
		i += sep - 1
	}
	return b, nil
}

// lastLine is where the separator before b's last line begins (0 for a single line).
func lastLine(b []byte) int {
	i := max(bytes.LastIndexByte(b, '\n'), bytes.LastIndex(b, []byte(`\n`)))
	if i > 0 && b[i] == '\n' && b[i-1] == '\r' {
		i--
	}
	return max(i, 0)
}

// lineStart is where the separator before the line that starts at start begins (b[start] follows a
// newline or an escaped \n).
func lineStart(b []byte, start int) int {
	switch {
	case start >= 2 && b[start-2] == '\\' && b[start-1] == 'n':
		return start - 2
	case start >= 1 && b[start-1] == '\n':
		if start >= 2 && b[start-2] == '\r' {
			return start - 2
		}
		return start - 1
	}
	return start
}

// redactBlockScalars replaces the lines of a secret field's YAML block scalar (password: |, then the
// lines indented deeper) with one placeholder line.
func redactBlockScalars(data []byte) []byte {
	if !bytes.ContainsAny(data, "|>") {
		return data
	}
	lines := bytes.Split(data, []byte("\n"))
	out := make([][]byte, 0, len(lines))
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		m := yamlBlockKey.FindSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent := len(m[1])
		j := i + 1
		for ; j < len(lines); j++ {
			l := lines[j]
			trimmed := bytes.TrimLeft(l, " \t")
			if len(trimmed) > 0 && len(l)-len(trimmed) <= indent {
				break
			}
		}
		if j > i+1 {
			out = append(out, append(bytes.Repeat([]byte(" "), indent+2), "<redacted>"...))
			i = j - 1
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// sensitiveBase64 reports whether a base64 run (possibly wrapped) decodes to a credential.
func sensitiveBase64(b []byte) bool {
	clean := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\\' && i+1 < len(b) && b[i+1] == 'n':
			i++
		case c == '\n' || c == '\r' || c == ' ' || c == '\t':
		default:
			clean = append(clean, c)
		}
	}
	trimmed := bytes.TrimRight(clean, "=")
	// A prefix that is a whole number of quanta decodes even when the run was cut short.
	n := len(trimmed) / 4 * 4
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if dec, err := enc.DecodeString(string(trimmed[:n])); err == nil && credential(dec) {
			return true
		}
	}
	return false
}

var (
	jwt       = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.`)
	bearerTok = regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}`)
)

// credential reports whether decoded bytes are (or hold) a kubeconfig, a JWT, a PEM private key or a
// bearer token.
func credential(dec []byte) bool {
	switch {
	case bytes.Contains(dec, []byte("PRIVATE KEY")),
		jwt.Match(dec),
		bearerTok.Match(dec),
		bytes.Contains(dec, []byte("kind: Config")), bytes.Contains(dec, []byte(`"kind":"Config"`)), bytes.Contains(dec, []byte(`"kind": "Config"`)),
		bytes.Contains(dec, []byte("client-key-data")),
		bytes.Contains(dec, []byte("clusters:")) && bytes.Contains(dec, []byte("users:")):
		return true
	}
	// A token field of a kubeconfig-like document.
	return bytes.Contains(dec, []byte("token:")) && bytes.Contains(dec, []byte("user"))
}
