// Command tarstore is the storage appliance: one binary that drives a block
// device itself, keeps a key-value store on it as a tar archive, and serves
// it over HTTP and from this command line (SPEC §5). The commands are in
// package appliance/cli; `tarstore help` lists them. Run by the kernel as
// PID 1 (/init in the initramfs `tarstore image` builds), it is the
// appliance's init instead (package boot).
package main

import (
	"os"

	"github.com/tarstore/tarstore/appliance/cli"
	"github.com/tarstore/tarstore/boot"
)

func main() {
	if os.Getpid() == 1 {
		boot.Main() // never returns
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
