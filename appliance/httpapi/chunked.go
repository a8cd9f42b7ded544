package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"

	"github.com/tarstore/tarstore/kv"
)

// Chunked uploads. A PUT without Content-Length (a chunked body, as
// `tar c dir | curl -T - URL` sends) is stored like any PUT, all or
// nothing, although the store's SetFrom needs the size before the first
// byte:
//
//   - the body is read in pieces of Options.UploadPiece bytes
//     (DefaultUploadPiece), the memory an upload holds;
//   - a body that ends within its first piece is stored from memory with
//     one SetFrom, as a PUT with its length would be;
//   - otherwise each full piece is stored as a value of its own under
//     UploadDir (/.tarstore-upload/ID/0, /1, ...), and when the body ends
//     the key is set from the pieces and the last bytes in one SetFrom,
//     then the pieces are removed. The key changes once, at that SetFrom,
//     and not at all when anything fails before: a body that breaks off,
//     stalls (408) or outgrows the room leaves neither the key nor any
//     piece behind.
//
// Room: a staged body needs twice its size while the key is set from its
// pieces, so it is refused with 507 no_space as soon as twice what arrived
// exceeds the free space the upload started with (once what arrived, for
// a body held in memory), and at MaxValueSize; the store's own no_space
// applies at the end. The pieces are visible while they are staged (in
// listings of the root, in the archive); ClearUploads removes what a crash
// left there, before the handler serves.
const DefaultUploadPiece = 1 << 20

// UploadDir is the dictionary where chunked uploads stage their pieces.
var UploadDir = kv.MustKey("/.tarstore-upload")

// newUploadPrefix is the prefix of this handler's upload IDs: random, so
// that two handlers never share a staging dictionary.
func newUploadPrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// stageKey is the dictionary where a new upload stages its pieces.
func (h *Handler) stageKey() kv.Key {
	k, _ := UploadDir.Add(h.uploadPrefix + "-" + strconv.FormatUint(h.uploads.Add(1), 10))
	return k
}

// ClearUploads removes the pieces of chunked uploads that a crash (or a
// kill) interrupted, from UploadDir; call it before the handler serves,
// since uploads in progress stage their pieces there. A read-only handler
// leaves them.
func (h *Handler) ClearUploads() error {
	if h.opts.ReadOnly {
		return nil
	}
	kind, err := h.store.Exists(UploadDir)
	if err != nil || kind == kv.None {
		return err
	}
	return h.store.Remove(UploadDir)
}

// putChunked stores c's body, of unknown length, at c.key (see above),
// staging its pieces under stage. It returns the bytes stored and, unless
// hash is nil, their SHA-256.
func (h *Handler) putChunked(c *call, stage kv.Key, hash hash.Hash) (int64, []byte, *apiError) {
	free, freeKnown := h.freeSpace()
	piece := make([]byte, h.opts.UploadPiece)
	var pieces []kv.Key
	defer func() {
		if len(pieces) == 0 {
			return
		}
		if err := h.store.Remove(stage); err != nil {
			h.log.Error("removing the pieces of an upload", "key", c.key.String(), "pieces", stage.String(), "err", err)
		}
	}()
	var total int64
	for {
		n, err := readPiece(c.r.Body, piece)
		total += int64(n)
		if hash != nil {
			hash.Write(piece[:n])
		}
		switch {
		case errors.Is(err, ErrBodyTimeout):
			return 0, nil, timeoutError(c, "set", err)
		case err != nil && err != io.EOF:
			return 0, nil, invalidArgument("set", c.key, fmt.Sprintf("the request body failed after %d bytes: %v", total, err))
		}
		need := total // held in memory: stored once
		if len(pieces) > 0 || err == nil {
			need = 2 * total // staged: stored twice for a while
		}
		if total > MaxValueSize || freeKnown && need > free {
			return 0, nil, kvError(RoomError(h.store, "set", c.key))
		}
		if err == io.EOF {
			src := io.MultiReader(&piecesReader{store: h.store, keys: pieces}, bytes.NewReader(piece[:n]))
			if err := h.store.SetFrom(c.key, src, total); err != nil {
				return 0, nil, kvError(err)
			}
			var sum []byte
			if hash != nil {
				sum = hash.Sum(nil)
			}
			return total, sum, nil
		}
		k, _ := stage.Add(strconv.Itoa(len(pieces)))
		if err := h.store.Set(k, piece); err != nil {
			return 0, nil, kvError(pieceError(c.key, err))
		}
		pieces = append(pieces, k)
	}
}

// pieceError is the error of storing a piece, told of the key uploaded:
// the pieces are the handler's business.
func pieceError(k kv.Key, err error) error {
	var ke *kv.Error
	if !errors.As(err, &ke) {
		return kv.Storage("set", k, err)
	}
	e := *ke
	e.Op, e.Key = "set", k
	return &e
}

// readPiece fills p from r. It returns io.EOF when r ended (p then holds
// its last bytes), nil when p is full, and any other error of r.
func readPiece(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// piecesReader reads the staged pieces keys one after the other.
type piecesReader struct {
	store kv.RO
	keys  []kv.Key
	cur   kv.Reader
	off   int64
}

func (p *piecesReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if p.cur == nil {
			if len(p.keys) == 0 {
				return 0, io.EOF
			}
			r, err := p.store.Open(p.keys[0])
			if err != nil {
				return 0, err
			}
			p.cur, p.off, p.keys = r, 0, p.keys[1:]
		}
		if p.off < p.cur.Size() {
			n, err := p.cur.ReadAt(b[:min(int64(len(b)), p.cur.Size()-p.off)], p.off)
			p.off += int64(n)
			if n > 0 || (err != nil && err != io.EOF) {
				if err == io.EOF {
					err = nil
				}
				return n, err
			}
		}
		p.cur.Close()
		p.cur = nil
	}
}
