package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tarstore/tarstore/kv"
)

// The output of ls and du. Both stream: a listing of any size is printed
// as it is walked, with bounded memory. So ls -l's columns have fixed
// widths (kind 10, size 13, time 20) rather than widths measured over the
// whole listing; a size of more than 13 digits (9 TB) widens its row.

// listing is what ls --json prints (jsonList writes it as it comes).
type listing struct {
	Key     string      `json:"key"`
	Entries []listEntry `json:"entries"`
}

// listEntry is one entry of ls --json.
type listEntry struct {
	Key          string `json:"key"`
	Kind         string `json:"kind"`
	Size         *int64 `json:"size,omitempty"`
	LastModified string `json:"last_modified"`
}

// rfc3339 is how times are printed: RFC 3339 in UTC, to the second (what
// HTTP's Last-Modified carries, so a disk and a server print the same).
func rfc3339(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func runLs(c *cmdCtx) (err error) {
	k, err := c.keyOrRoot()
	if err != nil {
		return err
	}
	t, err := c.open(false)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	w := bufio.NewWriter(c.env.Stdout)
	var print func(entry) error
	var end func()
	switch show := c.keyPrinter(c.env.Stdout); {
	case c.a.on("json"):
		jw := &jsonList{w: w}
		print, end = jw.start(k, jw.entry), jw.end
	case c.a.on("long"):
		print = func(e entry) error {
			size := "-"
			if e.Kind == kv.Value {
				size = strconv.FormatInt(e.Size, 10)
			}
			_, err := fmt.Fprintf(w, "%-10s %13s %-20s %s\n", e.Kind, size, rfc3339(e.LastModified), show(e.Key.String()))
			return err
		}
	default:
		print = func(e entry) error {
			_, err := fmt.Fprintf(w, "%s\t%s\n", e.Kind, show(e.Key.String()))
			return err
		}
	}
	err = t.walk(k, c.a.on("recursive"), print)
	if err == nil && end != nil {
		end()
	}
	if ferr := w.Flush(); err == nil && ferr != nil {
		return fmt.Errorf("writing the listing: %w", ferr)
	}
	return err
}

// jsonList writes ls --json as entries come: the same document as
// writeJSON would print for {"key":..., "entries":[...]}.
type jsonList struct {
	w       io.Writer
	n       int
	started bool
	key     kv.Key
}

// start returns print, which writes the document's head before the first
// entry (so that nothing is printed when the listing fails at once).
func (j *jsonList) start(k kv.Key, print func(entry) error) func(entry) error {
	j.key = k
	return func(e entry) error {
		j.head()
		return print(e)
	}
}

func (j *jsonList) head() {
	if j.started {
		return
	}
	j.started = true
	key, _ := json.Marshal(j.key.String())
	fmt.Fprintf(j.w, "{\n  \"key\": %s,\n  \"entries\": [", key)
}

func (j *jsonList) entry(e entry) error {
	le := listEntry{Key: e.Key.String(), Kind: e.Kind.String(), LastModified: rfc3339(e.LastModified)}
	if e.Kind == kv.Value {
		le.Size = &e.Size
	}
	b, err := json.MarshalIndent(le, "    ", "  ")
	if err != nil {
		return err
	}
	if j.n > 0 {
		io.WriteString(j.w, ",")
	}
	j.n++
	_, err = fmt.Fprintf(j.w, "\n    %s", b)
	return err
}

func (j *jsonList) end() {
	j.head()
	if j.n == 0 {
		io.WriteString(j.w, "]\n}\n")
		return
	}
	io.WriteString(j.w, "\n  ]\n}\n")
}

// duUsage is what du counts below a key.
type duUsage struct {
	Key    string `json:"key"`
	Bytes  int64  `json:"bytes"`
	Values int64  `json:"values"`
}

// duReport is du --json: the key's totals and, without -s, each
// dictionary below it.
type duReport struct {
	duUsage
	Dictionaries []duUsage `json:"dictionaries,omitempty"`
}

func runDu(c *cmdCtx) (err error) {
	k, err := c.keyOrRoot()
	if err != nil {
		return err
	}
	t, err := c.open(false)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	show := c.keyPrinter(c.env.Stdout)
	w := bufio.NewWriter(c.env.Stdout)
	jsonOut, summary := c.a.on("json"), c.a.on("summarize")
	rep := duReport{duUsage: duUsage{Key: k.String()}}
	// The dictionaries the walk is in, outermost first; each is printed
	// when the walk leaves it (GNU du's order: what is below a dictionary
	// comes before it).
	type openDict struct {
		k kv.Key
		u duUsage
	}
	var open []openDict
	leave := func(until kv.Key) {
		for len(open) > 0 && !until.HasPrefix(open[len(open)-1].k) {
			u := open[len(open)-1].u
			open = open[:len(open)-1]
			switch {
			case summary:
			case jsonOut:
				rep.Dictionaries = append(rep.Dictionaries, u)
			default:
				fmt.Fprintf(w, "%d\t%d\t%s\n", u.Bytes, u.Values, show(u.Key))
			}
		}
	}
	count := func(e entry) error {
		leave(e.Key)
		if e.Kind == kv.Dictionary {
			open = append(open, openDict{e.Key, duUsage{Key: e.Key.String()}})
			return nil
		}
		rep.Bytes += e.Size
		rep.Values++
		for i := range open {
			open[i].u.Bytes += e.Size
			open[i].u.Values++
		}
		return nil
	}
	kind, err := t.Exists(k)
	switch {
	case err != nil:
		return kv.WithOp(err, "du")
	case kind == kv.None:
		return kv.NotFound("du", k)
	case kind == kv.Value:
		n, err := t.Size(k)
		if err != nil {
			return kv.WithOp(err, "du")
		}
		count(entry{Key: k, Kind: kv.Value, Size: n})
	default:
		if err := t.walk(k, true, count); err != nil {
			return kv.WithOp(err, "du")
		}
	}
	leave(k)
	if jsonOut {
		return writeJSON(c.env.Stdout, rep)
	}
	fmt.Fprintf(w, "%d\t%d\t%s\n", rep.Bytes, rep.Values, show(rep.Key))
	return w.Flush()
}
