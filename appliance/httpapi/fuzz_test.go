package httpapi_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// fuzzStatuses are the statuses the API answers with (doc.go). 500 is not
// among them: on a healthy in-memory store it would be a bug.
var fuzzStatuses = map[int]bool{
	200: true, 201: true, 204: true, 206: true, 304: true,
	400: true, 401: true, 403: true, 404: true, 405: true, 408: true, 409: true, 410: true,
	411: true, 412: true, 413: true, 416: true, 429: true, 501: true, 503: true, 507: true,
}

// fuzzRequest builds the request a client would send from the fuzzer's
// parts, as net/http's server parses it; false when net/http would refuse
// it before any handler runs.
func fuzzRequest(method, path, query, headers string, body []byte) (*http.Request, bool) {
	var b strings.Builder
	b.WriteString(method + " " + path)
	if query != "" {
		b.WriteString("?" + query)
	}
	b.WriteString(" HTTP/1.1\r\nHost: fuzz\r\n")
	sized := false
	for _, line := range strings.Split(headers, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		if n := strings.ToLower(strings.TrimSpace(name)); n == "content-length" || n == "transfer-encoding" {
			sized = true
		}
		b.WriteString(line + "\r\n")
	}
	if !sized {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
	if err != nil {
		return nil, false
	}
	req.RemoteAddr = "192.0.2.1:4321"
	return req, true
}

// fuzzStore is a small kvtar store on memory with a few keys.
func fuzzStore(t *testing.T) *kvtar.Store {
	dev, err := mem.New(512, 512) // 256 KiB
	if err != nil {
		t.Fatal(err)
	}
	if err := kvtar.Format(dev); err != nil {
		t.Fatal(err)
	}
	st, err := kvtar.New(clock.NewFake(t0), dev)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"/a": "hello, world", "/d/x": "x", "/d/e/f": "", "/nu/\xff": "not UTF-8"} {
		if err := st.Set(kv.MustKey(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// FuzzHandler sends arbitrary requests (method, path, query, headers,
// body) to the handler over a small kvtar store: it must not panic, must
// answer with a status of the API, every error must be a well-formed JSON
// error body whose code matches its status and X-Tarstore-Error header,
// and the store must still check clean. The seeds run as ordinary tests;
// scripts/test.sh also fuzzes it for a bounded time.
func FuzzHandler(f *testing.F) {
	max := strconv.FormatInt(1<<63-1, 10)
	for _, s := range []struct {
		method, path, query, headers, body string
	}{
		{"GET", "/v1/kv/a", "", "", ""},
		{"GET", "/v1/kv/a", "", "Range: bytes=0-" + max, ""},
		{"GET", "/v1/kv/a", "", "Range: bytes=-" + max, ""},
		{"GET", "/v1/kv/a", "", "Range: bytes=" + max + "-", ""},
		{"GET", "/v1/kv/a", "", "Range: bytes=9223372036854775806-" + max, ""},
		{"GET", "/v1/kv/a", "", "Range: bytes=1-2,3-4\nIf-Range: \"x\"", ""},
		{"HEAD", "/v1/kv/d", "", "If-None-Match: *", ""},
		{"GET", "/v1/kv/d", "list", "", ""},
		{"GET", "/v1/kv/nu", "list", "", ""},
		{"GET", "/v1/kv/nu/%FF", "", "", ""},
		{"PUT", "/v1/kv/b", "", "", "new value"},
		{"PUT", "/v1/kv/b", "no-digest", "If-Match: *", "v"},
		{"PUT", "/v1/kv/big", "", "Content-Length: " + max, "x"},
		{"PUT", "/v1/kv/big", "", "Content-Length: 9223372036854775000", ""},
		{"PUT", "/v1/kv/short", "", "Content-Length: 10", "abc"},
		{"PUT", "/v1/kv/chunked", "", "Transfer-Encoding: chunked", "3\r\nabc\r\n0\r\n\r\n"},
		{"PUT", "/v1/kv/nu/%fe", "", "", "x"},
		{"PUT", "/v1/kv/a/../b", "", "", "x"},
		{"PATCH", "/v1/kv/a", "offset=" + max, "", "zz"},
		{"PATCH", "/v1/kv/a", "offset=9223372036854775806", "", "zz"},
		{"PATCH", "/v1/kv/a", "offset=-1", "", "zz"},
		{"POST", "/v1/kv/x", "allocate=" + max, "", ""},
		{"POST", "/v1/kv/x", "allocate=9223372036854775000", "", ""},
		{"POST", "/v1/kv/x", "allocate=9223372036854774000", "", ""},
		{"POST", "/v1/kv/x", "allocate=8191T", "", ""},
		{"POST", "/v1/kv/x", "allocate=-" + max, "", ""},
		{"POST", "/v1/kv/a", "allocate=" + max, "", ""},
		{"POST", "/v1/kv/a/b", "allocate=" + max, "", ""},
		{"POST", "/v1/kv/x", "allocate=1K&mtime=2024-01-01T00:00:00Z", "", ""},
		{"POST", "/v1/kv/a", "rename-to=/d/y", "", ""},
		{"POST", "/v1/kv/a", "open", "", ""},
		{"GET", "/v1/readers/0123", "", "Range: bytes=0-" + max, ""},
		{"DELETE", "/v1/kv/d", "", "If-Unmodified-Since: Mon, 01 Jan 2024 00:00:00 GMT", ""},
		{"GET", "/v1/status", "", "", ""},
		{"GET", "/metrics", "", "", ""},
		{"GET", "/healthz", "", "", ""},
		{"POST", "/v1/check", "", "", ""},
		{"GET", "/v1/check", "x", "", "body"},
		{"OPTIONS", "/v1/kv/a", "", "", ""},
		{"GET", "/v1/kv/a", "x=%zz", "", ""},
	} {
		f.Add(s.method, s.path, s.query, s.headers, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path, query, headers string, body []byte) {
		req, ok := fuzzRequest(method, path, query, headers, body)
		if !ok {
			return
		}
		st := fuzzStore(t)
		defer st.Close()
		h := httpapi.New(st, httpapi.Options{MaxPatch: 4096, Status: func() (httpapi.Status, error) {
			info, err := st.Stat()
			return httpapi.Status{Capacity: info.Size, Free: info.Free, Entries: info.Values}, err
		}, Check: appliance.CheckFunc(st)})
		defer h.Close()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		code := rec.Code
		if !fuzzStatuses[code] {
			t.Fatalf("%s %s: status %d: %s", req.Method, req.URL, code, rec.Body.String())
		}
		hdr := rec.Header()
		if code >= 400 {
			var eb httpapi.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
				t.Fatalf("%s %s: %d with a body that is not JSON: %q", req.Method, req.URL, code, rec.Body.String())
			}
			d := eb.Error
			switch {
			case d.Code == "" || d.Message == "":
				t.Fatalf("%s %s: %d: error body without a code or message: %s", req.Method, req.URL, code, rec.Body.String())
			case hdr.Get(httpapi.HeaderError) != d.Code:
				t.Fatalf("%s %s: X-Tarstore-Error %q, body code %q", req.Method, req.URL, hdr.Get(httpapi.HeaderError), d.Code)
			case hdr.Get("Content-Type") != "application/json":
				t.Fatalf("%s %s: error with Content-Type %q", req.Method, req.URL, hdr.Get("Content-Type"))
			case httpapi.StatusCode(d.Code) != code && !(code == http.StatusLengthRequired && d.Code == "invalid_argument"):
				t.Fatalf("%s %s: code %s with status %d", req.Method, req.URL, d.Code, code)
			}
			if d.KeyPct != "" {
				if _, err := httpapi.ParsePctKey(d.KeyPct); err != nil {
					t.Fatalf("%s %s: key_pct %q does not parse: %v", req.Method, req.URL, d.KeyPct, err)
				}
			}
		} else if strings.HasPrefix(hdr.Get("Content-Type"), "application/json") && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: %d with invalid JSON: %q", req.Method, req.URL, code, rec.Body.String())
		}
		ps, err := st.Check()
		if err != nil {
			t.Fatalf("%s %s: check: %v", req.Method, req.URL, err)
		}
		for _, p := range ps {
			if p.Fatal {
				t.Fatalf("%s %s: the store does not check clean: %s", req.Method, req.URL, p)
			}
		}
	})
}
