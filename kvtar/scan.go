package kvtar

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// scanWindow is the size of the sequential reads of the archive scan.
const scanWindow = 4 << 20

// A Problem is something Check or the scan found: damage, or members the
// store does not expose.
type Problem struct {
	Offset int64  // archive offset of the member or block at fault
	Name   string // member name, when there is one
	What   string // what is wrong, for humans
	Fatal  bool   // the archive cannot be opened as it is
}

func (p Problem) String() string {
	s := fmt.Sprintf("offset %d", p.Offset)
	if p.Name != "" {
		s += fmt.Sprintf(" (%q)", p.Name)
	}
	return s + ": " + p.What
}

// scanResult is what a scan of the device found.
type scanResult struct {
	ix       *index
	sp       space
	shadowed []*member // members replaced by later ones (duplicates)
	// shadowKeys are the keys of the shadowed members.
	shadowKeys map[*member]kv.Key
	foreign    []*unexposed // members kept but not exposed (symlinks, devices, unsafe names, global headers)
	problems   []Problem
	loneZero   bool // the end of archive is a lone zero block followed by data
	cut        bool // the archive ends at sp.eoa before an append that did not complete
	links      bool // hard links were found
	globals    bool // PAX global headers with records were found
	// damaged are regions before the known end of the archive that do
	// not decode (zeroed or garbled blocks, see scan); the scan went on
	// after each.
	damaged []extent
}

// reader is a window over the device for the scan: it serves the
// decoder's small requests from large reads. Reading on from the end of the
// window doubles the next read, up to scanWindow, so runs of small members
// cost a few large sequential reads; a jump (over the data of a large
// member, or from one hole chunk to the next) starts again at minWindow, so
// that skipped data is not read. Once reads reach scanWindow the reader
// reads the next window ahead, on a goroutine, while the decoder works
// through the current one.
type reader struct {
	s     *Store
	buf   []byte
	off   int64 // device offset of buf[0]
	size  int64 // device size
	ahead *readAhead
	spare []byte // a scanWindow buffer for the next read ahead
}

// readAhead is a window being read on a goroutine.
type readAhead struct {
	off  int64
	buf  []byte
	err  error
	done chan struct{}
}

// minWindow is the first read after a jump.
const minWindow = 64 << 10

// get returns n bytes at off (n <= MaxExtendedSize), reading a new window
// when they are not in the current one.
func (r *reader) get(off int64, n int) ([]byte, error) {
	end := r.off + int64(len(r.buf))
	if off >= r.off && off+int64(n) <= end {
		return r.buf[off-r.off:][:n], nil
	}
	if a := r.ahead; a != nil {
		r.ahead = nil
		<-a.done
		if a.err == nil && off >= a.off && off+int64(n) <= a.off+int64(len(a.buf)) {
			r.spare, r.buf, r.off = r.buf[:cap(r.buf)], a.buf, a.off
			r.readAhead()
			return r.buf[off-r.off:][:n], nil
		}
		r.spare = a.buf[:cap(a.buf)]
	}
	w := int64(minWindow)
	if l := int64(len(r.buf)); l > 0 && off >= r.off && off < end+l {
		w = min(2*l, scanWindow)
	}
	start := off / r.s.ss * r.s.ss
	w = max(w, off+int64(n)-start)
	l := min(w, r.size-start)
	if l < off+int64(n)-start {
		return nil, fmt.Errorf("read past the end of the device at %d", off)
	}
	if cap(r.buf) < scanWindow {
		r.buf = make([]byte, scanWindow)
	}
	r.buf = r.buf[:l]
	if err := blockio.ReadAt(r.s.dev, r.buf, start); err != nil {
		r.buf = r.buf[:0]
		return nil, err
	}
	r.off = start
	if l == scanWindow {
		r.readAhead()
	}
	return r.buf[off-start:][:n], nil
}

