package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/tarstore/tarstore/kv"
)

// ReaderBody is the JSON body of POST /v1/kv/{key}?open: a reader session
// over a snapshot of the value (kv.Reader), read with
// GET /v1/readers/{id} and Range, closed with DELETE /v1/readers/{id}.
type ReaderBody struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	KeyPct string `json:"key_pct,omitempty"` // when Key is not valid UTF-8 (keys.go)
	Size   int64  `json:"size"`
}

// Defaults of the reader sessions.
const (
	DefaultReaderTimeout = 5 * time.Minute
	DefaultMaxReaders    = 1024
)

// session is one open reader.
type session struct {
	id   string
	key  kv.Key
	r    kv.Reader
	last time.Time // last use; guarded by readerTable.mu
	refs int       // requests using r; guarded by readerTable.mu
	dead bool      // removed from the table; r is closed when refs drops to 0
}

// readerTable holds the open reader sessions. Sessions idle for longer than
// timeout are closed, lazily, whenever the table is used.
type readerTable struct {
	mu      sync.Mutex
	byID    map[string]*session
	timeout time.Duration
	max     int
	now     func() time.Time
}

func newReaderTable(timeout time.Duration, max int) *readerTable {
	return &readerTable{byID: map[string]*session{}, timeout: timeout, max: max, now: time.Now}
}

func (t *readerTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// sweepLocked removes the expired sessions and returns the readers to
// close. The caller holds t.mu.
func (t *readerTable) sweepLocked() []kv.Reader {
	var closing []kv.Reader
	now := t.now()
	for id, s := range t.byID {
		if s.refs == 0 && now.Sub(s.last) > t.timeout {
			delete(t.byID, id)
			s.dead = true
			closing = append(closing, s.r)
		}
	}
	return closing
}

func closeReaders(rs []kv.Reader) {
	for _, r := range rs {
		r.Close()
	}
}

// add registers r and returns its session id, or false when the table is
// full.
func (t *readerTable) add(k kv.Key, r kv.Reader) (string, bool) {
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	t.mu.Lock()
	closing := t.sweepLocked()
	ok := len(t.byID) < t.max
	if ok {
		t.byID[id] = &session{id: id, key: k, r: r, last: t.now()}
	}
	t.mu.Unlock()
	closeReaders(closing)
	return id, ok
}

// acquire returns the session id for a request, which must release it.
func (t *readerTable) acquire(id string) (*session, bool) {
	t.mu.Lock()
	closing := t.sweepLocked()
	s, ok := t.byID[id]
	if ok {
		s.refs++
		s.last = t.now()
	}
	t.mu.Unlock()
	closeReaders(closing)
	return s, ok
}

func (t *readerTable) release(s *session) {
	t.mu.Lock()
	s.refs--
	s.last = t.now()
	closing := s.dead && s.refs == 0
	t.mu.Unlock()
	if closing {
		s.r.Close()
	}
}

// remove closes the session id (once its requests are done). It reports
// whether there was one.
func (t *readerTable) remove(id string) bool {
	t.mu.Lock()
	s, ok := t.byID[id]
	closing := false
	if ok {
		delete(t.byID, id)
		s.dead = true
		closing = s.refs == 0
	}
	t.mu.Unlock()
	if closing {
		s.r.Close()
	}
	return ok
}

// closeAll closes every session.
func (t *readerTable) closeAll() {
	t.mu.Lock()
	var closing []kv.Reader
	for id, s := range t.byID {
		delete(t.byID, id)
		s.dead = true
		if s.refs == 0 {
			closing = append(closing, s.r)
		}
	}
	t.mu.Unlock()
	closeReaders(closing)
}
