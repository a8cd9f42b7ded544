// Command tarstore is the storage appliance: one binary that drives a block
// device itself, keeps a key-value store on it as a tar archive, and serves
// it over HTTP and from this command line (SPEC §5). The commands are in
// package appliance/cli; `tarstore help` lists them.
package main

import (
	"os"

	"github.com/tarstore/tarstore/appliance/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
