// Package console is the web console of tarstore's HTTP API (SPEC §6,
// "GET / (and pages below it)"): the pages and the static files, which the
// API's handler (package httpapi) serves with the store's contents.
//
// The pages are rendered on the server with html/template, so every key,
// name and message is escaped by the template's context (a key like
// "<script>" or `a/"b` is text in an element, an attribute or a URL, never
// markup), and they work without JavaScript for browsing (breadcrumbs,
// sorting by name, size or date) and for downloads (plain links to
// /v1/kv/{key}). console.js, when it runs, adds uploads (a file input and
// drag-and-drop, with progress), creating, renaming and deleting (each
// confirmed in a dialog), through the same API as any client. Everything
// is embedded in the binary (embed): no build step, no CDN, nothing
// fetched from elsewhere, since the appliance runs offline.
//
// The bearer token, when the server needs one, is entered once in the
// login page; the handler keeps it in an HttpOnly, SameSite=Strict cookie,
// which the pages, the downloads and console.js's requests then carry.
package console

import (
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

//go:embed static
var staticFiles embed.FS

//go:embed templates/*.html
var templateFiles embed.FS

// StaticPrefix is the path the static files are served under.
const StaticPrefix = "/console/static/"

// Static serves the static files (style sheet, script) under StaticPrefix.
func Static() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix(StaticPrefix, http.FileServerFS(sub))
}

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"bytes": HumanBytes,
	"time":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).ParseFS(templateFiles, "templates/*.html"))

// Entry is one row of a dictionary's page.
type Entry struct {
	Name     string    // the key's last segment
	Key      string    // the whole key, as kv prints it
	Dict     bool      // a dictionary (else a value)
	Href     string    // the dictionary's page, or the value's /v1/kv path
	APIPath  string    // the key's /v1/kv path
	Size     int64     // values only
	Modified time.Time // zero when unknown
}

// Crumb is one step of the breadcrumbs.
type Crumb struct {
	Name string
	Href string
}

// StatusItem is one line of the status panel.
type StatusItem struct {
	Label string
	Value string
}

// Page is a dictionary's page.
type Page struct {
	Key      string  // the dictionary, as kv prints it
	APIDir   string  // its /v1/kv path, with a trailing "/": uploads go below it
	Crumbs   []Crumb // from the root to the dictionary
	Entries  []Entry
	Sort     string // "name", "size" or "modified"
	Desc     bool
	ReadOnly bool // no upload, create, rename or delete
	LoggedIn bool // the token came from the login cookie: offer to log out
	Status   []StatusItem
}

// Sorts are the columns a page can be sorted by.
var Sorts = []string{"name", "size", "modified"}

// SortEntries sorts es by the column by (name when unknown), dictionaries
// before values, and reverses the order within each kind when desc.
func SortEntries(es []Entry, by string, desc bool) {
	slices.SortStableFunc(es, func(a, b Entry) int {
		if a.Dict != b.Dict {
			if a.Dict {
				return -1
			}
			return 1
		}
		var c int
		switch by {
		case "size":
			c = cmp.Compare(a.Size, b.Size)
		case "modified":
			c = a.Modified.Compare(b.Modified)
		}
		if c == 0 {
			c = strings.Compare(a.Name, b.Name)
		}
		if desc {
			c = -c
		}
		return c
	})
}

// SortHref is the link of a column's header: sorted by it, in the other
// order when the page is already sorted by it.
func (p Page) SortHref(by string) string {
	q := url.Values{"sort": {by}}
	if p.Sort == by && !p.Desc {
		q.Set("order", "desc")
	}
	return "?" + q.Encode()
}

// Arrow marks the column the page is sorted by.
func (p Page) Arrow(by string) string {
	switch {
	case p.Sort != by:
		return ""
	case p.Desc:
		return " ▼"
	}
	return " ▲"
}

// Render writes p as HTML.
func Render(w io.Writer, p Page) error { return templates.ExecuteTemplate(w, "page.html", p) }

// Login is the login page: Next is where to go once logged in, Failed
// that the token entered was wrong.
type Login struct {
	Next   string
	Failed bool
}

// RenderLogin writes the login page.
func RenderLogin(w io.Writer, l Login) error { return templates.ExecuteTemplate(w, "login.html", l) }

// HumanBytes formats n bytes for people: "512 B", "1.5 KiB", "3.0 GiB".
func HumanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n), 0
	for f >= 1024 && unit < 6 {
		f /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTPE"[unit-1])
}
