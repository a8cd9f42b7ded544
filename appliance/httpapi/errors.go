package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/tarstore/tarstore/kv"
)

// ErrorBody is the JSON body of every error response (SPEC §6):
//
//	{"error":{"code":"not_found","key":"/a/b","message":"Cannot find the key /a/b"}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody. Code is a kv code
// ("not_found", "value_expected", ...) or one of the HTTP-level codes below;
// Key is the key the error names (for dictionary_expected on a prefix value:
// that prefix), absent when the error is about no key; Message is kv's
// (*Error).Message, in the Mirage wording. Op and Dest are additions: the
// store operation that failed and, for rename_source_prefix, the
// destination. KeyPct and DestPct name Key and Dest exactly when they are
// not valid UTF-8 (keys.go).
type ErrorDetail struct {
	Code    string `json:"code"`
	Key     string `json:"key,omitempty"`
	KeyPct  string `json:"key_pct,omitempty"`
	Message string `json:"message"`
	Op      string `json:"op,omitempty"`
	Dest    string `json:"dest,omitempty"`
	DestPct string `json:"dest_pct,omitempty"`
}

// Codes of errors that are not kv errors.
const (
	CodeUnauthorized       = "unauthorized"          // 401: missing or wrong bearer token
	CodePreconditionFailed = "precondition_failed"   // 412: If-Match / If-None-Match / If-Unmodified-Since
	CodeTooLarge           = "too_large"             // 413: a PATCH body over Options.MaxPatch
	CodeMethodNotAllowed   = "method_not_allowed"    // 405
	CodeRangeNotSatisfied  = "range_not_satisfiable" // 416
	CodeReaderGone         = "reader_gone"           // 410: a reader session that expired or was closed
	CodeTooManyReaders     = "too_many_readers"      // 503: Options.MaxReaders sessions are open
	CodeInternal           = "internal"              // 500: an error that wraps no kv sentinel
	CodeRequestTimeout     = "request_timeout"       // 408: a request body that stalled (deadline.go)
	CodeOverloaded         = "overloaded"            // 503: no connection slot (the appliance's listener)
)

// HeaderError carries the error code on every error response, so that
// clients learn it from HEAD responses too, which have no body.
const HeaderError = "X-Tarstore-Error"

// StatusCode maps an error code (a kv code or one of the Code constants) to
// the HTTP status of SPEC §6. Unknown codes are 500.
func StatusCode(code string) int {
	switch code {
	case "not_found":
		return http.StatusNotFound
	case "value_expected", "dictionary_expected", "already_present", "rename_source_prefix":
		return http.StatusConflict
	case "no_space":
		return http.StatusInsufficientStorage
	case "invalid_key", "invalid_argument":
		return http.StatusBadRequest
	case "read_only":
		return http.StatusForbidden
	case "closed", CodeTooManyReaders, CodeOverloaded:
		return http.StatusServiceUnavailable
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodePreconditionFailed:
		return http.StatusPreconditionFailed
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeRangeNotSatisfied:
		return http.StatusRequestedRangeNotSatisfiable
	case CodeReaderGone:
		return http.StatusGone
	case CodeRequestTimeout:
		return http.StatusRequestTimeout
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeNotImplemented:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError // storage_error, corrupt, internal
}

// apiError is an error response: its status and body.
type apiError struct {
	status int
	detail ErrorDetail
}

// newError is the response for an error that is not a store's.
func newError(code string, k *kv.Key, msg string) *apiError {
	d := ErrorDetail{Code: code, Message: msg}
	if k != nil {
		d.Key, d.KeyPct = k.String(), keyPct(*k)
	}
	return &apiError{status: StatusCode(code), detail: d}
}

// kvError is the response for err, an error of a store operation (or a
// *kv.Error the handler builds).
func kvError(err error) *apiError {
	var ke *kv.Error
	if !errors.As(err, &ke) {
		return &apiError{status: http.StatusInternalServerError, detail: ErrorDetail{Code: kv.Code(err), Message: err.Error()}}
	}
	code := kv.Code(ke)
	d := ErrorDetail{Code: code, Key: ke.Key.String(), KeyPct: keyPct(ke.Key), Message: ke.Message(), Op: ke.Op}
	if errors.Is(ke, kv.ErrRenameSourcePrefix) {
		d.Dest, d.DestPct = ke.Dest.String(), keyPct(ke.Dest)
	}
	return &apiError{status: StatusCode(code), detail: d}
}

// invalidArgument is the 400 invalid_argument response of op on k.
func invalidArgument(op string, k kv.Key, detail string) *apiError {
	return kvError(kv.InvalidArgument(op, k, detail))
}

// writeError sends e. HEAD responses carry only the headers.
func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	for _, name := range []string{"ETag", "Last-Modified", "Accept-Ranges", "X-Tarstore-Kind", "X-Tarstore-Size", "Content-Length"} {
		h.Del(name)
	}
	if e.status != http.StatusRequestedRangeNotSatisfiable {
		h.Del("Content-Range") // 416 keeps "bytes */size"
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderError, e.detail.Code)
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="tarstore"`)
	}
	if rec, ok := w.(*statusRecorder); ok {
		rec.err = &e.detail
	}
	b, _ := json.Marshal(ErrorBody{Error: e.detail})
	w.WriteHeader(e.status)
	w.Write(append(b, '\n'))
}
