package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/tarstore/tarstore/appliance"
)

// versionInfo is what `tarstore version` prints: the appliance's version,
// the commit it was built from (from the Go build's VCS stamp: "unknown"
// when the binary has none, as with go run), and the Go toolchain.
type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: appliance.Version, Commit: "unknown", Go: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

func (v versionInfo) String() string {
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("tarstore %s\ncommit: %s\ngo: %s %s\n", v.Version, commit, v.Go, v.Platform)
}

func runVersion(c *cmdCtx) error {
	v := currentVersion()
	if c.a.on("json") {
		return writeJSON(c.env.Stdout, v)
	}
	_, err := io.WriteString(c.env.Stdout, v.String())
	return err
}

// suggest returns the commands name is most likely a typo of: the
// nearest by edit distance, within 1 for short names and 2 for others, or
// those that begin with it.
func suggest(name string) []string {
	if c, ok := opCommands[name]; ok {
		return []string{c}
	}
	limit := 2
	if len(name) <= 3 {
		limit = 1
	}
	var out []string
	for _, c := range commands {
		switch d := editDistance(name, c.name); {
		case d < limit:
			limit, out = d, nil
			out = append(out, c.name)
		case d == limit:
			out = append(out, c.name)
		}
	}
	if len(out) == 0 && len(name) >= 2 {
		for _, c := range commands {
			if strings.HasPrefix(c.name, name) {
				out = append(out, c.name)
			}
		}
	}
	return out
}

// opCommands are the commands of the store's operations (and of words
// for them), by name.
var opCommands = map[string]string{
	"set": "put", "get_partial": "get", "exists": "stat", "list": "ls", "remove": "rm", "delete": "rm",
	"rename": "mv", "move": "mv", "allocate": "alloc", "set_partial": "patch", "free": "df", "cat": "get",
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unknownCommand is the message for a command name that is not one.
func unknownCommand(name string) string {
	msg := fmt.Sprintf("unknown command %q", name)
	if s := suggest(name); len(s) > 0 {
		msg += "; did you mean " + strings.Join(quoteAll(s), " or ") + "?"
	}
	return msg
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "'" + s + "'"
	}
	return out
}

// Completion scripts. Each completes the command names, then the flags of
// the command on the line (long and one-letter forms) and file names.

func runCompletion(c *cmdCtx) error {
	var script string
	switch shell := c.a.pos[0]; shell {
	case "bash":
		script = bashCompletion()
	case "zsh":
		// zsh runs the bash function through its bashcompinit.
		script = "#compdef tarstore\nautoload -U +X bashcompinit && bashcompinit\n" + bashCompletion()
	case "fish":
		script = fishCompletion()
	default:
		return usagef("no completion for %q: bash, zsh or fish", shell)
	}
	_, err := io.WriteString(c.env.Stdout, script)
	return err
}

// flagWords are a command's flags as typed: --name, and -x for a switch
// with a one-letter form.
func flagWords(cmd *command) []string {
	var out []string
	for _, d := range cmd.allFlags() {
		out = append(out, "--"+d.name)
		if d.short != 0 {
			out = append(out, "-"+string(d.short))
		}
	}
	sort.Strings(out)
	return out
}

// valueFlags are the flags of every command that take a value, which the
// completion skips when it looks for the command name.
func valueFlags() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range commands {
		for _, d := range c.allFlags() {
			if !d.isSwitch() && !seen[d.name] {
				seen[d.name] = true
				out = append(out, "--"+d.name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func bashCompletion() string {
	var b strings.Builder
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	fmt.Fprintf(&b, `# bash completion for tarstore: source it, or put it in
# ~/.local/share/bash-completion/completions/tarstore
_tarstore() {
	local cur=${COMP_WORDS[COMP_CWORD]} cmd="" flags="" i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		%s) ((i++)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [[ -z $cmd && $cur != -* ]]; then
		COMPREPLY=($(compgen -W "%s" -- "$cur"))
		return
	fi
	case $cmd in
`, strings.Join(valueFlags(), "|"), strings.Join(names, " "))
	for _, c := range commands {
		fmt.Fprintf(&b, "\t%s) flags=\"%s\" ;;\n", c.name, strings.Join(flagWords(c), " "))
	}
	b.WriteString(`	esac
	if [[ $cmd == help || $cmd == completion ]] && [[ $cur != -* ]]; then
		if [[ $cmd == help ]]; then
			COMPREPLY=($(compgen -W "` + strings.Join(names, " ") + `" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
		fi
		return
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags --version" -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _tarstore tarstore
`)
	return b.String()
}

func fishCompletion() string {
	var b strings.Builder
	b.WriteString("# fish completion for tarstore: put it in ~/.config/fish/completions/tarstore.fish\n")
	b.WriteString("complete -c tarstore -l version -d 'print the version'\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c tarstore -f -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, c := range commands {
		for _, d := range c.allFlags() {
			line := fmt.Sprintf("complete -c tarstore -n '__fish_seen_subcommand_from %s' -l %s", c.name, d.name)
			if d.short != 0 {
				line += " -s " + string(d.short)
			}
			if !d.isSwitch() {
				line += " -r"
			}
			fmt.Fprintf(&b, "%s -d %s\n", line, fishQuote(d.help))
		}
	}
	b.WriteString("complete -c tarstore -f -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
	return b.String()
}

// fishQuote quotes s for fish, in single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
