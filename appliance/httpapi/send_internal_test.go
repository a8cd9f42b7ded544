package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// failingReaderAt fails every read with err, after giving half of what
// was asked.
type failingReaderAt struct{ err error }

func (r failingReaderAt) ReadAt(p []byte, off int64) (int, error) { return len(p) / 2, r.err }

// TestSendValueReadFails: a value that fits one chunk is read before the
// status is sent, so a failed read is answered with an error, not with a
// 200 and a truncated body.
func TestSendValueReadFails(t *testing.T) {
	h := New(kvtest.NewModel(clock.NewFake(time.Unix(0, 0))), Options{})
	defer h.Close()
	for _, rh := range []string{"", "bytes=2-5"} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/v1/kv/a", nil)
		if rh != "" {
			r.Header.Set("Range", rh)
		}
		c := &call{w: &statusRecorder{ResponseWriter: rec}, r: r, key: kv.MustKey("/a"), hasKey: true}
		h.sendValue(c, failingReaderAt{errors.New("medium error")}, 10, true)
		assert.Equal(t, http.StatusInternalServerError, rec.Code, "Range %q", rh)
		var body ErrorBody
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "Range %q: %s", rh, rec.Body)
		assert.Contains(t, body.Error.Message, "medium error")
		assert.Empty(t, rec.Header().Get("Content-Range"), "Range %q", rh)
	}
}
