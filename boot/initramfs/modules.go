package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Errors a *ModuleError wraps.
var (
	// ErrModuleNotFound: no module of that name in modules.dep. A module
	// built into the kernel (modules.builtin) is not in modules.dep either,
	// and needs no loading.
	ErrModuleNotFound = errors.New("not found in modules.dep")
	// ErrCompressedModule: modules.dep names the module as a compressed
	// file (.ko.xz, .ko.zst, .ko.gz); PID 1 loads modules with
	// finit_module without decompressing them, so only plain .ko files are
	// supported.
	ErrCompressedModule = errors.New("compressed modules are not supported (only uncompressed .ko files)")
	// ErrDependencyCycle: the module depends on itself through modules.dep.
	ErrDependencyCycle = errors.New("dependency cycle")
)

// ModuleError reports a module that cannot be resolved. Err is one of
// ErrModuleNotFound, ErrCompressedModule or ErrDependencyCycle, possibly
// wrapped with details.
type ModuleError struct {
	Name string // the module's name, as requested or as modules.dep spells it
	Err  error
}

func (e *ModuleError) Error() string {
	return fmt.Sprintf("initramfs: module %q: %v", e.Name, e.Err)
}

func (e *ModuleError) Unwrap() error { return e.Err }

// ParseError reports a malformed line of modules.dep.
type ParseError struct {
	Line int    // 1-based
	Text string // the line
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("initramfs: modules.dep line %d: %s: %q", e.Line, e.Msg, e.Text)
}

// compressedSuffixes are the extensions of compressed modules depmod
// lists (kmod's modules.dep).
var compressedSuffixes = []string{".ko.xz", ".ko.zst", ".ko.gz"}

// depModule is one line of modules.dep.
type depModule struct {
	path string   // relative to /lib/modules/<version>
	deps []string // paths, as listed
}

// modulesDep is a parsed modules.dep, keyed by normalized module name.
type modulesDep struct {
	byName map[string]*depModule
	byPath map[string]*depModule
}

// Resolve reads a modules.dep file (depmod(8), modules.dep(5)) and returns
// the paths, relative to /lib/modules/<version>, of the modules named and
// of everything they depend on, each once, in an order to load them in:
// each module after all of its dependencies.
//
// Each line of modules.dep is "path: dependency-path ...", the dependency
// list being every module the first one needs, directly or not. A module's
// name is its file's base name without ".ko", and "-" and "_" are the same
// in names (crc-t10dif is crc_t10dif), as for modprobe.
//
// The order is deterministic: depth first over names in the order given,
// and over each module's dependencies from the end of its modules.dep list
// to the start, the order in which modprobe loads them. So names keep their
// order except where one depends on a later one, which lets a caller load a
// module that is not a declared dependency first by naming it first.
//
// A name that modules.dep lacks is a *ModuleError wrapping
// ErrModuleNotFound, a module needed as a compressed file one wrapping
// ErrCompressedModule, and a cycle one wrapping ErrDependencyCycle. A
// malformed line is a *ParseError.
func Resolve(dep io.Reader, names []string) ([]string, error) {
	md, err := parseModulesDep(dep)
	if err != nil {
		return nil, err
	}
	r := resolver{md: md, state: make(map[*depModule]visit)}
	for _, name := range names {
		m := md.byName[normalizeName(name)]
		if m == nil {
			return nil, &ModuleError{Name: name, Err: ErrModuleNotFound}
		}
		if err := r.visit(m, nil); err != nil {
			return nil, err
		}
	}
	return r.order, nil
}

type visit int

const (
	unvisited visit = iota
	visiting
	done
)

type resolver struct {
	md    *modulesDep
	state map[*depModule]visit
	order []string
}

// visit appends m's dependencies, then m, to the order; stack is the
// chain of modules being visited, for the cycle's message.
func (r *resolver) visit(m *depModule, stack []string) error {
	switch r.state[m] {
	case done:
		return nil
	case visiting:
		var names []string
		for i, p := range stack {
			if p == m.path {
				for _, q := range stack[i:] {
					names = append(names, moduleName(q))
				}
				break
			}
		}
		names = append(names, moduleName(m.path))
		return &ModuleError{Name: moduleName(m.path), Err: fmt.Errorf("%w: %s", ErrDependencyCycle, strings.Join(names, " -> "))}
	}
	if isCompressed(m.path) {
		return &ModuleError{Name: moduleName(m.path), Err: fmt.Errorf("%w: %s", ErrCompressedModule, m.path)}
	}
	r.state[m] = visiting
	stack = append(stack, m.path)
	for i := len(m.deps) - 1; i >= 0; i-- {
		d := r.md.byPath[m.deps[i]]
		if d == nil {
			return &ModuleError{Name: moduleName(m.deps[i]), Err: fmt.Errorf("%w (a dependency of %s)", ErrModuleNotFound, moduleName(m.path))}
		}
		if err := r.visit(d, stack); err != nil {
			return err
		}
	}
	r.state[m] = done
	r.order = append(r.order, m.path)
	return nil
}

func parseModulesDep(r io.Reader) (*modulesDep, error) {
	md := &modulesDep{byName: make(map[string]*depModule), byPath: make(map[string]*depModule)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20) // a line lists every dependency
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		mod, deps, ok := strings.Cut(text, ":")
		if !ok {
			return nil, &ParseError{Line: line, Text: text, Msg: `no ":"`}
		}
		m := &depModule{path: strings.TrimSpace(mod), deps: strings.Fields(deps)}
		for _, p := range append([]string{m.path}, m.deps...) {
			if !isModulePath(p) {
				return nil, &ParseError{Line: line, Text: text, Msg: fmt.Sprintf("%q is not a module path relative to the modules directory", p)}
			}
		}
		name := normalizeName(moduleName(m.path))
		if prev := md.byName[name]; prev != nil {
			return nil, &ParseError{Line: line, Text: text, Msg: fmt.Sprintf("module %s is also %s", moduleName(m.path), prev.path)}
		}
		md.byName[name] = m
		md.byPath[m.path] = m
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("initramfs: reading modules.dep: %w", err)
	}
	return md, nil
}

// isModulePath reports whether p is a clean relative path to a .ko file,
// compressed or not.
func isModulePath(p string) bool {
	return fs.ValidPath(p) && p != "." && moduleName(p) != path.Base(p) && moduleName(p) != ""
}

func isCompressed(p string) bool {
	for _, s := range compressedSuffixes {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

// moduleName is the base name of the module file p without its .ko (and
// compression) extension; p itself if it has none.
func moduleName(p string) string {
	base := path.Base(p)
	for _, s := range append([]string{".ko"}, compressedSuffixes...) {
		if name, ok := strings.CutSuffix(base, s); ok {
			return name
		}
	}
	return base
}

// normalizeName makes "-" and "_" the same in module names.
func normalizeName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}
