package initramfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testDep is a synthetic modules.dep in depmod's form: each line lists all
// of the module's dependencies, direct or not, and not in load order.
const testDep = `kernel/lib/base.ko:
kernel/lib/left-mod.ko: kernel/lib/base.ko
kernel/lib/right_mod.ko: kernel/lib/base.ko
kernel/drivers/top.ko: kernel/lib/left-mod.ko kernel/lib/right_mod.ko kernel/lib/base.ko

kernel/x/leaf.ko: 
kernel/x/middle.ko: kernel/x/leaf.ko
kernel/x/listed-backward.ko: kernel/x/middle.ko kernel/x/leaf.ko
kernel/x/listed-forward.ko: kernel/x/leaf.ko kernel/x/middle.ko
kernel/c/cycle-a.ko: kernel/c/cycle-b.ko
kernel/c/cycle-b.ko: kernel/c/cycle-a.ko
kernel/c/self.ko: kernel/c/self.ko
kernel/c/needs-cycle.ko: kernel/c/cycle-a.ko
kernel/z/packed.ko.xz: kernel/lib/base.ko
kernel/z/zstd.ko.zst:
kernel/z/gzipped.ko.gz:
kernel/z/needs-packed.ko: kernel/z/packed.ko.xz kernel/lib/base.ko
kernel/m/orphan-user.ko: kernel/m/not-listed.ko
`

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		want    []string
		wantErr error  // errors.Is target
		errName string // the *ModuleError's Name
		errText string // in the message
	}{
		{name: "nothing", names: nil, want: nil},
		{name: "no dependencies", names: []string{"base"}, want: []string{"kernel/lib/base.ko"}},
		{
			name:  "diamond",
			names: []string{"top"},
			want:  []string{"kernel/lib/base.ko", "kernel/lib/right_mod.ko", "kernel/lib/left-mod.ko", "kernel/drivers/top.ko"},
		},
		{
			name:  "names keep their order",
			names: []string{"left-mod", "right_mod", "top"},
			want:  []string{"kernel/lib/base.ko", "kernel/lib/left-mod.ko", "kernel/lib/right_mod.ko", "kernel/drivers/top.ko"},
		},
		{
			name:  "dash and underscore are the same",
			names: []string{"left_mod", "right-mod"},
			want:  []string{"kernel/lib/base.ko", "kernel/lib/left-mod.ko", "kernel/lib/right_mod.ko"},
		},
		{
			name:  "each module once",
			names: []string{"top", "base", "left-mod", "left_mod", "top"},
			want:  []string{"kernel/lib/base.ko", "kernel/lib/right_mod.ko", "kernel/lib/left-mod.ko", "kernel/drivers/top.ko"},
		},
		{
			name:  "a name after its dependent",
			names: []string{"middle", "leaf"},
			want:  []string{"kernel/x/leaf.ko", "kernel/x/middle.ko"},
		},
		{
			name:  "dependencies listed backward",
			names: []string{"listed-backward"},
			want:  []string{"kernel/x/leaf.ko", "kernel/x/middle.ko", "kernel/x/listed-backward.ko"},
		},
		{
			name:  "dependencies listed forward",
			names: []string{"listed_forward"},
			want:  []string{"kernel/x/leaf.ko", "kernel/x/middle.ko", "kernel/x/listed-forward.ko"},
		},
		{
			name:  "compressed module not needed",
			names: []string{"top"},
			want:  []string{"kernel/lib/base.ko", "kernel/lib/right_mod.ko", "kernel/lib/left-mod.ko", "kernel/drivers/top.ko"},
		},
		{name: "missing", names: []string{"base", "nosuch"}, wantErr: ErrModuleNotFound, errName: "nosuch"},
		{name: "empty name", names: []string{""}, wantErr: ErrModuleNotFound, errName: ""},
		{name: "name with .ko", names: []string{"base.ko"}, wantErr: ErrModuleNotFound, errName: "base.ko"},
		{name: "dependency without a line", names: []string{"orphan-user"}, wantErr: ErrModuleNotFound, errName: "not-listed", errText: "a dependency of orphan-user"},
		{name: "cycle", names: []string{"cycle-a"}, wantErr: ErrDependencyCycle, errName: "cycle-a", errText: "cycle-a -> cycle-b -> cycle-a"},
		{name: "cycle below", names: []string{"needs-cycle"}, wantErr: ErrDependencyCycle, errName: "cycle-a", errText: "cycle-a -> cycle-b -> cycle-a"},
		{name: "self cycle", names: []string{"self"}, wantErr: ErrDependencyCycle, errName: "self", errText: "self -> self"},
		{name: "xz", names: []string{"packed"}, wantErr: ErrCompressedModule, errName: "packed", errText: "kernel/z/packed.ko.xz"},
		{name: "zstd", names: []string{"zstd"}, wantErr: ErrCompressedModule, errName: "zstd"},
		{name: "gzip", names: []string{"gzipped"}, wantErr: ErrCompressedModule, errName: "gzipped"},
		{name: "compressed dependency", names: []string{"needs-packed"}, wantErr: ErrCompressedModule, errName: "packed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(strings.NewReader(testDep), tt.names)
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			var me *ModuleError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, tt.errName, me.Name)
			assert.Contains(t, err.Error(), fmt.Sprintf("initramfs: module %q", tt.errName))
			assert.Contains(t, err.Error(), tt.errText)
			assert.Nil(t, got)
		})
	}
}

