package loopback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"strings"

	"github.com/tarstore/tarstore/kv"
)

// The intent record of a write that takes several renames. It names every
// path involved, so that New can finish the write after a crash: each step
// leaves a mark on the file system (see apply), so the record is written
// once and never updated.
//
// Layout: intentMagic, the kind byte, the six string fields of intent in
// order (each as a uvarint length and the bytes), and the CRC-32 (IEEE,
// big-endian) of everything before it.
const (
	intentMagic = "tarstore loopback intent v1\n"
	intentPath  = stagingName + "/intent"
)

// Kinds of intent.
const (
	// intentReplace: move src into the staging directory (to inner, inside
	// or equal to mid), move what top was to trash, rename mid to top, and
	// remove the directories from prune up that are left empty. src is
	// empty when the new content was staged already (Set over a
	// dictionary); mid != inner when top is the first missing parent of
	// the destination and mid the chain of directories built for it.
	intentReplace byte = 'R'
	// intentClear: move every exposed entry of the root into trash.
	intentClear byte = 'C'
)

type intent struct {
	kind                               byte
	src, mid, inner, top, trash, prune string
}

func (in *intent) fields() []*string {
	return []*string{&in.src, &in.mid, &in.inner, &in.top, &in.trash, &in.prune}
}

func (in *intent) encode() []byte {
	b := append([]byte(intentMagic), in.kind)
	for _, f := range in.fields() {
		b = binary.AppendUvarint(b, uint64(len(*f)))
		b = append(b, *f...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

var errBadIntent = errors.New("damaged intent record " + intentPath)

func decodeIntent(b []byte) (*intent, error) {
	if len(b) < len(intentMagic)+1+4 || string(b[:len(intentMagic)]) != intentMagic {
		return nil, errBadIntent
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, errBadIntent
	}
	in := &intent{kind: body[len(intentMagic)]}
	rest := body[len(intentMagic)+1:]
	for _, f := range in.fields() {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return nil, errBadIntent
		}
		*f = string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
	}
	if len(rest) != 0 {
		return nil, errBadIntent
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	return in, nil
}

// validate checks that every path is where the store may act: key paths
// outside the staging directory, staging entries inside it.
func (in *intent) validate() error {
	isKey := func(p string) bool {
		k, err := kv.ParseKey(p)
		return err == nil && !k.IsRoot() && k.Path() == p && checkKey("", k) == nil
	}
	isStaged := func(p string) bool {
		name, ok := strings.CutPrefix(p, stagingName+"/")
		k, err := kv.ParseKey(name)
		return ok && err == nil && k.Depth() == 1 && k.Path() == name && name != "intent"
	}
	ok := isStaged(in.trash)
	switch in.kind {
	case intentReplace:
		ok = ok && isKey(in.top) && isStaged(in.mid) &&
			(in.src == "" || isKey(in.src)) && (in.prune == "" || isKey(in.prune))
		if rel, found := strings.CutPrefix(in.inner, in.mid+"/"); found {
			ok = ok && isKey(rel)
		} else {
			ok = ok && in.inner == in.mid
		}
	case intentClear:
		ok = ok && in.src == "" && in.mid == "" && in.inner == "" && in.top == "" && in.prune == ""
	default:
		ok = false
	}
	if !ok {
		return errBadIntent
	}
	return nil
}

// writeIntent makes in durable as the staging directory's intent record.
func (s *Store) writeIntent(in *intent) error {
	tmp := s.stagingPath("intent")
	f, err := s.create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(in.encode())
	if err == nil {
		err = s.syncFile(f, tmp)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.rename(tmp, intentPath)
	}
	if err != nil {
		s.remove(tmp)
		return err
	}
	return s.syncDir(stagingName)
}

// dropIntent unlinks the intent record, if any, durably: a record left
// behind would be replayed over later writes.
func (s *Store) dropIntent() error {
	ok, err := s.exists(intentPath)
	if err != nil || !ok {
		return err
	}
	if err := s.remove(intentPath); err != nil {
		return err
	}
	return s.syncDir(stagingName)
}

// finish ends a journaled write once apply has made it durable: the record
// goes, then the old data.
func (s *Store) finish(in *intent) error {
	if err := s.dropIntent(); err != nil {
		return err
	}
	// Should this fail, the next New deletes what is left.
	s.removeAll(in.trash)
	return nil
}

// recoverIntent finishes the write whose intent record New finds.
func (s *Store) recoverIntent() error {
	b, err := s.root.ReadFile(intentPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	in, err := decodeIntent(b)
	if err != nil {
		return fmt.Errorf("%w (remove it to give up the interrupted write)", err)
	}
	if err := s.apply(in); err != nil {
		return fmt.Errorf("finishing the interrupted write of %s: %w", intentPath, err)
	}
	return s.finish(in)
}

// apply carries out in from wherever an earlier attempt stopped, and makes
// the result durable. For intentReplace the steps, and how each is
// recognised once done, are:
//
//  1. rename src to inner — done when inner exists, or mid does not;
//  2. rename what top is to trash — done when top does not exist;
//  3. rename mid to top — done when mid does not exist;
//  4. remove the parents of src left empty;
//  5. fsync the directories involved.
//
// When mid does not exist, either step 3 is done or (only when mid is
// inner, a rename without a chain) step 1 has not begun. The two are told
// apart by src and trash: before step 1 src exists and trash does not;
// after step 3 trash exists if top existed, and if it did not, top was
// neither an ancestor of src (src existed) nor under it (rename refuses
// that), so src no longer exists.
func (s *Store) apply(in *intent) error {
	if in.kind == intentClear {
		return s.applyClear(in)
	}
	midThere, err := s.exists(in.mid)
	if err != nil {
		return err
	}
	pending := midThere
	if !midThere && in.src != "" && in.inner == in.mid {
		srcThere, err := s.exists(in.src)
		if err != nil {
			return err
		}
		trashThere, err := s.exists(in.trash)
		if err != nil {
			return err
		}
		pending = srcThere && !trashThere
	}
	if pending {
		if in.src != "" {
			innerThere, err := s.exists(in.inner)
			if err != nil {
				return err
			}
			if !innerThere {
				if err := s.rename(in.src, in.inner); err != nil {
					return err
				}
			}
		}
		topThere, err := s.exists(in.top)
		if err != nil {
			return err
		}
		if topThere {
			if err := s.removeAll(in.trash); err != nil {
				return err
			}
			if err := s.rename(in.top, in.trash); err != nil {
				return err
			}
		}
		if err := s.rename(in.mid, in.top); err != nil {
			return err
		}
	}
	// Durability: the new entries from top down to the destination's
	// parent, top's parent, the staging directory, and where src was.
	target := in.top + strings.TrimPrefix(in.inner, in.mid)
	dirs := []string{stagingName, parentPath(in.top)}
	for p := parentPath(target); p != parentPath(in.top); p = parentPath(p) {
		dirs = append(dirs, p)
	}
	if in.src != "" {
		dirs = append(dirs, parentPath(in.src))
	}
	if in.prune != "" {
		stop, err := s.prune(in.prune)
		if err != nil {
			return err
		}
		dirs = append(dirs, stop)
	}
	return s.syncDirs(dirs...)
}

// applyClear moves every exposed entry of the root into the trash
// directory; entries already moved are no longer there to move.
func (s *Store) applyClear(in *intent) error {
	there, err := s.isDir(in.trash)
	if err != nil {
		return err
	}
	if !there {
		if err := s.mkdir(in.trash); err != nil {
			return err
		}
	}
	cs, err := s.children(kv.Root)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := s.rename(c.name, in.trash+"/"+c.name); err != nil {
			return err
		}
	}
	return s.syncDirs(".", stagingName)
}
