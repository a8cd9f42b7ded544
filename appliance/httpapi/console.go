package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tarstore/tarstore/appliance/httpapi/console"
	"github.com/tarstore/tarstore/kv"
)

// The web console (package console) is served beside the API:
//
//	GET  /                        the root dictionary's page
//	GET  /browse/{key}            a dictionary's page (a value's: 303 to its /v1/kv path)
//	GET  /console/static/{file}   the style sheet and the script (no authentication)
//	POST /console/login           form field token (and next): sets the session cookie, 303 to next
//	POST /console/logout          clears it, 303 to /
//
// Pages take ?sort=name|size|modified and ?order=desc. Without the token,
// a page answers 401 with the login form.
//
// Session: the login form's token, once checked, is kept in the cookie
// SessionCookie (HttpOnly, SameSite=Strict, Path=/, Secure with
// Options.TLS). The handler accepts it in place of the Authorization
// header, for the pages, the downloads and console.js's API requests;
// for a request that is not GET or HEAD it also wants the header
// ConsoleHeader, which a cross-site form cannot send and a cross-site
// script cannot send without the CORS preflight the server never grants.
const (
	SessionCookie = "tarstore-token"
	ConsoleHeader = "X-Tarstore-Console"
)

// console reports whether rt is one of the console's routes.
func (rt route) console() bool {
	return rt == routeConsole || rt == routeStatic || rt == routeLogin || rt == routeLogout
}

// consoleRoute is a console path; ok is false for any other.
func consoleRoute(path string) (rt route, rest string, ok bool) {
	switch {
	case path == "/":
		return routeConsole, "", true
	case path == "/console/login":
		return routeLogin, "", true
	case path == "/console/logout":
		return routeLogout, "", true
	case strings.HasPrefix(path, console.StaticPrefix):
		return routeStatic, "", true
	}
	if rest, ok := strings.CutPrefix(path, "/browse"); ok && (rest == "" || rest[0] == '/') {
		return routeConsole, rest, true
	}
	return routeUnknown, "", false
}

// sessionToken reports whether r carries the token in the session cookie.
func (h *Handler) sessionToken(r *http.Request) bool {
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(ck.Value))
	return subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
}

// sessionAllowed reports whether the session cookie may stand for the
// token on r: reads always, other methods with ConsoleHeader.
func sessionAllowed(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead || r.Header.Get(ConsoleHeader) != ""
}

// serveConsole serves a console route; authorized tells whether the
// request carries the token (or needs none).
func (h *Handler) serveConsole(c *call, rt route, rest string, authorized bool) {
	switch rt {
	case routeStatic:
		if h.methods(c, http.MethodGet, http.MethodHead) {
			c.w.Header().Set("Cache-Control", "no-cache")
			console.Static().ServeHTTP(c.w, c.r)
		}
	case routeLogin:
		if h.methods(c, http.MethodPost) {
			h.login(c)
		}
	case routeLogout:
		if h.methods(c, http.MethodPost) {
			http.SetCookie(c.w, h.sessionCookie("", -1))
			http.Redirect(c.w, c.r, "/", http.StatusSeeOther)
		}
	case routeConsole:
		if !h.methods(c, http.MethodGet, http.MethodHead) {
			return
		}
		if !authorized {
			h.renderLogin(c, http.StatusUnauthorized, c.r.URL.RequestURI(), false)
			return
		}
		h.page(c, rest)
	}
}

// sessionCookie is the session cookie holding value; maxAge < 0 deletes it.
func (h *Handler) sessionCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.opts.TLS, SameSite: http.SameSiteStrictMode}
}

// login checks the form's token and sets the session cookie.
func (h *Handler) login(c *call) {
	c.r.Body = http.MaxBytesReader(c.w, c.r.Body, 64<<10)
	if err := c.r.ParseForm(); err != nil {
		writeError(c.w, newError("invalid_argument", nil, "Invalid argument: login form: "+err.Error()))
		return
	}
	tok := strings.TrimSpace(c.r.PostForm.Get("token"))
	got := sha256.Sum256([]byte(tok))
	if h.opts.Token != "" && subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) != 1 {
		h.renderLogin(c, http.StatusUnauthorized, localPath(c.r.PostForm.Get("next")), true)
		return
	}
	if h.opts.Token != "" {
		http.SetCookie(c.w, h.sessionCookie(tok, 0))
	}
	http.Redirect(c.w, c.r, localPath(c.r.PostForm.Get("next")), http.StatusSeeOther)
}