// readAhead starts reading the window after the current one.
func (r *reader) readAhead() {
	off := r.off + int64(len(r.buf))
	l := min(int64(scanWindow), r.size-off)
	if l <= 0 {
		return
	}
	if cap(r.spare) < scanWindow {
		r.spare = make([]byte, scanWindow)
	}
	a := &readAhead{off: off, buf: r.spare[:l], done: make(chan struct{})}
	r.spare = nil
	r.ahead = a
	go func() {
		defer close(a.done)
		a.err = blockio.ReadAt(r.s.dev, a.buf, a.off)
	}()
}

// close waits for a read ahead in flight.
func (r *reader) close() {
	if a := r.ahead; a != nil {
		<-a.done
		r.ahead = nil
	}
}

// scan reads the archive from the start of the device and builds the index
// and the space map (doc §5 step 2). Damage that makes the archive
// unreadable is a *kv.Error with kv.ErrCorrupt and the offset.
//
// From verifyFrom on (when it is not negative) every member must be an
// append chained to the one before it, the first to seed (doc §3): a
// one-block ustar header whose tag's chain matches and whose data matches
// the tag's CRC. Anything else there is an append that did not complete
// (or free space after one): the archive ends before it (res.cut).
//
// knownEnd, when not negative, is where the archive is known to end (the
// journal's newest record, or the store's own end of archive): a zero
// block before it, or a block that does not decode, is damage, not the end
// — the members after it are found again (resync) and the region is
// reported in res.damaged. Without it (a foreign archive), the first zero
// block ends the archive, as for every tar reader, and a block that does
// not decode fails the scan with kv.ErrCorrupt.
func (s *Store) scan(verifyFrom int64, seed uint32, knownEnd int64) (*scanResult, error) {
	size := s.dev.Info().Size()
	res := &scanResult{ix: newIndex()}
	rd := &reader{s: s, size: size}
	defer rd.close()
	dec := tarfmt.NewDecoder(size)
	off := int64(0)
	var tb tarfmt.Block
	chain := seed
	var tag *tarfmt.Tag // the tag of the chained header being decoded
	// hdrTag is the tag of the header block at hdrTagAt, the last one
	// read that has one: a member whose header it is gets its CRC.
	var hdrTag tarfmt.Tag
	hdrTagAt := int64(-1)
	// boundary is where the member being decoded starts: damage found
	// while decoding it starts there.
	boundary := int64(0)
	// damage handles a region from boundary that does not decode, found
	// at (zero block or decoding error) at: it reports whether the scan
	// goes on (at off, with a fresh decoder) after the region.
	damage := func(at int64, what string) (bool, error) {
		if knownEnd < 0 || at >= knownEnd {
			return false, nil
		}
		next, err := s.resync(rd, at+blockSize, knownEnd, size)
		if err != nil {
			return false, err
		}
		res.damaged = append(res.damaged, extent{boundary, next - boundary})
		res.problems = append(res.problems, Problem{Offset: boundary, Fatal: true,
			What: fmt.Sprintf("%s at offset %d, before the end of the archive at %d: the %d bytes from %d on are lost, the archive goes on at %d (repair turns them into a hole)",
				what, at, knownEnd, next-boundary, boundary, next)})
		dec = tarfmt.NewDecoder(size)
		off, boundary = next, next
		return true, nil
	}
	var chainIn [16]byte
	for {
		if off >= size {
			res.sp.eoa = size // no end-of-archive marker: the device is full
			break
		}
		b, err := rd.get(off, blockSize)
		if err != nil {
			return nil, kv.Storage("open", kv.Root, err)
		}
		copy(tb[:], b)
		if t, ok := tarfmt.GetTag(&tb); ok && tb.ChecksumOK() {
			hdrTag, hdrTagAt = t, off
		}
		if verifyFrom >= 0 && off >= verifyFrom && !tb.IsZero() {
			t, ok := tarfmt.GetTag(&tb)
			if !ok || !tb.ChecksumOK() || t.Chain != chainNext(&chainIn, chain, t.DataCRC, off) {
				res.sp.eoa, res.cut = off, true
				break
			}
			tag = &t
		}
		st, err, ioErr := rd.decode(dec, off, &tb)
		if ioErr != nil {
			return nil, kv.Storage("open", kv.Root, ioErr)
		}
		if err != nil {
			var fe *tarfmt.FormatError
			if errors.As(err, &fe) {
				if ok, derr := damage(fe.Offset, fe.Reason); derr != nil {
					return nil, kv.Storage("open", kv.Root, derr)
				} else if ok {
					continue
				}
			}
			return nil, corrupt(err)
		}
		switch st.Kind {
		case tarfmt.StepNeedBlock:
			off = st.Next
			continue
		case tarfmt.StepZero:
			if ok, err := damage(st.Offset, "a zero block"); err != nil {
				return nil, kv.Storage("open", kv.Root, err)
			} else if ok {
				continue
			}
			res.sp.eoa = st.Offset
			if nxt := st.Offset + blockSize; nxt < size {
				b, err := rd.get(nxt, blockSize)
				if err != nil {
					return nil, kv.Storage("open", kv.Root, err)
				}
				copy(tb[:], b)
				res.loneZero = !tb.IsZero()
			}
		case tarfmt.StepGlobal:
			g := st.Global
			if g.Hole {
				res.sp.chunks = append(res.sp.chunks, extent{g.Start, g.End - g.Start})
			} else {
				res.foreign = append(res.foreign, &unexposed{m: &member{start: g.Start, hdr: g.Start, dataOff: g.DataOffset, end: g.End}})
				res.problems = append(res.problems, Problem{Offset: g.Start, What: "PAX global header with records (kept, applies to later members): the store is read-only"})
				res.globals = true
			}
			off, boundary = st.Next, st.Next
			continue
		case tarfmt.StepMember:
			if tag != nil {
				ok, err := s.chainedData(st.Member, *tag)
				if err != nil {
					return nil, kv.Storage("open", kv.Root, err)
				}
				if !ok {
					res.sp.eoa, res.cut = st.Member.Start, true
					break
				}
				chain, tag = tag.Chain, nil
			}
			var crc *uint32
			if st.Member.HeaderOffset == hdrTagAt && st.Member.Sparse == nil && st.Member.Typeflag == tarfmt.TypeReg {
				crc = &hdrTag.DataCRC
			}
			if err := res.add(st.Member, crc); err != nil {
				return nil, err
			}
			off, boundary = st.Next, st.Next
			continue
		default:
			return nil, corrupt(fmt.Errorf("unexpected decoder step %d at %d", st.Kind, off))
		}
		break
	}
	return res, nil
}

