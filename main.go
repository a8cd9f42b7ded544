// Command tarstore is the storage appliance: one binary that drives a block
// device itself and keeps a key-value store on it as a tar archive.
//
// This build provides the foundation: `tarstore serve` opens (and on first
// use creates) the disk image through the O_DIRECT driver and reports what it
// will serve. The tar store and the HTTP API arrive with the kvtar and
// appliance packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/file"
)

// Exit statuses (SPEC §5).
const (
	exitOK       = 0
	exitInternal = 1
	exitUsage    = 2
	exitStorage  = 10
)

// defaultImageSize is the size of the image `serve` creates on first use.
const defaultImageSize = 1 << 30

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "tarstore: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: tarstore <command> [flags]

commands:
  serve [--disk PATH]   open the disk (creating a 1 GiB sparse image at PATH
                        if it does not exist) and report what will be served
  help                  this text
`)
}

func serve(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	disk := fl.String("disk", "tarstore.img", "disk image or block device")
	if err := fl.Parse(args); err != nil {
		return exitUsage
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "tarstore: serve: unexpected argument %q\n", fl.Arg(0))
		return exitUsage
	}
	created := false
	if _, err := os.Stat(*disk); errors.Is(err, fs.ErrNotExist) {
		if err := file.Create(*disk, defaultImageSize); err != nil {
			fmt.Fprintf(stderr, "tarstore: serve %s: %v\n", *disk, err)
			return exitStorage
		}
		created = true
	}
	dev, err := file.Open(*disk, file.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "tarstore: serve %s: %v\n", *disk, err)
		if errors.Is(err, hw.ErrBusy) {
			return exitStorage
		}
		return exitInternal
	}
	defer dev.Close()
	info := dev.Info()
	verb := "opened"
	if created {
		verb = "created"
	}
	fmt.Fprintf(stdout, "tarstore: %s %s: %d sectors of %d bytes (%d MiB), driver %s\n",
		verb, info.Model, info.Sectors, info.SectorSize, info.Size()>>20, info.Driver)
	fmt.Fprintln(stdout, "tarstore: this build has no tar store or HTTP API yet; nothing is served")
	return exitOK
}