// localPath is next when it is a path on this server, else "/": the login
// form cannot send anyone elsewhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// renderLogin answers with the login form, which leads to next.
func (h *Handler) renderLogin(c *call, status int, next string, failed bool) {
	setPageHeaders(c.w.Header())
	c.w.WriteHeader(status)
	if c.r.Method != http.MethodHead {
		console.RenderLogin(c.w, console.Login{Next: next, Failed: failed})
	}
}

// setPageHeaders sets the headers of a console page: HTML, not cached,
// not framed, and nothing loaded or run but the console's own files.
func setPageHeaders(hdr http.Header) {
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
	hdr.Set("Referrer-Policy", "same-origin")
}

// page serves the page of the dictionary whose path under /browse is rest.
func (h *Handler) page(c *call, rest string) {
	k, e := h.parseKey(rest)
	if e != nil {
		writeError(c.w, e)
		return
	}
	c.key, c.hasKey = k, true
	entries, err := h.store.List(k)
	if err != nil {
		if kind, xerr := h.store.Exists(k); xerr == nil && kind == kv.Value {
			http.Redirect(c.w, c.r, KeyPath(k), http.StatusSeeOther)
			return
		}
		writeError(c.w, kvError(err))
		return
	}
	p := console.Page{Key: k.String(), APIDir: dirPath(k), Crumbs: crumbs(k), ReadOnly: h.opts.ReadOnly,
		LoggedIn: h.opts.Token != "" && h.sessionToken(c.r)}
	for _, en := range entries {
		ce := console.Entry{Name: en.Key.Base(), Key: en.Key.String(), Dict: en.Kind == kv.Dictionary, APIPath: KeyPath(en.Key)}
		if ce.Dict {
			ce.Href = browsePath(en.Key)
		} else {
			ce.Href = ce.APIPath
			if n, err := h.store.Size(en.Key); err == nil {
				ce.Size = n
			}
		}
		if t, err := h.store.LastModified(en.Key); err == nil {
			ce.Modified = t
		}
		p.Entries = append(p.Entries, ce)
	}
	p.Sort, p.Desc = c.q.Get("sort"), c.q.Get("order") == "desc"
	if !slices.Contains(console.Sorts, p.Sort) {
		p.Sort = "name"
	}
	console.SortEntries(p.Entries, p.Sort, p.Desc)
	if st, err := h.status(); err == nil {
		p.ReadOnly = p.ReadOnly || st.ReadOnly
		p.Status = statusItems(st)
	}
	setPageHeaders(c.w.Header())
	c.w.WriteHeader(http.StatusOK)
	if c.r.Method != http.MethodHead {
		if err := console.Render(c.w, p); err != nil {
			h.log.Warn("rendering a console page", "key", k.String(), "err", err)
		}
	}
}

// browsePath is the console page of the dictionary k.
func browsePath(k kv.Key) string { return "/browse" + strings.TrimPrefix(KeyPath(k), "/v1/kv") }

// dirPath is k's /v1/kv path with a trailing "/", below which its
// children's paths are.
func dirPath(k kv.Key) string {
	p := KeyPath(k)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// crumbs are the steps from the root to k.
func crumbs(k kv.Key) []console.Crumb {
	out := []console.Crumb{{Name: "/", Href: "/"}}
	p := kv.Root
	for seg := range k.All() {
		p, _ = p.Add(seg)
		out = append(out, console.Crumb{Name: seg, Href: browsePath(p)})
	}
	return out
}

// statusItems is the status panel of st.
func statusItems(st Status) []console.StatusItem {
	items := []console.StatusItem{}
	if st.Capacity > 0 {
		items = append(items, console.StatusItem{Label: "Capacity", Value: console.HumanBytes(st.Capacity)})
	}
	items = append(items, console.StatusItem{Label: "Free", Value: console.HumanBytes(st.Free)})
	if st.Capacity > 0 {
		items = append(items, console.StatusItem{Label: "Entries", Value: strconv.Itoa(st.Entries)})
	}
	if d := st.Device; d.Driver != "" || d.Model != "" {
		dev := strings.TrimSpace(d.Driver + " " + d.Model)
		if d.SectorSize > 0 {
			dev += ", " + strconv.Itoa(d.SectorSize) + "-byte sectors"
		}
		items = append(items, console.StatusItem{Label: "Device", Value: dev})
	}
	if st.ReadOnly {
		why := "yes"
		if st.WhyReadOnly != "" {
			why = st.WhyReadOnly
		}
		items = append(items, console.StatusItem{Label: "Read-only", Value: why})
	}
	if st.Damage != "" {
		items = append(items, console.StatusItem{Label: "Damage", Value: st.Damage})
	}
	return append(items, console.StatusItem{Label: "Version", Value: st.Version})
}
