package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// Entry is one entry of a Walk: a key, its kind, a value's size and the
// last-modified time (kv's last_modified; for a dictionary the newest of
// its direct entries). Size and LastModified are zero when the entry was
// removed while it was listed.
type Entry struct {
	Key          kv.Key
	Kind         kv.Kind
	Size         int64
	LastModified time.Time
}

// Walk calls fn for each entry below the dictionary k, in the server's
// order (GET /v1/kv/{k}?list&long, with &recursive when recursive is
// set): the direct children sorted by key, or with recursive everything
// below k depth first, each dictionary followed by what is below it. The
// listing is decoded as it arrives, so memory does not grow with it. An
// error of fn stops the walk and is returned; so is a failure the server
// reports in the middle of the listing (as a *kv.Error of "list").
func (c *Client) Walk(k kv.Key, recursive bool, fn func(Entry) error) error {
	const op = "list"
	if c.closed.Load() {
		return kv.Closed(op, k)
	}
	q := url.Values{"list": {""}, "long": {""}}
	if recursive {
		q.Set("recursive", "")
	}
	resp, err := c.do(request{method: http.MethodGet, path: httpapi.KeyPath(k), query: q})
	if err != nil {
		return kv.Storage(op, k, err)
	}
	if resp.StatusCode != http.StatusOK {
		return responseError(op, k, resp)
	}
	defer resp.Body.Close()
	ld := &listDecoder{op: op, k: k, d: json.NewDecoder(resp.Body)}
	return ld.decode(fn)
}

// listDecoder reads a httpapi.ListBody token by token: entries one at a
// time, then the error the server may have ended the body with.
type listDecoder struct {
	op string
	k  kv.Key
	d  *json.Decoder
}

func (ld *listDecoder) fail(err error) error {
	return kv.Storage(ld.op, ld.k, fmt.Errorf("decoding the server's listing: %w", err))
}

// delim reads the next token, which must be the delimiter want.
func (ld *listDecoder) delim(want json.Delim) error {
	tok, err := ld.d.Token()
	if err != nil {
		return ld.fail(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return ld.fail(fmt.Errorf("found %v where %v was expected", tok, want))
	}
	return nil
}

func (ld *listDecoder) decode(fn func(Entry) error) error {
	if err := ld.delim('{'); err != nil {
		return err
	}
	sawEntries := false
	for ld.d.More() {
		tok, err := ld.d.Token()
		if err != nil {
			return ld.fail(err)
		}
		switch tok {
		case "entries":
			if err := ld.entries(fn); err != nil {
				return err
			}
			sawEntries = true
		case "error":
			var d httpapi.ErrorDetail
			if err := ld.d.Decode(&d); err != nil {
				return ld.fail(err)
			}
			return apiError(ld.op, ld.k, httpapi.StatusCode(d.Code), d)
		default:
			var skip json.RawMessage
			if err := ld.d.Decode(&skip); err != nil {
				return ld.fail(err)
			}
		}
	}
	if err := ld.delim('}'); err != nil {
		return err
	}
	if !sawEntries {
		return ld.fail(io.ErrUnexpectedEOF)
	}
	return nil
}

// entries reads the entries array, calling fn for each.
func (ld *listDecoder) entries(fn func(Entry) error) error {
	if err := ld.delim('['); err != nil {
		return err
	}
	for ld.d.More() {
		var le httpapi.ListEntry
		if err := ld.d.Decode(&le); err != nil {
			return ld.fail(err)
		}
		e, err := ld.entry(le)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return ld.delim(']')
}

func (ld *listDecoder) entry(le httpapi.ListEntry) (Entry, error) {
	ek, ok := bodyKey(le.Key, le.KeyPct)
	e := Entry{Key: ek}
	switch le.Kind {
	case "value":
		e.Kind = kv.Value
	case "dictionary":
		e.Kind = kv.Dictionary
	}
	if !ok || e.Kind == kv.None {
		return e, kv.Storage(ld.op, ld.k, fmt.Errorf("the server listed %s %q", le.Kind, le.Key))
	}
	if le.Size != nil {
		e.Size = *le.Size
	}
	if le.LastModified != nil {
		e.LastModified = *le.LastModified
	}
	return e, nil
}
