package console_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/internal/testenv"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// ArtifactsEnv names a directory where the browser test saves its
// screenshots (a CI artifact); without it they go to a temporary
// directory, whose path the test logs.
const ArtifactsEnv = "TARSTORE_TEST_ARTIFACTS"

// chromium returns the path of Debian's chromium (testenv.Need's policy
// when it is missing).
func chromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Need(t, `chromium (the Debian package "chromium")`)
	}
	return p
}

// browserCtx starts a headless Chromium of its own (a fresh profile, no
// network but loopback) and returns a tab's context, bounded in time.
func browserCtx(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root, Chromium refuses to start with its sandbox
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1200, 800),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	return tab
}

// console is a handler over a kvtar store with a tree to browse, behind a
// test server.
type console struct {
	store kv.RW
	url   string
}

func newConsole(t *testing.T, token string) *console {
	t.Helper()
	dev, err := mem.New(512, (16<<20)/512)
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(dev))
	st, err := kvtar.New(clock.System{}, dev)
	require.NoError(t, err)
	for k, v := range map[string]string{
		"/docs/readme.txt":                      "read me\n",
		"/docs/sub/deep.bin":                    "deep",
		"/html/<img src=x onerror=pwned=1>":     "an image tag",
		"/html/<script>pwned=2;<":               "a script tag",
		"/html/a/\"b":                           "a quote",
		"/html/<b>bold/x":                       "a dictionary",
		"/zzz/" + string(rune(0x263A)) + ".txt": "smile",
	} {
		require.NoError(t, st.Set(kv.MustKey(k), []byte(v)))
	}
	h := httpapi.New(st, httpapi.Options{Token: token, Version: "test", Status: appliance.StatusFunc(st)})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		st.Close()
	})
	return &console{store: st, url: srv.URL}
}

// row selects the row of a key in a dictionary's page.
func row(key string) string { return `tr[data-key=` + cssString(key) + `]` }

