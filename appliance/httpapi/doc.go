// Package httpapi is tarstore's HTTP API v1 (SPEC §6): an http.Handler
// over any kv.RW. appliance/client is its Go client, itself a kv.RW.
//
// # Routes
//
//	GET    /v1/kv/{key}                  get; Range → 206 (get_partial); ETag, Last-Modified; If-None-Match → 304; Content-Type (content.go)
//	GET    /v1/kv/{key}?list[&recursive][&long]  list → ListBody (streamed)
//	HEAD   /v1/kv/{key}                  exists/stat: X-Tarstore-Kind, Content-Length (values), ETag, Last-Modified; 404
//	PUT    /v1/kv/{key}                  set, streamed; without Content-Length (chunked) staged in pieces (chunked.go); 201 new / 204 replaced; ETag of the new value
//	PATCH  /v1/kv/{key}?offset=N         set_partial; body ≤ Options.MaxPatch (413); 204
//	POST   /v1/kv/{key}?allocate=SIZE[&mtime=RFC3339]   allocate; 201
//	POST   /v1/kv/{key}?rename-to={dst}  rename; 204
//	POST   /v1/kv/{key}?open             open a reader session (below); 201 ReaderBody
//	DELETE /v1/kv/{key}                  remove; 204
//	GET    /v1/readers/{id}              read a reader session (Range → 206); DELETE closes it (204); 410 when gone
//	GET    /v1/status                    Status
//	GET    /metrics                      Prometheus text format 0.0.4
//	GET    /healthz                      "ok" (no authentication)
//	POST   /v1/check                     online check of the whole store → CheckReport; 429 while one runs (below)
//	POST   /v1/shutdown                  202, then Options.Shutdown (the appliance flushes and powers off); 501 without it
//	GET    /, /browse/{key}              the web console's pages (console.go, package console)
//	GET    /console/static/{file}        its style sheet and script (no authentication)
//	POST   /console/login, /logout       its session: the token in an HttpOnly cookie
//
// Keys are taken from the escaped request path after "/v1/kv", by hand:
// net/http's ServeMux would clean /v1/kv/a/../b into a redirect, and a key
// with a "." or ".." segment must be refused instead. "/v1/kv" and
// "/v1/kv/" are the root; empty segments are dropped, as kv.ParseKey does;
// each segment is percent-decoded on its own, so %2F cannot make a segment
// and %2e%2e is still "..". Bad keys — ".", "..", NUL, a segment over 255
// bytes, a key over Options.MaxKeyLen — are 400 invalid_key. KeyPath builds
// the path of a key.
//
// Keys that are not UTF-8 (keys.go): a key written — PUT, PATCH, POST
// ?allocate, the destination of ?rename-to — must be valid UTF-8, at every
// length (kvtar can store a long name only in a PAX record, which must be
// UTF-8); others are 400 invalid_key. Keys already stored that are not
// UTF-8 (from a foreign archive) can be read, listed, renamed and removed.
// JSON cannot carry them exactly, so wherever a key appears in a JSON body
// ("key", "dest": ListBody, ListEntry, ReaderBody, ErrorDetail) and is not
// valid UTF-8, a "key_pct" (or "dest_pct") field beside it holds the key
// percent-encoded segment by segment (PctKey: "/nu/%FF%FE"), which names it
// exactly and is its path under /v1/kv; "key" then has U+FFFD in place of
// the bad bytes and must not be used to name it.
//
// ?no-digest on GET and HEAD leaves the ETag out (unless a precondition
// needs it): the client uses it for Exists, Size, LastModified, Get and
// GetPartial, which do not need a digest that may cost a read of the whole
// value or subtree. On PUT it leaves out the hashing of the body (SHA-256
// runs at about the speed of a fast disk) and the ETag of the answer; the
// client uses it for Set and SetFrom.
//
// # Errors
//
// Errors are JSON ErrorBody {"error":{"code","key","message"}} (plus "op"
// and, for rename_source_prefix, "dest"), the message being kv's Message in
// the Mirage wording, with the status of StatusCode: 404 not_found; 409
// value_expected, dictionary_expected, already_present,
// rename_source_prefix; 507 no_space; 400 invalid_key, invalid_argument;
// 403 read_only; 401 unauthorized
// (with WWW-Authenticate: Bearer); 412 precondition_failed; 413 too_large;
// 405 method_not_allowed (with Allow); 408 request_timeout (a request
// body that stalled or crawled, with Connection: close); 416
// range_not_satisfiable (with
// Content-Range: bytes */size); 410 reader_gone; 429 rate_limited (a
// check refused, with Retry-After); 501 not_implemented (a store without
// a check); 503 closed,
// too_many_readers and overloaded (the appliance's listener: no connection
// slot, with Retry-After); 500 storage_error, corrupt and internal. Every error
// response also carries its code in the X-Tarstore-Error header, so that
// HEAD responses, which have no body, tell it too. A negative PATCH offset
// or allocate size is passed to the store, so that it is refused in the
// store's words, as it is embedded.
//
// Sizes and offsets from a request never reach arithmetic unchecked
// (MaxValueSize, room.go): an allocate larger than the device's capacity
// (Options.Status, else the free space) and a PUT whose Content-Length
// exceeds the free space are 507 no_space without the store seeing the
// size, after the checks the store makes first (RoomError: already_present,
// dictionary_expected, ...); a PATCH offset past MaxValueSize is past the
// end of every value and appends as MaxValueSize does; Range values are
// clamped to the value, and one that does not fit an int64 is ignored.
//
// # Design decisions
//
// ETag: the strong entity tag "<lowercase hex of the kv digest>", SHA-256
// of a value or kv.DictDigest of a dictionary, as SPEC §3 defines Digest. A
// GET computes it from the very reader it streams from, so the tag always
// describes the bytes sent: a reader that knows its value's digest (the tar
// store's, kept in its index) gives it without a read, so a GET of a small
// value is one device read; from any other reader the handler hashes the
// value first. The handler caches no digests: they are the store's.
//
// PUT answers 201 Created (with Location) when the key was absent and 204
// No Content when something — a value or a dictionary, which set replaces
// whole — was there; both carry the new ETag. A PUT whose Content-Length
// exceeds the free space (Options.Status().Free, else store.Free()) is
// refused with 507 before its body is read; clients that send
// "Expect: 100-continue" never send it. A body that ends early is 400
// invalid_argument and changes nothing. A PUT without Content-Length (a
// chunked body: `tar c dir | curl -T - URL`) is stored all or nothing
// too, its pieces staged under UploadDir while it arrives (chunked.go).
//
// Content-Type: a value is answered with the type of its key's extension
// (mime.TypeByExtension; application/octet-stream without one it knows),
// "X-Content-Type-Options: nosniff" and "Content-Security-Policy:
// sandbox", so that a value a browser renders (HTML, SVG) runs no script
// with the console's origin. The store keeps no type of its own: the key
// names it, as a file name does.
//
// The web console (console.go) is the same handler's pages at / and
// /browse/{key}: they read the store as the API does, and console.js
// writes through the API. With Options.Token a page asks for the token
// once and keeps it in an HttpOnly, SameSite=Strict cookie, which stands
// for the Authorization header on every route; a write with the cookie
// needs the X-Tarstore-Console header as well (no other site can send
// it), so the cookie cannot be used across sites.
//
// Conditional writes: If-Match, If-None-Match (* or tags) and
// If-Unmodified-Since are honoured by PUT, PATCH, POST and DELETE (for
// rename, on the source), in the order of RFC 9110 §13.2.2, with 412
// precondition_failed. Every write holds a lock on its key(s) from the
// precondition check to the store's acknowledgement; locks conflict when
// one key is a segment-wise prefix of the other, since a write to /a
// changes /a/b and the other way round. Writes on unrelated keys run
// concurrently, so a store can still group their commits; a slow PUT body
// delays writes to related keys only.
//
// Ranges: one range "a-b", "a-" or "-n" is served as 206, clamped to the
// value; a range starting at or past the end (every range of an empty
// value, and "-0") is 416. Several ranges are answered with the whole value
// (200): RFC 9110 lets a server ignore Range, and this avoids
// multipart/byteranges and the overlapping-range amplification it invites.
// A malformed Range, one with last < first, or another unit is ignored
// likewise (200). If-Range with a strong tag or an exact date is honoured.
// GET and HEAD honour If-Match, If-Unmodified-Since, If-None-Match and
// If-Modified-Since (304 with the ETag).
//
// Reader sessions: kv.Reader is a snapshot — it keeps reading the bytes it
// was opened on after the key is replaced or removed — which Range
// requests pinned to an ETag cannot give. POST ?open therefore opens a
// kv.Reader on the server and returns its id; the client reads it with
// Range requests and closes it with DELETE. Sessions idle for
// Options.ReaderTimeout are closed lazily, at most Options.MaxReaders are
// open (503 too_many_readers beyond), and Handler.Close closes them all;
// call it before closing the store.
//
// Authentication: with Options.Token, every route but /healthz needs
// "Authorization: Bearer <token>", compared in constant time (of SHA-256
// digests, so the token's length does not leak either). Read-only: every
// write is 403 read_only; opening readers is a read.
//
// # Online check
//
// POST /v1/check runs the store's check (Options.Check; the appliance
// passes kvtar's Store.Check, which rescans the archive, compares it with
// the store's index, verifies every value's data against the CRC-32C in
// its header and the tar readers' limits) and answers 200 with a
// CheckReport whether or not it found problems:
//
//	{"ok":false,"fatal":1,
//	 "problems":[{"offset":1024,"key":"/d/v","what":"the data does not match the CRC-32C in its header","fatal":true}],
//	 "values":2,"end":2048,"capacity":1032192,"free":1029120,
//	 "started":"2026-12-02T20:09:55.585888602Z","seconds":0.000350844}
//
// "ok" is false when a problem is fatal (the archive is damaged, or the
// store and the device disagree); "problems" lists every problem, fatal
// or not ([] when there is none), each with the archive offset at fault,
// the key or member name when there is one (with "key_pct",
// its exact bytes percent-encoded, when it is not UTF-8); the counts are
// the store's just after the check. A check that cannot read the device is
// a 500 storage_error; a store without a check answers 501
// not_implemented. The route needs the bearer token like every other; on
// a read-only server it runs too (it is a read).
//
// POST, not GET: a check is not free. kvtar's Check blocks the store's
// writes for as long as it runs (reads go on) — about 6 s for a 1 GiB
// image full of 64 KiB values on a virtual disk that reads 1 GB/s — so a
// write that arrives meanwhile waits and is answered when the check ends.
// So that checks do not starve writers, one runs at a time: a request
// while one runs, or sooner than CheckPauseFactor (4) times the last
// check's duration after it ended (at least Options.CheckPause), is
// refused at once with 429 rate_limited and a Retry-After (whole seconds,
// at least 1) — it does not queue — so checks hold writes for at most a
// fifth of the time. The check is not cancelled when its client goes
// away. In the appliance the route is not one of the reserve connections'
// light routes: with every slot taken it is 503 overloaded there.
//
// Metrics (/metrics, text format 0.0.4): tarstore_requests_total{op,code}
// (op is the kv operation — get, get_partial, list, exists for HEAD, set,
// set_partial, allocate, rename, remove, open, read, close_reader — or the
// route: status, metrics, healthz, check, shutdown, console, other; code is the HTTP status),
// tarstore_request_duration_seconds{op} (histogram), tarstore_bytes_read_total,
// tarstore_bytes_written_total, tarstore_open_readers, and from the status
// tarstore_free_bytes, tarstore_read_only, tarstore_build_info{version}
// and, with Options.Status, tarstore_capacity_bytes,
// tarstore_largest_value_bytes and tarstore_entries.
//
// Logs (access.go): with Options.AccessLog one record per request (method,
// key, status, bytes, duration, client); Options.Logger gets server errors
// with their code and message.
//
// Bounds: PUT bodies are streamed to the store (bounded memory, length
// fixed by Content-Length, or read in Options.UploadPiece pieces when
// chunked); PATCH bodies are held in memory up to
// Options.MaxPatch; error bodies and JSON are small. Bodies are read under
// a moving deadline (deadline.go): a body that brings no byte for
// Options.BodyTimeout, or averages less than Options.MinBodyRate once it
// has been arriving that long, is cut with 408 request_timeout, and the
// write it fed changes nothing and releases its locks; a client that takes
// no byte of a value for BodyTimeout is cut too. Header sizes and timeouts
// and connection counts are the http.Server's, set by the appliance.
package httpapi
