package httpapi_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/httpapi"
)

// noRedirects makes e's client answer redirects instead of following them.
func (e *env) noRedirects() {
	e.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
}

// form posts a form to path.
func (e *env) form(path string, v url.Values, hdr ...string) result {
	e.t.Helper()
	return e.do("POST", path, strings.NewReader(v.Encode()), append(hdr, "Content-Type", "application/x-www-form-urlencoded")...)
}

// TestConsolePages: the pages list a dictionary's children with their
// links, keys with HTML in them escaped, in the order asked for.
func TestConsolePages(t *testing.T) {
	e := newEnv(t, httpapi.Options{Version: "v-test"})
	e.noRedirects()
	e.set("/docs/b.txt", "bb")
	e.set("/docs/a.txt", "aaaa")
	e.set("/docs/sub/c", "c")
	e.set("/x/<script>pwned=1;<", "s")
	e.set(`/x/a"b`, "q")

	r := e.get("/")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "text/html; charset=utf-8", r.hdr.Get("Content-Type"))
	assert.Equal(t, "no-store", r.hdr.Get("Cache-Control"))
	assert.Contains(t, r.hdr.Get("Content-Security-Policy"), "default-src 'self'")
	assert.Contains(t, r.body, `<a href="/browse/docs">docs/</a>`)
	assert.Contains(t, r.body, `<a href="/metrics">`)
	assert.Contains(t, r.body, `<dd>v-test</dd>`)

	r = e.get("/browse/docs")
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, r.body, `<a href="/v1/kv/docs/a.txt" download="a.txt">a.txt</a>`)
	assert.Contains(t, r.body, `<a href="/browse/docs/sub">sub/</a>`)
	assert.Contains(t, r.body, `<a href="/">/</a><span class="sep">/</span><a href="/browse/docs">docs</a>`, "breadcrumbs")
	assert.Contains(t, r.body, `data-dir="/v1/kv/docs/"`)
	names := func(body string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`data-key="([^"]*)"`).FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	assert.Equal(t, []string{"/docs/sub", "/docs/a.txt", "/docs/b.txt"}, names(r.body), "dictionaries first, then by name")
	assert.Equal(t, []string{"/docs/sub", "/docs/b.txt", "/docs/a.txt"}, names(e.get("/browse/docs?sort=name&order=desc").body))
	assert.Equal(t, []string{"/docs/sub", "/docs/b.txt", "/docs/a.txt"}, names(e.get("/browse/docs?sort=size").body))
	assert.Equal(t, []string{"/docs/sub", "/docs/a.txt", "/docs/b.txt"}, names(e.get("/browse/docs?sort=size&order=desc").body))

	// Keys are text, in elements and in attributes.
	r = e.get("/browse/x")
	require.Equal(t, http.StatusOK, r.code)
	assert.NotContains(t, r.body, "<script>pwned")
	assert.Contains(t, r.body, `>&lt;script&gt;pwned=1;&lt;</a>`)
	assert.Contains(t, r.body, `data-key="/x/&lt;script&gt;pwned=1;&lt;"`)
	assert.Contains(t, r.body, `href="/v1/kv/x/%3Cscript%3Epwned=1%3B%3C"`)
	assert.Contains(t, r.body, `data-key="/x/a&#34;b"`)
	assert.Contains(t, r.body, `>a&#34;b</a>`)

	// A value's page is its download; what does not exist is the API's 404.
	r = e.get("/browse/docs/a.txt")
	assert.Equal(t, http.StatusSeeOther, r.code)
	assert.Equal(t, "/v1/kv/docs/a.txt", r.hdr.Get("Location"))
	e.get("/browse/none").wantError(t, http.StatusNotFound, "not_found", "/none")
	e.get("/browse/..").wantError(t, http.StatusBadRequest, "invalid_key", "")

	// The static files.
	r = e.get("/console/static/console.css")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "text/css; charset=utf-8", r.hdr.Get("Content-Type"))
	r = e.get("/console/static/console.js")
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, r.hdr.Get("Content-Type"), "javascript")
	assert.Equal(t, http.StatusNotFound, e.get("/console/static/none.js").code)
}

