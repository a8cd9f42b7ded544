package httpapi

import (
	"mime"
	"net/http"
	"path"

	"github.com/tarstore/tarstore/kv"
)

// fallbackContentType is the Content-Type of a value whose key has no
// extension mime knows.
const fallbackContentType = "application/octet-stream"

// ContentType is the Content-Type a GET of k answers: the type mime
// registers for the extension of k's last segment ("/docs/a.txt" →
// "text/plain; charset=utf-8"), else application/octet-stream. The store
// keeps no type of its own: the key names it, as a file name does.
func ContentType(k kv.Key) string {
	if t := mime.TypeByExtension(path.Ext(k.Base())); t != "" {
		return t
	}
	return fallbackContentType
}

// setValueHeaders sets the headers that describe a value's bytes: its type,
// "nosniff" so that browsers keep to that type, and a sandbox, so that a
// value served as HTML or SVG runs no script with the console's origin (it
// could otherwise act with the console's session).
func setValueHeaders(hdr http.Header, k kv.Key) {
	hdr.Set("Content-Type", ContentType(k))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "sandbox")
}