// resyncTries bounds the candidate headers resync tries.
const resyncTries = 64

// resync finds where the archive goes on after damage: the first block
// from from on (before knownEnd) that is a header with a valid checksum
// and from which the archive decodes without error to a zero block at or
// after knownEnd (data that merely looks like a header does not, in
// general). When none does, the whole rest up to knownEnd is lost: it
// returns knownEnd.
func (s *Store) resync(rd *reader, from, knownEnd, size int64) (int64, error) {
	tries := 0
	var b tarfmt.Block
	for at := (from + blockSize - 1) / blockSize * blockSize; at < knownEnd && tries < resyncTries; at += blockSize {
		p, err := rd.get(at, blockSize)
		if err != nil {
			return 0, err
		}
		copy(b[:], p)
		if b.IsZero() || !b.ChecksumOK() {
			continue
		}
		tries++
		ok, err := s.decodesTo(rd, at, knownEnd, size)
		if err != nil {
			return 0, err
		}
		if ok {
			return at, nil
		}
	}
	return knownEnd, nil
}

// decodesTo reports whether the archive decodes from at, without error, to
// a zero block at or after end.
func (s *Store) decodesTo(rd *reader, at, end, size int64) (bool, error) {
	dec := tarfmt.NewDecoder(size)
	var b tarfmt.Block
	for at < size {
		p, err := rd.get(at, blockSize)
		if err != nil {
			return false, err
		}
		copy(b[:], p)
		st, err, ioErr := rd.decode(dec, at, &b)
		if ioErr != nil {
			return false, ioErr
		}
		if err != nil {
			return false, nil
		}
		if st.Kind == tarfmt.StepZero {
			return st.Offset >= end, nil
		}
		at = st.Next
	}
	return false, nil
}