// TestConsoleReadOnly: a read-only server's pages offer no writes.
func TestConsoleReadOnly(t *testing.T) {
	e := newEnv(t, httpapi.Options{ReadOnly: true})
	e.set("/v", "v")
	r := e.get("/")
	require.Equal(t, http.StatusOK, r.code)
	assert.NotContains(t, r.body, `id="upload"`)
	assert.NotContains(t, r.body, `class="delete"`)
	assert.Contains(t, r.body, "read-only")
}

// TestConsoleLogin: with a token, a page is the login form (401) until
// the token is entered; the session cookie then stands for it, for writes
// only with the console's header; the form sends nowhere but this server;
// logging out ends the session.
func TestConsoleLogin(t *testing.T) {
	e := newEnv(t, httpapi.Options{Token: "tok"})
	e.noRedirects()
	e.set("/docs/v", "v")
	noAuth := []string{"Authorization", "Basic none"} // e.do adds the bearer token otherwise

	r := e.get("/browse/docs?sort=size", noAuth...)
	require.Equal(t, http.StatusUnauthorized, r.code)
	assert.Equal(t, "text/html; charset=utf-8", r.hdr.Get("Content-Type"))
	assert.Contains(t, r.body, `<form method="post" action="/console/login">`)
	assert.Contains(t, r.body, `name="next" value="/browse/docs?sort=size"`)
	assert.NotContains(t, r.body, "/docs/v")
	// The static files need no token.
	assert.Equal(t, http.StatusOK, e.get("/console/static/console.css", noAuth...).code)

	r = e.form("/console/login", url.Values{"token": {"wrong"}, "next": {"/browse/docs"}}, noAuth...)
	require.Equal(t, http.StatusUnauthorized, r.code)
	assert.Contains(t, r.body, "not the server")
	assert.Contains(t, r.body, `name="next" value="/browse/docs"`)
	assert.Empty(t, r.hdr.Values("Set-Cookie"))

	r = e.form("/console/login", url.Values{"token": {"tok"}, "next": {"/browse/docs"}}, noAuth...)
	require.Equal(t, http.StatusSeeOther, r.code)
	assert.Equal(t, "/browse/docs", r.hdr.Get("Location"))
	cookie := r.hdr.Get("Set-Cookie")
	assert.Regexp(t, `^tarstore-token=tok; Path=/; HttpOnly; SameSite=Strict$`, cookie)
	session := []string{"Authorization", "Basic none", "Cookie", "tarstore-token=tok"}

	r = e.get("/browse/docs", session...)
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, r.body, `data-key="/docs/v"`)
	assert.Contains(t, r.body, `action="/console/logout"`)
	assert.Equal(t, "v", e.get("/v1/kv/docs/v", session...).body, "downloads carry the cookie")
	// Writes with the cookie need the console's header.
	e.put("/v1/kv/docs/w", "w", session...).wantError(t, http.StatusUnauthorized, "unauthorized", "")
	require.Equal(t, http.StatusCreated, e.put("/v1/kv/docs/w", "w", append(session, httpapi.ConsoleHeader, "1")...).code)
	require.Equal(t, http.StatusNoContent, e.do("DELETE", "/v1/kv/docs/w", nil, append(session, httpapi.ConsoleHeader, "1")...).code)
	// A wrong cookie is no session.
	assert.Equal(t, http.StatusUnauthorized, e.get("/v1/kv/docs/v", "Authorization", "Basic none", "Cookie", "tarstore-token=nope").code)

	// The form leads to this server only.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "", "browse"} {
		r = e.form("/console/login", url.Values{"token": {"tok"}, "next": {next}}, noAuth...)
		require.Equal(t, http.StatusSeeOther, r.code, next)
		assert.Equal(t, "/", r.hdr.Get("Location"), next)
	}

	r = e.form("/console/logout", nil, session...)
	require.Equal(t, http.StatusSeeOther, r.code)
	assert.Regexp(t, `^tarstore-token=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict$`, r.hdr.Get("Set-Cookie"))

	// Over TLS the cookie is Secure.
	e2 := newEnv(t, httpapi.Options{Token: "tok", TLS: true})
	e2.noRedirects()
	r = e2.form("/console/login", url.Values{"token": {"tok"}}, noAuth...)
	assert.Contains(t, r.hdr.Get("Set-Cookie"), "; Secure")
}
