package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tarstore/tarstore/appliance/config"
)

// flagDef is one flag a command takes.
type flagDef struct {
	name  string // without "--"
	short byte   // a switch's one-letter form ('r' for -r), 0 for none
	arg   string // what the value is ("N", "PATH"); "" for a switch
	help  string
}

func (f flagDef) isSwitch() bool { return f.arg == "" }

// args is a parsed command line: the positional arguments and the flags,
// by name, as given (a switch holds "true" or "false").
type args struct {
	pos   []string
	flags map[string]string
}

func (a args) has(name string) bool { _, ok := a.flags[name]; return ok }

func (a args) get(name string) string { return a.flags[name] }

// on reports a switch; parseArgs has validated its value.
func (a args) on(name string) bool { return a.flags[name] == "true" }

// parseArgs parses a command's arguments GNU style: flags may stand before,
// between or after the positional arguments; "--name=value" and "--name
// value" are the same (a flag that takes a value always takes the next
// argument, even when it begins with "-"); a switch is "--name" or
// "--name=true|false"; "--" ends the flags, so that later arguments that
// begin with "-" are positional; "-" alone is positional (standard input);
// "-h" is "--help"; a switch with a one-letter form is also "-x", and such
// letters combine ("-rl" is "-r -l"). A later flag overrides an earlier
// one.
func parseArgs(argv []string, defs []flagDef) (args, error) {
	a := args{flags: map[string]string{}}
	find := func(name string) (flagDef, bool) {
		for _, d := range defs {
			if d.name == name {
				return d, true
			}
		}
		return flagDef{}, false
	}
	for i := 0; i < len(argv); i++ {
		s := argv[i]
		switch {
		case s == "--":
			a.pos = append(a.pos, argv[i+1:]...)
			return a, nil
		case s == "-h":
			s = "--help"
		case s == "-" || !strings.HasPrefix(s, "-"):
			a.pos = append(a.pos, s)
			continue
		case !strings.HasPrefix(s, "--"):
			if err := shortSwitches(a, s, defs); err != nil {
				return a, err
			}
			continue
		}
		name, val, hasVal := strings.Cut(s[2:], "=")
		d, ok := find(name)
		if !ok {
			return a, fmt.Errorf("unknown flag --%s", name)
		}
		if d.isSwitch() {
			if hasVal {
				b, err := config.ParseBool(val)
				if err != nil {
					return a, fmt.Errorf("--%s: %v", name, err)
				}
				val = strconv.FormatBool(b)
			} else {
				val = "true"
			}
		} else if !hasVal {
			if i+1 >= len(argv) {
				return a, fmt.Errorf("--%s needs a value (%s)", name, d.arg)
			}
			i++
			val = argv[i]
		}
		a.flags[name] = val
	}
	return a, nil
}

// shortSwitches sets the switches of s, one or more one-letter forms
// after a "-" ("-r", "-rl").
func shortSwitches(a args, s string, defs []flagDef) error {
	var names []string
	for i := 1; i < len(s); i++ {
		found := ""
		for _, d := range defs {
			if d.short != 0 && d.short == s[i] {
				found = d.name
			}
		}
		if found == "" {
			hint := ""
			if _, err := strconv.ParseFloat(s, 64); err == nil {
				hint = fmt.Sprintf(" (to pass %s as an argument, put -- before it)", s)
			}
			return fmt.Errorf("unknown flag %s%s", s, hint)
		}
		names = append(names, found)
	}
	for _, n := range names {
		a.flags[n] = "true"
	}
	return nil
}

// splitCommand finds the command name in argv, allowing flags before it
// (`tarstore --disk x.img ls`): it returns the name and the other
// arguments in order. Flags before the command are recognized by the union
// of all commands' flags, so that a flag's value is not taken for the
// command.
func splitCommand(argv []string) (string, []string) {
	all := map[string]flagDef{}
	for _, c := range commands {
		for _, d := range c.allFlags() {
			all[d.name] = d
		}
	}
	for i := 0; i < len(argv); i++ {
		s := argv[i]
		switch {
		case s == "--":
			return "", argv
		case s == "-" || !strings.HasPrefix(s, "-"):
			return s, append(append([]string{}, argv[:i]...), argv[i+1:]...)
		case strings.HasPrefix(s, "--") && !strings.Contains(s, "="):
			if d, ok := all[s[2:]]; ok && !d.isSwitch() {
				i++ // skip its value
			}
		}
	}
	return "", argv
}
