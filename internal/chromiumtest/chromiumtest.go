// Package chromiumtest renders pages in headless Chromium (Debian's chromium package) for tests that
// look at what a user sees: a screenshot, and the console messages the page caused.
package chromiumtest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Binary returns headless Chromium's path, or skips the test saying why.
func Binary(t *testing.T) string {
	t.Helper()
	for _, c := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Skip("no headless Chromium (apt-get install chromium): the page was not looked at in a browser")
	return ""
}

// Screenshot renders the page at htmlPath in a width x height window into pngPath and returns the
// decoded image and Chromium's log (console messages appear there as "CONSOLE").
func Screenshot(t *testing.T, htmlPath, pngPath string, width, height int) (image.Image, string) {
	t.Helper()
	bin := Binary(t)
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
		fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+pngPath, "file://"+htmlPath)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, out.String())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("chromium did not finish in 90 s:\n%s", out.String())
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, out.String())
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img, out.String()
}

// Colours are the colours of every other pixel of img.
func Colours(img image.Image) map[color.RGBA]bool {
	out := map[color.RGBA]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			out[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}] = true
		}
	}
	return out
}