// cssString quotes s as a CSS string.
func cssString(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// TestBrowser drives the console in a real headless Chromium, with and
// without a token: it logs in, browses a tree, uploads a file, downloads it
// (the bytes compared), renames and deletes it, checks that keys with HTML
// in them are shown as text and run nothing, and saves a screenshot of the
// main page.
func TestBrowser(t *testing.T) {
	path := chromium(t)
	for _, token := range []string{"", "s3cret-token"} {
		name := "no token"
		if token != "" {
			name = "token"
		}
		t.Run(name, func(t *testing.T) { browse(t, path, token) })
	}
}

func browse(t *testing.T, path, token string) {
	c := newConsole(t, token)
	ctx := browserCtx(t, path)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...), what)
	}
	// reload runs steps after which the page reloads itself (console.js
	// does after a change), and waits for the new page to load, so that
	// the next query does not race with the navigation.
	reload := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		loads := chromedp.Events(lctx, page.LoadEventFired)
		do(what, steps...)
		for _, err := range loads {
			require.NoError(t, err, what)
			break
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return s
	}
	eval := func(js string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		require.NoError(t, err, js)
		return v
	}

	// Log in, when the server needs a token; the page asked for first
	// follows.
	do("open the console", chromedp.Navigate(c.url+"/browse/docs"))
	if token != "" {
		do("log in",
			chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SendKeys(chromedp.CSS("#token"), "wrong"),
			chromedp.Click(chromedp.CSS("#login")),
			chromedp.WaitVisible(chromedp.CSS(".error")), // a new, empty form
			chromedp.SendKeys(chromedp.CSS("#token"), token),
			chromedp.Click(chromedp.CSS("#login")),
		)
	}
	do("see /docs", chromedp.WaitVisible(chromedp.CSS(row("/docs/readme.txt"))))
	assert.Contains(t, text(row("/docs/sub")), "sub/")
	assert.Contains(t, text(row("/docs/readme.txt")), "8 B")

	// Browse: into a dictionary and back up through the breadcrumbs.
	do("browse into /docs/sub",
		chromedp.Click(chromedp.CSS(row("/docs/sub")+" a")),
		chromedp.WaitVisible(chromedp.CSS(row("/docs/sub/deep.bin"))),
		chromedp.Click(chromedp.CSS(`.crumbs a[href="/browse/docs"]`)),
		chromedp.WaitVisible(chromedp.CSS(row("/docs/readme.txt"))),
	)

	// Upload a file through the file input.
	data := make([]byte, 300<<10+7)
	rand.NewChaCha8([32]byte{7}).Read(data)
	local := filepath.Join(t.TempDir(), "up load.bin")
	require.NoError(t, os.WriteFile(local, data, 0o644))
	reload("upload",
		chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{local}),
		chromedp.Click(chromedp.CSS("#upload-button")),
	)
	do("see the upload", chromedp.WaitVisible(chromedp.CSS(row("/docs/up load.bin"))))
	got, err := c.store.Get(kv.MustKey("/docs/up load.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the stored value differs from the uploaded file")

	// Download it by its link, as a person would, and compare.
	require.True(t, bytes.Equal(data, download(t, ctx, row("/docs/up load.bin")+" td.name a")),
		"the downloaded file differs from the uploaded one")

	// Create a value, in a new dictionary below this one.
	reload("create",
		chromedp.SendKeys(chromedp.CSS("#create-name"), "notes/new <1>.txt"),
		chromedp.SendKeys(chromedp.CSS("#create-content"), "created in the console"),
		chromedp.Click(chromedp.CSS(`#create-form button[type="submit"]`)),
	)
	do("see the new dictionary", chromedp.WaitVisible(chromedp.CSS(row("/docs/notes"))))
	got, err = c.store.Get(kv.MustKey("/docs/notes/new <1>.txt"))
	require.NoError(t, err)
	assert.Equal(t, "created in the console", string(got))

	// Rename it (confirmed in the dialog).
	reload("rename",
		chromedp.Click(chromedp.CSS(row("/docs/up load.bin")+" button.rename")),
		chromedp.WaitVisible(chromedp.CSS("#rename-to")),
		chromedp.SetValue(chromedp.CSS("#rename-to"), "/docs/renamed.bin"),
		chromedp.Click(chromedp.CSS("#rename-ok")),
	)
	do("see the new name", chromedp.WaitVisible(chromedp.CSS(row("/docs/renamed.bin"))))
	kind, err := c.store.Exists(kv.MustKey("/docs/up load.bin"))
	require.NoError(t, err)
	assert.Equal(t, kv.None, kind)
	got, err = c.store.Get(kv.MustKey("/docs/renamed.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))

	// Delete: Cancel keeps a value; then deleting another removes that one
	// only (the canceled question is not answered by the next).
	do("cancel a deletion",
		chromedp.Click(chromedp.CSS(row("/docs/readme.txt")+" button.delete")),
		chromedp.WaitVisible(chromedp.CSS("#delete-ok")),
		chromedp.Click(chromedp.CSS("#delete-dialog button.cancel")),
		chromedp.WaitNotVisible(chromedp.CSS("#delete-dialog")),
	)
	reload("delete",
		chromedp.Click(chromedp.CSS(row("/docs/renamed.bin")+" button.delete")),
		chromedp.WaitVisible(chromedp.CSS("#delete-ok")),
		chromedp.Click(chromedp.CSS("#delete-ok")),
	)
	do("see /docs", chromedp.WaitVisible(chromedp.CSS(row("/docs/readme.txt"))))
	assert.False(t, eval(`document.querySelector(`+"`"+row("/docs/renamed.bin")+"`"+`) !== null`), "the deleted value is still listed")
	kind, err = c.store.Exists(kv.MustKey("/docs/renamed.bin"))
	require.NoError(t, err)
	assert.Equal(t, kv.None, kind)
	kind, err = c.store.Exists(kv.MustKey("/docs/readme.txt"))
	require.NoError(t, err)
	assert.Equal(t, kv.Value, kind, "the canceled deletion happened")

	// Keys with HTML in them are text.
	do("browse /html", chromedp.Navigate(c.url+"/browse/html"), chromedp.WaitVisible(chromedp.CSS("#entries")))
	for _, k := range []string{"/html/<img src=x onerror=pwned=1>", "/html/<script>pwned=2;<", "/html/<b>bold", "/html/a"} {
		do("see "+k, chromedp.WaitVisible(chromedp.CSS(row(k))))
	}
	assert.Equal(t, "<img src=x onerror=pwned=1>", text(row("/html/<img src=x onerror=pwned=1>")+" td.name"))
	assert.Equal(t, "<script>pwned=2;<", text(row("/html/<script>pwned=2;<")+" td.name"))
	assert.Equal(t, "<b>bold/", text(row("/html/<b>bold")+" td.name"))
	assert.True(t, eval(`document.querySelectorAll("#entries img, #entries script, #entries b").length === 0`), "a key became markup")
	assert.True(t, eval(`typeof pwned === "undefined"`), "a key ran as script")
	do("browse /html/a", chromedp.Click(chromedp.CSS(row("/html/a")+" a")), chromedp.WaitVisible(chromedp.CSS(row(`/html/a/"b`))))
	assert.Equal(t, `"b`, text(row(`/html/a/"b`)+" td.name"))
	assert.Contains(t, text(".crumbs"), "html/a")

	// The main page, saved for people to look at.
	var shot []byte
	do("screenshot",
		chromedp.Navigate(c.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(row("/docs"))),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			var err error
			shot, err = chromedp.FullScreenshot(100)(ctx, tg) // quality 100: PNG
			return err
		}),
	)
	for _, item := range []string{"Capacity", "Free", "Entries", "Device", "mem", "Version"} {
		assert.Contains(t, text("#status"), item)
	}
	out := os.Getenv(ArtifactsEnv)
	if out == "" {
		out = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(out, 0o755))
	name := "console.png"
	if token != "" {
		name = "console-token.png"
	}
	require.NoError(t, os.WriteFile(filepath.Join(out, name), shot, 0o644))
	t.Logf("screenshot of the main page: %s", filepath.Join(out, name))

	// Without JavaScript: browsing and downloading work, and the controls
	// that need it are not shown.
	_, err = chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
	require.NoError(t, err)
	do("browse without JavaScript",
		chromedp.Navigate(c.url+"/"),
		chromedp.Click(chromedp.CSS(row("/docs")+" a")),
		chromedp.WaitVisible(chromedp.CSS(row("/docs/readme.txt"))),
		chromedp.WaitNotVisible(chromedp.CSS("#upload")),
		chromedp.WaitNotVisible(chromedp.CSS(row("/docs/readme.txt")+" button.delete")),
	)
	assert.False(t, eval(`document.documentElement.classList.contains("js")`), "the script ran")
	assert.Equal(t, "read me\n", string(download(t, ctx, row("/docs/readme.txt")+" td.name a")))
}

// download clicks the link sel in the page of ctx and returns the bytes
// the browser saved.
func download(t *testing.T, ctx context.Context, sel string) []byte {
	t.Helper()
	dir := t.TempDir()
	_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptr(true)})
	require.NoError(t, err)
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))), "download")
	for ev, err := range progress {
		require.NoError(t, err)
		require.NotEqual(t, browser.DownloadProgressStateCanceled, ev.State, "the download was canceled")
		if ev.State == browser.DownloadProgressStateCompleted {
			b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			require.NoError(t, err)
			return b
		}
	}
	t.Fatal("the download did not complete")
	return nil
}

func ptr[T any](v T) *T { return &v }
