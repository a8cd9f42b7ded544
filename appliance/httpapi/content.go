package httpapi

import (
	"mime"
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
	ext := path.Ext(k.Base())
	if ext == "" {
		// mime registers only extensions that start with a dot; this
		// spares the lookups of the most common key.
		return fallbackContentType
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return fallbackContentType
}

// setValueHeaders sets the headers that describe a value's bytes: its type,
// "nosniff" so that browsers keep to that type, and a sandbox, so that a
// value served as HTML or SVG runs no script with the console's origin (it
// could otherwise act with the console's session).
func setValueHeaders(c *call) {
	c.setHeader("Content-Type", ContentType(c.key))
	c.setHeader("X-Content-Type-Options", "nosniff")
	c.setHeader("Content-Security-Policy", "sandbox")
}
