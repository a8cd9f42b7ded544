package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// Logs. Every request ends in two places:
//
//   - Options.AccessLog (off when nil), one record "request" per request
//     at level INFO, as access logs go: method, key (the key of a /v1/kv
//     request as kv prints it, else the escaped path), status, bytes (of
//     the response body sent), duration (seconds, a float), client (the
//     peer's address), op (the metrics label) and, for an error, its code.
//     The appliance writes them as text or JSON lines (slog's handlers);
//     the record's fields are the same in both.
//   - Options.Logger: the same record at DEBUG, and at ERROR for a 5xx
//     answer, with the error's code and message (a storage error names the
//     device's fault there), so that a server error can be acted on from
//     the log alone.
func (h *Handler) logRequest(c *call, d time.Duration) {
	code := c.w.code()
	level := slog.LevelDebug
	if code >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	ctx := c.r.Context()
	access := h.opts.AccessLog != nil && h.opts.AccessLog.Enabled(ctx, slog.LevelInfo)
	if !access && !h.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", c.r.Method),
		slog.String("key", c.logKey()),
		slog.Int("status", code),
		slog.Int64("bytes", c.w.bytes),
		slog.Float64("duration", d.Seconds()),
		slog.String("client", c.r.RemoteAddr),
		slog.String("op", c.op),
	}
	if e := c.w.err; e != nil {
		attrs = append(attrs, slog.String("error", e.Code))
	}
	if access {
		h.opts.AccessLog.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
	}
	if e := c.w.err; e != nil && level == slog.LevelError {
		attrs = append(attrs, slog.String("message", e.Message))
	}
	h.log.LogAttrs(ctx, level, "request", attrs...)
}

// logKey is what the logs name a request by: its key, or its path.
func (c *call) logKey() string {
	if c.hasKey {
		return c.key.String()
	}
	return c.r.URL.EscapedPath()
}