// decode feeds dec the header block b at off, and then the data it asks
// for, read through r: the step it reaches, the decoder's error, or a
// device error (ioErr).
func (r *reader) decode(dec *tarfmt.Decoder, off int64, b *tarfmt.Block) (st tarfmt.Step, err, ioErr error) {
	st, err = dec.Block(off, b)
	for err == nil && st.Kind == tarfmt.StepNeedData {
		var p []byte
		if p, ioErr = r.get(st.Offset, st.Len); ioErr != nil {
			return st, nil, ioErr
		}
		st, err = dec.Data(p)
	}
	return st, err, nil
}

// chainedData reports whether tm, whose header carries tag, is a whole
// one-block-header member whose data matches the tag's CRC.
func (s *Store) chainedData(tm *tarfmt.Member, tag tarfmt.Tag) (bool, error) {
	if tm.DataOffset != tm.Start+blockSize || tm.Header.Size < 0 || tm.DataOffset+tm.Header.Size > s.limit {
		return false, nil
	}
	return s.dataHasCRC(tm.DataOffset, tm.Header.Size, tag.DataCRC)
}

// dataHasCRC reports whether the n bytes at off have CRC-32C crc. It reads
// them in chunks of at most 1 MiB.
func (s *Store) dataHasCRC(off, n int64, crc uint32) (bool, error) {
	p := make([]byte, min(n, 1<<20))
	got := uint32(0)
	for done := int64(0); done < n; {
		c := p[:min(int64(len(p)), n-done)]
		if err := blockio.ReadAt(s.dev, c, off+done); err != nil {
			return false, err
		}
		got = crc32.Update(got, castagnoli, c)
		done += int64(len(c))
	}
	return got == crc, nil
}

// corrupt turns a tarfmt error into kv.ErrCorrupt with its offset.
func corrupt(err error) error {
	var fe *tarfmt.FormatError
	if errors.As(err, &fe) {
		return &kv.Error{Op: "open", Err: kv.ErrCorrupt, Detail: fmt.Sprintf("at offset %d: %s", fe.Offset, fe.Reason), Cause: fe.Err}
	}
	return &kv.Error{Op: "open", Err: kv.ErrCorrupt, Cause: err}
}

// memberKey maps a member name to a key (SPEC §2): one leading "./" or "/"
// is stripped; names the store cannot expose safely are reported.
func memberKey(name string) (kv.Key, string) {
	switch {
	case strings.HasPrefix(name, "./"):
		name = name[2:]
	case strings.HasPrefix(name, "/"):
		name = name[1:]
	}
	if k, err := kv.ParseKey(name); err == nil {
		return k, "" // the common case: a plain name
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return kv.Root, "unsafe name (a \"..\" segment): not exposed"
		}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return kv.Root, "unsafe name (NUL): not exposed"
	}
	clean := make([]string, 0, 8)
	for _, seg := range strings.Split(name, "/") {
		if seg != "" && seg != "." {
			clean = append(clean, seg)
		}
	}
	k, err := kv.ParseKey(strings.Join(clean, "/"))
	if err != nil {
		return kv.Root, "name is not a valid key (too long?): not exposed"
	}
	return k, ""
}

