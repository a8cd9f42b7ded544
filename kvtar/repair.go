package kvtar

import (
	"fmt"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
)

// Repair opens the store on dev, repairs what a plain open leaves alone,
// closes it (and dev, whatever happens), and returns the problems it
// found and repaired (doc §5):
//
//   - regions before the end of the archive that do not decode (a zeroed
//     or garbled header: the journal says where the archive ends, so the
//     scan found the members after them) become holes; what they held is
//     lost, every member after them is kept;
//   - values whose data no longer matches the CRC in their header are
//     removed (reads of them fail with kv.ErrCorrupt anyway).
//
// A plain writable open of a damaged archive does not write: it opens the
// store read-only, and Check reports the damage. Repair is that damage's
// explicit repair (`tarstore check --repair`).
func Repair(clk clock.PClock, dev hw.Block) ([]Problem, error) {
	s, err := newStore(clk, dev)
	if err != nil {
		if dev != nil {
			dev.Close()
		}
		return nil, kv.WithOp(err, "repair")
	}
	if s.readOnly && s.whyReadOnly == "" {
		dev.Close()
		return nil, kv.ReadOnly("repair", kv.Root)
	}
	s.repair = true
	if err := s.open(); err != nil {
		dev.Close()
		return nil, kv.WithOp(err, "repair")
	}
	probs := s.repaired
	if s.readOnly {
		s.Close()
		return probs, &kv.Error{Op: "repair", Key: kv.Root, Err: kv.ErrReadOnly, Detail: s.whyReadOnly}
	}
	var corrupt []kv.Key
	s.mu.RLock()
	ioErr := s.eachDamaged(&s.ix.root, func(k kv.Key, m *member) {
		corrupt = append(corrupt, k)
		probs = append(probs, Problem{Offset: m.start, Name: k.String(), Fatal: true,
			What: fmt.Sprintf("the data at offset %d does not match its CRC-32C: removed", m.dataOff)})
	})
	s.mu.RUnlock()
	if ioErr != nil {
		s.Close()
		return probs, kv.Storage("repair", kv.Root, ioErr)
	}
	for _, k := range corrupt {
		if err := s.Remove(k); err != nil {
			s.Close()
			return probs, kv.WithOp(err, "repair")
		}
	}
	return probs, kv.WithOp(s.Close(), "repair")
}