func TestResolveCompressedMessage(t *testing.T) {
	_, err := Resolve(strings.NewReader(testDep), []string{"packed"})
	require.EqualError(t, err, `initramfs: module "packed": compressed modules are not supported (only uncompressed .ko files): kernel/z/packed.ko.xz`)
}

func TestResolveParseErrors(t *testing.T) {
	tests := []struct {
		name, dep string
		line      int
	}{
		{"no colon", "kernel/a.ko:\nkernel/b.ko kernel/a.ko\n", 2},
		{"absolute path", "/lib/modules/6.1.0-28-amd64/kernel/a.ko:\n", 1},
		{"absolute dependency", "kernel/a.ko: /kernel/b.ko\n", 1},
		{"dot-dot", "../a.ko:\n", 1},
		{"not a module", "kernel/a.txt:\n", 1},
		{"bare .ko", "kernel/.ko:\n", 1},
		{"empty path", ": kernel/a.ko\n", 1},
		{"same name twice", "kernel/a/x.ko:\nkernel/b/x.ko:\n", 2},
		{"dash and underscore twice", "kernel/a/x-y.ko:\nkernel/a/x_y.ko:\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(strings.NewReader(tt.dep), nil)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.line, pe.Line)
			assert.Contains(t, err.Error(), fmt.Sprintf("modules.dep line %d", tt.line))
		})
	}
}

type errReader struct{}

var errRead = errors.New("read failed")

func (errReader) Read([]byte) (int, error) { return 0, errRead }

func TestResolveReadError(t *testing.T) {
	_, err := Resolve(errReader{}, []string{"a"})
	require.ErrorIs(t, err, errRead)
}

// randomDep makes a modules.dep of n modules where module i may depend on
// modules before it, each line listing the full closure in a random order,
// with the lines in a random order. It returns the file and each module's
// direct and indirect dependencies by path.
func randomDep(rng *rand.Rand, n int) (string, map[string][]string) {
	paths := make([]string, n)
	for i := range paths {
		sep := []string{"-", "_"}[rng.IntN(2)]
		paths[i] = fmt.Sprintf("kernel/d%d/mod%s%d.ko", i%3, sep, i)
	}
	closure := make(map[string][]string)
	for i, p := range paths {
		set := map[string]bool{}
		for j := range i {
			if rng.IntN(4) == 0 {
				set[paths[j]] = true
				for _, d := range closure[paths[j]] {
					set[d] = true
				}
			}
		}
		deps := make([]string, 0, len(set))
		for d := range set {
			deps = append(deps, d)
		}
		slices.Sort(deps)
		rng.Shuffle(len(deps), func(a, b int) { deps[a], deps[b] = deps[b], deps[a] })
		closure[p] = deps
	}
	lines := make([]string, 0, n)
	for _, p := range paths {
		lines = append(lines, strings.TrimSpace(p+": "+strings.Join(closure[p], " ")))
	}
	rng.Shuffle(len(lines), func(a, b int) { lines[a], lines[b] = lines[b], lines[a] })
	return strings.Join(lines, "\n") + "\n", closure
}

// checkLoadOrder checks that order holds each module once, each after all
// of its dependencies, and exactly the modules requested and their
// dependencies.
func checkLoadOrder(t *testing.T, order []string, requested []string, closure map[string][]string) {
	t.Helper()
	pos := make(map[string]int)
	for i, p := range order {
		_, dup := pos[p]
		require.False(t, dup, "%s twice", p)
		pos[p] = i
	}
	want := make(map[string]bool)
	for _, p := range requested {
		want[p] = true
		for _, d := range closure[p] {
			want[d] = true
		}
	}
	require.Len(t, order, len(want))
	for p := range want {
		i, ok := pos[p]
		require.True(t, ok, "%s missing", p)
		for _, d := range closure[p] {
			require.Less(t, pos[d], i, "%s loads before its dependency %s", p, d)
		}
	}
}

// TestResolveOrderProperty resolves random subsets of random dependency
// graphs: every module comes after its dependencies, once; the result does
// not depend on the order of modules.dep's lines; and it is the same every
// time.
func TestResolveOrderProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		dep, closure := randomDep(rng, 1+rng.IntN(40))
		all := make([]string, 0, len(closure))
		for p := range closure {
			all = append(all, p)
		}
		slices.Sort(all)
		rng.Shuffle(len(all), func(a, b int) { all[a], all[b] = all[b], all[a] })
		requested := all[:1+rng.IntN(len(all))]
		names := make([]string, len(requested))
		for i, p := range requested {
			names[i] = strings.TrimSuffix(path.Base(p), ".ko")
			if rng.IntN(2) == 0 { // - and _ are the same
				names[i] = strings.NewReplacer("-", "_", "_", "-").Replace(names[i])
			}
		}

		order, err := Resolve(strings.NewReader(dep), names)
		require.NoError(t, err, "round %d", round)
		checkLoadOrder(t, order, requested, closure)

		again, err := Resolve(strings.NewReader(dep), names)
		require.NoError(t, err)
		require.Equal(t, order, again, "round %d: not deterministic", round)

		lines := strings.Split(strings.TrimSpace(dep), "\n")
		slices.Reverse(lines)
		reordered, err := Resolve(strings.NewReader(strings.Join(lines, "\n")), names)
		require.NoError(t, err)
		require.Equal(t, order, reordered, "round %d: depends on the order of modules.dep's lines", round)
	}
}