// add puts one member into the index, resolving duplicates in archive
// order as tar extraction does (doc §5 step 4).
// crc, when not nil, is the CRC-32C of the member's data its header
// carries (tarfmt.Tag).
func (res *scanResult) add(tm *tarfmt.Member, crc *uint32) error {
	m := &member{
		start:    tm.Start,
		hdr:      tm.HeaderOffset,
		dataOff:  tm.DataOffset,
		end:      tm.End,
		size:     tm.Size,
		dataSize: tm.DataSize,
		mtime:    tm.ModTime,
		sparse:   tm.Sparse,
	}
	if crc != nil {
		m.crc, m.hasCRC = *crc, true
	}
	k, why := memberKey(tm.Name)
	notExposed := func(what string) error {
		u := &unexposed{m: m}
		if k, why := memberKey(tm.Name); why == "" && !k.IsRoot() {
			u.key, u.named = k, true
		}
		res.foreign = append(res.foreign, u)
		res.problems = append(res.problems, Problem{Offset: tm.Start, Name: tm.Name, What: what})
		return nil
	}
	if why != "" {
		return notExposed(why)
	}
	switch tm.Typeflag {
	case tarfmt.TypeReg, tarfmt.TypeCont, tarfmt.TypeGNUSparse:
	case tarfmt.TypeLink:
		tk, why := memberKey(tm.Linkname)
		var target *node
		if why == "" {
			target = res.ix.lookup(tk)
		}
		if target == nil || !target.isValue() {
			return notExposed(fmt.Sprintf("hard link to %q, which is not an earlier value: not exposed", tm.Linkname))
		}
		t := target.val
		for t.link != nil {
			t = t.link
		}
		m.link = t
		res.links = true
		m.size, m.dataSize, m.sparse = t.size, t.dataSize, t.sparse
		t.linked++
	case tarfmt.TypeDir:
		// Marked, so that a rename rewrites it as a directory member
		// (memberHeader), not as an empty regular file.
		m.dir = true
		return res.addDir(k, m, tm)
	default:
		return notExposed(fmt.Sprintf("%s member: not exposed", typeName(tm.Typeflag)))
	}
	if k.IsRoot() {
		return notExposed("regular file named like the root: not exposed")
	}
	n, pv := res.ix.walk(k)
	if pv != nil {
		return res.conflict(tm, pv)
	}
	if n != nil {
		if !n.isValue() {
			return res.conflict(tm, n)
		}
		res.shadow(k, res.ix.detach(n)...)
	}
	res.ix.setValue(k, m)
	return nil
}

// addDir records an explicit directory member.
func (res *scanResult) addDir(k kv.Key, m *member, tm *tarfmt.Member) error {
	if k.IsRoot() {
		if res.ix.root.dir != nil {
			res.shadow(k, res.ix.root.dir)
		}
		res.ix.root.dir = m
		return nil
	}
	n, pv := res.ix.walk(k)
	if pv != nil {
		return res.conflict(tm, pv)
	}
	if n != nil && n.isValue() {
		return res.conflict(tm, n)
	}
	d := res.ix.ensureDict(k)
	if d.dir != nil {
		res.shadow(k, d.dir)
	}
	d.dir = m
	return nil
}

// conflict reports a member that tar extraction could not apply over an
// earlier one: a directory (or something below it) where a value is, or a
// value where a dictionary is. The archive is corrupt for the store.
func (res *scanResult) conflict(tm *tarfmt.Member, earlier *node) error {
	return &kv.Error{Op: "open", Key: earlier.key(), Err: kv.ErrCorrupt,
		Detail: fmt.Sprintf("at offset %d: member %q conflicts with the earlier %s %s",
			tm.Start, tm.Name, earlier.kind(), earlier.key())}
}

// shadow records members replaced by later ones of the name k.
func (res *scanResult) shadow(k kv.Key, ms ...*member) {
	if res.shadowKeys == nil {
		res.shadowKeys = map[*member]kv.Key{}
	}
	for _, m := range ms {
		res.shadowKeys[m] = k
	}
	res.shadowed = append(res.shadowed, ms...)
}

func typeName(tf byte) string {
	switch tf {
	case tarfmt.TypeSymlink:
		return "symbolic link"
	case tarfmt.TypeChar:
		return "character device"
	case tarfmt.TypeBlock:
		return "block device"
	case tarfmt.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("type %q", tf)
}
